#!/bin/sh
# tlsflow-serve --echo against tlsflow-client: bytes in = bytes out, the
# session description, exit status, and failure on an untrusted server.
. "$(dirname "$0")/lib.sh"
need cmp head

start_server --echo --threads 2
head -c $((3 * 1024 * 1024)) /dev/urandom > "$WORK/in"
timeout 30 "$CLIENT" --ca "$CA" "127.0.0.1:$PORT" < "$WORK/in" > "$WORK/out" 2>"$WORK/client.err" ||
    fail "tlsflow-client exited $?"
cmp "$WORK/in" "$WORK/out" || fail "echoed bytes differ"
grep -q 'version *TLS1\.[23]' "$WORK/client.err" || fail "no version line"
grep -q 'cipher' "$WORK/client.err" || fail "no cipher line"
grep -q 'kTLS *tx' "$WORK/client.err" || fail "no kTLS line"
# the peer chain, leaf first, with the leaf's SHA-256 as openssl computes it
grep -q 'certificate  \[0\]' "$WORK/client.err" || fail "no certificate [0]"
grep -q 'subject *CN=localhost' "$WORK/client.err" || fail "no leaf subject"
grep -q 'issuer *CN=tlsflow test CA' "$WORK/client.err" || fail "no leaf issuer"
grep -q 'validity .* to ' "$WORK/client.err" || fail "no validity"
if command -v openssl >/dev/null 2>&1; then
    fp=$(openssl x509 -in "$CERT" -noout -fingerprint -sha256 | sed 's/.*=//')
    grep -q "sha256 *$fp" "$WORK/client.err" || fail "leaf fingerprint is not $fp"
fi

# --sni with our own connection, TLS 1.2
echo hi | timeout 10 "$CLIENT" --ca "$CA" --sni localhost \
    --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.2' "127.0.0.1:$PORT" > "$WORK/out2" 2>"$WORK/client2.err" ||
    fail "client --sni exited $?"
[ "$(cat "$WORK/out2")" = hi ] || fail "--sni echo"
grep -q 'TLS1\.2' "$WORK/client2.err" || fail "TLS 1.2 not negotiated"

# a wrong trust anchor must fail, non-zero, with a reason
rc=0
echo x | timeout 10 "$CLIENT" --ca "$CERTS/untrusted-ca.pem" "127.0.0.1:$PORT" \
    > /dev/null 2>"$WORK/client3.err" || rc=$?
[ "$rc" -ne 0 ] || fail "untrusted server accepted"
grep -q 'tlsflow-client: ' "$WORK/client3.err" || fail "no error message"
stop_server
echo PASS
