#!/bin/sh
# Runs inside the kTLS lane's VM (busybox sh), started by init.sh as a "test"
# that bench/compare-vm.sh planned.  Every line compare-vm.sh keeps starts
# with "TLSFLOW-BENCH: ".
#
# usage: vm-inside.sh TOOLS_DIR CERT_DIR SIZE_MIB FETCHES
# Four servers in turn, each under `strace -c -f`: tlsflow-serve --ktls require,
# tlsflow-serve --ktls off, nginx userspace, nginx with kTLS.  For each: FETCHES
# GETs of a SIZE_MIB file by curl (OpenSSL, userspace), the SHA-256 of every
# body, /proc/net/tls_stat deltas, the server's syscalls (and io_uring_enter
# calls) per MiB served.  Then two TLS-terminating proxies in front of a plain
# nginx (HTTP, not traced), each under `strace -c -f` the same way:
# tlsflow-proxy --ktls require (splice, keys in the kernel) and HAProxy (mode
# tcp, bind ssl crt: OpenSSL in userspace), TLS 1.3 AES-128-GCM, ECDSA P-256.
# The tlsflow tools print their io_uring set-up at start and their counters
# (submissions, plaintext copied in userspace) at exit.
TOOLS=$1 CERTS=$2 SIZE=${3:-16} FETCHES=${4:-2}
SERVE=$TOOLS/tlsflow-serve
PROXY=$TOOLS/tlsflow-proxy
CA=$CERTS/ca.pem CERT=$CERTS/server-ecdsa.pem KEY=$CERTS/server-ecdsa-key.pem
W=/tmp/vmbench
PORT=8443
out() { echo "TLSFLOW-BENCH: $*"; }

mkdir -p $W/root $W/nginx/tmp
head -c $((SIZE * 1048576)) /dev/urandom > $W/root/file.bin
WANT=$(sha256sum $W/root/file.bin | cut -d' ' -f1)
out "kernel $(uname -r), $(nproc) vCPUs (TCG), file ${SIZE} MiB sha256 ${WANT%${WANT#????????????????}}..., $FETCHES GET(s) per server by curl"
for p in strace curl nginx haproxy; do command -v $p >/dev/null || out "missing in the image: $p"; done

tls_stat() { cat /proc/net/tls_stat 2>/dev/null; }
uptime_s() { read -r u _ < /proc/uptime; echo "$u"; }
# the first child of a pid (strace's tracee)
first_child() {
    for d in /proc/[0-9]*; do
        [ -r "$d/stat" ] || continue
        ppid=$(awk '{print $4}' "$d/stat" 2>/dev/null)
        [ "$ppid" = "$1" ] && { echo "${d#/proc/}"; return 0; }
    done
    return 1
}
wait_port() {
    for _ in $(seq 200); do
        netstat -ltn 2>/dev/null | grep -q ":$1 " && return 0
        sleep 0.1
    done
    return 1
}

nginx_conf_in() {   # nginx_conf_in DIR SERVER: DIR/nginx.conf, one worker, SERVER its server block
    mkdir -p $1/tmp
    cat > $1/nginx.conf <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    keepalive_timeout 60;
    client_body_temp_path $1/tmp/body;
    proxy_temp_path $1/tmp/proxy;
    fastcgi_temp_path $1/tmp/fastcgi;
    uwsgi_temp_path $1/tmp/uwsgi;
    scgi_temp_path $1/tmp/scgi;
    default_type application/octet-stream;
    server {
$2
        root $W/root;
    }
}
EOF
}

nginx_conf() {   # nginx_conf KTLS(0|1)
    k=
    [ "$1" = 1 ] && k='ssl_conf_command Options KTLS;'
    nginx_conf_in $W/nginx "        listen 127.0.0.1:$((PORT + 1)) ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
        $k"
}

run_one() {   # run_one NAME CMD...
    name=$1; shift
    PORT=$((PORT + 1))
    rm -f $W/strace.txt $W/server.err
    tls_stat > $W/before
    strace -c -f -o $W/strace.txt "$@" > $W/server.out 2> $W/server.err &
    spid=$!
    if ! wait_port $PORT; then
        out "$name: server did not listen: $(tail -n 3 $W/server.err | tr '\n' ' ')"
        kill $spid 2>/dev/null; wait $spid 2>/dev/null
        return
    fi
    srv=$(first_child $spid)
    ok=0 bad=0 t0=$(uptime_s)
    i=0
    while [ $i -lt "$FETCHES" ]; do
        i=$((i + 1))
        got=$(curl -sS --cacert "$CA" --max-time 300 "https://localhost:$PORT/file.bin" 2>$W/curl.err |
              sha256sum | cut -d' ' -f1)
        if [ "$got" = "$WANT" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
    done
    t1=$(uptime_s)
    tls_stat > $W/after
    # SIGTERM to the server itself; strace writes its summary when it exits
    kill -TERM "$srv" 2>/dev/null
    wait $spid 2>/dev/null
    mib=$((SIZE * FETCHES))
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    out "$name: $ok/$FETCHES bodies intact (sha256)$([ $bad -gt 0 ] && echo ", $bad DIFFERENT: $(head -c 200 $W/curl.err)"), $mib MiB in ${secs}s (VM time, not evidence)"
    delta=$(awk 'NR == FNR {b[$1] = $2; next} $2 != b[$1] {printf "%s +%d, ", $1, $2 - b[$1]}' $W/before $W/after)
    out "$name: tls_stat: ${delta:-no change}"
    if [ -s $W/strace.txt ]; then
        total=$(awk '$NF == "total" {print $4}' $W/strace.txt)
        out "$name: syscalls (server, start to exit) $total = $(awk -v t="$total" -v m="$mib" 'BEGIN {printf "%.1f", t / m}') per MiB"
        for sc in io_uring_enter sendfile splice write writev sendmsg sendto read recvfrom recvmsg; do
            n=$(awk -v s="$sc" '$NF == s {print $4}' $W/strace.txt)
            [ -n "$n" ] && out "$name:   $sc $n = $(awk -v t="$n" -v m="$mib" 'BEGIN {printf "%.2f", t / m}') per MiB"
        done
        out "$name:   top: $(awk '$1 ~ /^[0-9.]+$/ && $NF != "total" {print $4, $NF}' $W/strace.txt |
            sort -rn | head -n 6 | awk '{printf "%s %s, ", $2, $1}')"
    else
        out "$name: no strace summary"
    fi
    if [ -s $W/server.err ] && grep -q '^tlsflow-' $W/server.err; then
        grep -E '^tlsflow-[a-z]+: io_uring (set-up|submissions)' $W/server.err |
            sed 's/^tlsflow-[a-z]*: //' | while IFS= read -r l; do out "$name: $l"; done
    fi
}

run_one "tlsflow-serve --ktls require" "$SERVE" --cert "$CERT" --key "$KEY" --root $W/root \
    --port $((PORT + 1)) --ktls require --stats-interval 86400 --grace 1
run_one "tlsflow-serve --ktls off" "$SERVE" --cert "$CERT" --key "$KEY" --root $W/root \
    --port $((PORT + 1)) --ktls off --stats-interval 86400 --grace 1
if command -v nginx >/dev/null; then
    nginx_conf 0
    run_one "nginx userspace" nginx -p $W/nginx -e $W/nginx/error.log -c $W/nginx/nginx.conf
    nginx_conf 1
    run_one "nginx kTLS (ssl_conf_command Options KTLS; sendfile on)" nginx -p $W/nginx \
        -e $W/nginx/error.log -c $W/nginx/nginx.conf
fi
# ---- the proxies, in front of a plain nginx ----
BPORT=8080
backend_conf() { nginx_conf_in $W/backend "        listen 127.0.0.1:$BPORT;"; }
haproxy_conf() {   # haproxy_conf PORT
    cat $CERT $KEY > $W/both.pem
    cat > $W/haproxy.cfg <<EOF
global
    nbthread 1
    maxconn 100
defaults
    mode tcp
    timeout connect 10s
    timeout client 300s
    timeout server 300s
frontend tls
    bind 127.0.0.1:$1 ssl crt $W/both.pem ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256
    default_backend web
backend web
    server nginx 127.0.0.1:$BPORT
EOF
}
if command -v nginx >/dev/null; then
    backend_conf
    nginx -p $W/backend -e $W/backend/error.log -c $W/backend/nginx.conf > $W/backend.out 2>&1 &
    bpid=$!
    if wait_port $BPORT; then
        run_one "tlsflow-proxy --ktls require" "$PROXY" --listen 127.0.0.1:$((PORT + 1)) \
            --backend 127.0.0.1:$BPORT --cert "$CERT" --key "$KEY" --ktls require \
            --stats-interval 0 --grace 1
        if command -v haproxy >/dev/null; then
            haproxy_conf $((PORT + 1))
            run_one "haproxy (userspace TLS, mode tcp)" haproxy -db -f $W/haproxy.cfg
        fi
    else
        out "proxies: the plain nginx backend did not listen: $(tail -n 3 $W/backend.out | tr '\n' ' ')"
    fi
    kill $bpid 2>/dev/null; wait $bpid 2>/dev/null
else
    out "proxies: skipped, no nginx in the image for the backend"
fi
out "done"
exit 0
