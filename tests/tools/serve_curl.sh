#!/bin/sh
# tlsflow-serve --root against curl: bytes of a multi-MiB file, keep-alive,
# HEAD, 404, 405, path escapes.
. "$(dirname "$0")/lib.sh"
need curl cmp head

mkdir -p "$WORK/root/sub"
head -c $((5 * 1024 * 1024 + 123)) /dev/urandom > "$WORK/root/big.bin"
echo "hello index" > "$WORK/root/index.html"
echo "sub file" > "$WORK/root/sub/a.txt"
echo "secret" > "$WORK/secret.txt"
ln -s ../secret.txt "$WORK/root/link.txt"
start_server --root "$WORK/root"
URL=https://localhost:$PORT
C="curl -sS --cacert $CA --max-time 20"

# a multi-MiB file, byte for byte
$C -o "$WORK/got.bin" "$URL/big.bin" || fail "GET big.bin"
cmp "$WORK/root/big.bin" "$WORK/got.bin" || fail "big.bin differs"

# keep-alive: two requests on one connection (curl reuses it)
$C -o "$WORK/a1" -o "$WORK/a2" -w '%{num_connects}\n' "$URL/sub/a.txt" "$URL/big.bin" \
    > "$WORK/connects" || fail "keep-alive GETs"
cmp "$WORK/root/sub/a.txt" "$WORK/a1" || fail "a.txt differs"
cmp "$WORK/root/big.bin" "$WORK/a2" || fail "big.bin (2nd) differs"
[ "$(tail -n 1 "$WORK/connects")" = 0 ] || fail "second request did not reuse the connection"

# index, content type
[ "$($C "$URL/")" = "hello index" ] || fail "index.html"
$C -o /dev/null -w '%{content_type}' "$URL/sub/a.txt" | grep -q text/plain || fail "content type"

# HEAD: the length, no body
$C -I "$URL/big.bin" > "$WORK/head" || fail "HEAD"
grep -qi "^content-length: $((5 * 1024 * 1024 + 123))" "$WORK/head" || fail "HEAD length"
grep -q "^HTTP/1.1 200" "$WORK/head" || fail "HEAD status"

code() { $C -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "$URL/nope")" = 404 ] || fail "404"
[ "$(code -X POST -d x "$URL/big.bin")" = 405 ] || fail "405"
[ "$(code -X DELETE "$URL/big.bin")" = 405 ] || fail "405 DELETE"
# path escapes: .. segments (raw and encoded), symlink out of the root, NUL
for p in "/../secret.txt" "/sub/../../secret.txt" "/%2e%2e/secret.txt" "/sub/%2E%2E/%2e%2e/secret.txt" \
         "/link.txt" "/a%00b" "/..%2fsecret.txt"; do
    c=$(code --path-as-is "$URL$p")
    case $c in
        400|403|404) ;;
        *) fail "escape $p gave $c" ;;
    esac
done
# HTTP/1.0 without keep-alive
[ "$($C --http1.0 "$URL/sub/a.txt")" = "sub file" ] || fail "HTTP/1.0"
stop_server

# the kTLS opt-ins are accepted (and ignored where the kernel lacks kTLS)
start_server --root "$WORK/root" --zerocopy-ro --no-pad
URL=https://localhost:$PORT
$C -o "$WORK/got3.bin" "$URL/big.bin" || fail "GET with --zerocopy-ro --no-pad"
cmp "$WORK/root/big.bin" "$WORK/got3.bin" || fail "big.bin differs with --zerocopy-ro --no-pad"
! grep -q 'not applied' "$WORK/serve.err" || fail "kTLS flags not applied: $(cat "$WORK/serve.err")"
stop_server
echo PASS
