#!/bin/sh
# tlsflow-bench and tlsflow-client against Debian's nginx (OpenSSL): an HTTP
# file fetched byte for byte, throughput and handshake runs with no errors.
. "$(dirname "$0")/lib.sh"
need nginx python3 cmp

mkdir -p "$WORK/root" "$WORK/nginx/tmp"
head -c 1048576 /dev/urandom > "$WORK/root/1m.bin"
started=
listening() {
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}
for try in 1 2 3 4 5; do
    P=$((10000 + ($$ * 13 + try * 1009) % 20000))
    listening "$P" && continue   # somebody else's server: not ours to test
    cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$P ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $WORK/root;
    }
}
CONF
    nginx -p "$WORK/nginx" -e "$WORK/nginx.err" -c "$WORK/nginx/nginx.conf" > "$WORK/nginx.out" 2>&1 &
    NP=$!
    SERVER_PID=$NP   # killed at exit, whatever happens
    for _ in $(seq 50); do
        listening "$P" && { started=1; break; }
        kill -0 $NP 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$started" ] && break
    kill -KILL $NP 2>/dev/null || true
done
[ -n "$started" ] || fail "nginx did not start: $(cat "$WORK/nginx.err" "$WORK/nginx.out")"

# stdin stays open until nginx has answered: a client that half-closes while
# nginx is still writing is reset by nginx (EPOLLRDHUP = "client closed").
{ printf 'GET /1m.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'; sleep 2; } |
    "$CLIENT" --ca "$CA" --sni localhost "127.0.0.1:$P" > "$WORK/resp" 2>"$WORK/client.err" ||
    true   # nginx may reset after its response, which the client reports
tail -c 1048576 "$WORK/resp" > "$WORK/body"
cmp -s "$WORK/body" "$WORK/root/1m.bin" || fail "tlsflow-client: the file from nginx differs ($(wc -c < "$WORK/resp") bytes; $(cat "$WORK/client.err"))"

B="$BENCH --host 127.0.0.1 --port $P --ca $CA --duration 1.5"
$B throughput --path /1m.bin --connections 4 --json > "$WORK/t.json" 2>"$WORK/bench.err" ||
    fail "throughput against nginx"
grep -q '"requests":[1-9]' "$WORK/t.json" || fail "no requests: $(cat "$WORK/t.json")"
grep -q '"errors":0' "$WORK/t.json" || fail "errors: $(cat "$WORK/t.json")"
$B handshake --connections 2 > "$WORK/h.txt" 2>>"$WORK/bench.err" || fail "handshakes against nginx"
grep -q 'handshakes  *[1-9]' "$WORK/h.txt" || fail "no handshakes: $(cat "$WORK/h.txt")"
kill $NP 2>/dev/null || true
echo PASS
