#!/bin/sh
# tlsflow-bench briefly against tlsflow-serve (HTTP, echo, handshakes,
# latency) and against openssl s_server -WWW.
. "$(dirname "$0")/lib.sh"
need grep head

mkdir -p "$WORK/root"
head -c 1048576 /dev/urandom > "$WORK/root/1m.bin"
start_server --root "$WORK/root"
B="$BENCH --host 127.0.0.1 --port $PORT --ca $CA --duration 1.5"
$B throughput --path /1m.bin --connections 4 --json > "$WORK/t.json" 2>"$WORK/bench.err" ||
    fail "throughput"
grep -q '"requests":[1-9]' "$WORK/t.json" || fail "no requests: $(cat "$WORK/t.json")"
grep -q '"errors":0' "$WORK/t.json" || fail "errors: $(cat "$WORK/t.json")"
$B handshake --connections 2 > "$WORK/h.txt" 2>>"$WORK/bench.err" || fail "handshake"
grep -q 'handshakes  [1-9]' "$WORK/h.txt" || fail "no handshakes: $(cat "$WORK/h.txt")"
grep -q '(0 resumed)' "$WORK/h.txt" || fail "handshake without --resume resumed: $(cat "$WORK/h.txt")"
$B handshake --resume --json > "$WORK/r.json" 2>>"$WORK/bench.err" || fail "handshake --resume"
grep -q '"resumed":[1-9]' "$WORK/r.json" || echo "note: no resumed handshakes: $(cat "$WORK/r.json")"
$B latency --path /1m.bin --json > "$WORK/l.json" 2>>"$WORK/bench.err" || fail "latency"
stop_server

start_server --echo
B="$BENCH --host 127.0.0.1 --port $PORT --ca $CA --duration 1.5"
$B throughput --echo --connections 2 --json > "$WORK/e.json" 2>>"$WORK/bench.err" || fail "echo"
grep -q '"bytes":[1-9]' "$WORK/e.json" || fail "echo bytes: $(cat "$WORK/e.json")"
$B latency --echo > "$WORK/el.txt" 2>>"$WORK/bench.err" || fail "echo latency"
grep -q 'p99.9' "$WORK/el.txt" || fail "no percentiles"
stop_server

if command -v openssl >/dev/null 2>&1; then
    # A port of our own: tries a few, since parallel tests may hold one.
    started=
    for try in 1 2 3 4 5; do
        P=$((20000 + ($$ * 7 + try * 997) % 40000))
        (cd "$WORK/root" && exec openssl s_server -quiet -WWW -accept "127.0.0.1:$P" \
            -cert "$CERT" -key "$KEY" > "$WORK/s_server.out" 2>"$WORK/s_server.err") &
        SP=$!
        for _ in $(seq 50); do   # listening, or gone
            python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
                "$P" 2>/dev/null && { started=1; break; }
            kill -0 $SP 2>/dev/null || break
            sleep 0.1
        done
        [ -n "$started" ] && break
        grep -q "Address already in use" "$WORK/s_server.err" ||
            fail "openssl s_server did not start: $(cat "$WORK/s_server.err")"
    done
    [ -n "$started" ] || fail "openssl s_server found no free port: $(cat "$WORK/s_server.err")"
    $BENCH --host 127.0.0.1 --port $P --ca "$CA" --duration 1.5 throughput --path /1m.bin \
        --json > "$WORK/o.json" 2>>"$WORK/bench.err" || { kill $SP 2>/dev/null; fail "bench vs s_server"; }
    kill $SP 2>/dev/null || true
    grep -q '"requests":[1-9]' "$WORK/o.json" || fail "s_server: $(cat "$WORK/o.json")"
fi
echo PASS
