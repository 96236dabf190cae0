#!/bin/sh
# tlsflow-serve against openssl s_client: a raw HTTP/1.1 exchange, a 400, and
# an echo round trip.
. "$(dirname "$0")/lib.sh"
need openssl grep

mkdir -p "$WORK/root"
printf 'from tlsflow\n' > "$WORK/root/f.txt"
start_server --root "$WORK/root"
s_client() {
    timeout 20 openssl s_client -quiet -verify_return_error -CAfile "$CA" \
        -connect "127.0.0.1:$PORT" -servername localhost "$@"
}

printf 'GET /f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    s_client > "$WORK/resp" 2>"$WORK/s_client.err" || true
grep -q '^HTTP/1.1 200 OK' "$WORK/resp" || fail "no 200 from openssl s_client"
grep -q '^from tlsflow' "$WORK/resp" || fail "no body"

printf 'BREW /f.txt HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n' |
    s_client > "$WORK/resp2" 2>>"$WORK/s_client.err" || true
grep -q '^HTTP/1.1 405' "$WORK/resp2" || fail "no 405"
grep -q '^HTTP/1.1 400' "$WORK/resp2" || fail "no 400 for garbage"

# a ticket issued before a reload (SIGHUP) resumes after it, without
# --ticket-key: the process keeps one ticket key for all its configs
printf 'GET /f.txt HTTP/1.0\r\n\r\n' | s_client -sess_out "$WORK/sess.pem" > "$WORK/resp3" 2>>"$WORK/s_client.err" || true
grep -q '^HTTP/1.0 200 OK' "$WORK/resp3" || fail "no 200 before the reload"
kill -HUP "$SERVER_PID"
for _ in $(seq 50); do grep -q 'reloaded' "$WORK/serve.err" && break; sleep 0.1; done
grep -q 'reloaded' "$WORK/serve.err" || fail "no reload on SIGHUP: $(cat "$WORK/serve.err")"
# (not -quiet: it would hide whether the session was reused)
printf 'GET /f.txt HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -ign_eof -verify_return_error \
    -CAfile "$CA" -connect "127.0.0.1:$PORT" -servername localhost -sess_in "$WORK/sess.pem" \
    > "$WORK/resp4" 2>>"$WORK/s_client.err" || true
grep -q '^HTTP/1.0 200 OK' "$WORK/resp4" || fail "no 200 after the reload"
grep -q '^Reused' "$WORK/resp4" || fail "a ticket from before the reload did not resume: $(grep -E '^(New|Reused)' "$WORK/resp4")"
stop_server

start_server --echo
# -quiet implies -ign_eof: ask for the close on stdin EOF, a second after
(printf 'ping over openssl\n'; sleep 1) | s_client -no_ign_eof > "$WORK/echo" 2>>"$WORK/s_client.err" || true
grep -q '^ping over openssl$' "$WORK/echo" || fail "echo via openssl s_client"
stop_server
echo PASS
