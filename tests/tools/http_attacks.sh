#!/bin/sh
# tlsflow-serve's HTTP handling, tried as an attacker would: a directory path
# too long for "/index.html" (414, no overflow), a flood of empty lines (400
# at once), symlinks out of the root with and without openat2, and
# --self-signed leaving no key file behind while it serves.
. "$(dirname "$0")/lib.sh"
need curl python3

mkdir -p "$WORK/root/sub" "$WORK/outside"
echo "secret" > "$WORK/outside/secret.txt"
echo "sub file" > "$WORK/root/sub/a.txt"
echo "index" > "$WORK/root/index.html"
ln -s "$WORK/outside" "$WORK/root/out"          # a directory symlink out of the root
ln -s ../outside "$WORK/root/rel"
ln -s . "$WORK/root/$(printf 'd%.0s' $(seq 250))"   # long-named links to "." (issue 10)
ln -s . "$WORK/root/$(printf 'e%.0s' $(seq 250))"
for k in $(seq 20); do ln -s . "$WORK/root/$(printf 'f%.0s' $(seq "$k"))"; done

# raw REQUEST-FILE: sends the file's bytes on one TLS connection, prints the
# status line's code (or "none") and the seconds it took
raw() {
    python3 - "$PORT" "$CA" "$1" <<'PY'
import socket, ssl, sys, time
port, ca, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
s = ssl.create_default_context(cafile=ca).wrap_socket(
    socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
s.settimeout(5)
t0 = time.monotonic()
got = b""
try:
    s.sendall(data)
except OSError:
    pass
try:
    while b"\r\n" not in got:
        d = s.recv(4096)
        if not d:
            break
        got += d
except (OSError, ssl.SSLError):
    pass
code = got.split(b" ")[1].decode() if got.startswith(b"HTTP/1.") else "none"
print(code, round(time.monotonic() - t0, 2))
PY
}

check_root() {
    URL=https://localhost:$PORT
    C="curl -sS --cacert $CA --max-time 10"
    code() { $C -o "$WORK/body" -w '%{http_code}' --path-as-is "$@"; }
    [ "$($C "$URL/sub/a.txt")" = "sub file" ] || fail "$1: a file in a subdirectory"
    for p in /out/secret.txt /rel/secret.txt /out/ /rel; do
        c=$(code "$URL$p")
        case $c in 400|403|404) ;; *) fail "$1: $p gave $c" ;; esac
        ! grep -q secret "$WORK/body" || fail "$1: $p served a file outside the root"
    done
    # a path of ~4,085 bytes naming a directory (through the links to "."):
    # "/index.html" does not fit the 4096-byte buffer: 414, and the server lives
    d=$(printf 'd%.0s' $(seq 250)); e=$(printf 'e%.0s' $(seq 250))
    p=""
    f20=$(printf 'f%.0s' $(seq 20))
    while [ ${#p} -lt 3800 ]; do p="$p/$d/$e"; done
    while [ ${#p} -lt 4060 ]; do p="$p/$f20"; done
    n414=0
    for k in $(seq 20); do   # the path grows to 4,084 .. 4,103 bytes, a directory each
        t="$p/$(printf 'f%.0s' $(seq "$k"))/"
        c=$(code "$URL$t" 2>/dev/null) || c=err
        case $1:$c in *:200|*:414|fallback:404) ;; *) fail "$1: long directory target (${#t} bytes) gave $c" ;; esac
        [ "$c" = 414 ] && n414=$((n414 + 1))
    done
    # (the fallback follows no symlink, so there the links to "." are 404)
    [ "$1" = fallback ] || [ "$n414" -gt 0 ] || fail "$1: no long directory target gave 414"
    kill -0 "$SERVER_PID" || fail "$1: server died on a long target"
    [ "$($C "$URL/")" = index ] || fail "$1: not serving after long targets"
}

start_server --root "$WORK/root"
check_root openat2
# empty lines: 1 MiB of CRLF is refused with 400 long before the request timeout
python3 -c 'import sys; sys.stdout.buffer.write(b"\r\n" * (1 << 19))' > "$WORK/crlf"
set -- $(raw "$WORK/crlf")
[ "$1" = 400 ] || fail "CRLF flood answered $1"
python3 -c "import sys; sys.exit(0 if float('$2') < 3 else 1)" || fail "CRLF flood took $2 s"
# a few empty lines before a request are still fine
printf '\r\n\r\nGET /sub/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' > "$WORK/ok"
set -- $(raw "$WORK/ok")
[ "$1" = 200 ] || fail "request after empty lines answered $1"
stop_server

# without openat2 (the fallback walk), symlinks are not followed at all
TLSFLOW_SERVE_NO_OPENAT2=1 start_server --root "$WORK/root"
check_root fallback
stop_server

# --self-signed: the key is in memory only once the server listens
mkdir "$WORK/tmp"
SELF_PORT=
TMPDIR="$WORK/tmp" "$SERVE" --self-signed --echo --port 0 --stats-interval 0 \
    > "$WORK/self.out" 2>"$WORK/self.err" &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/self.out" ] && break; sleep 0.1; done
line=$(head -n 1 "$WORK/self.out")
PORT=${line##*:}
[ -n "$PORT" ] || fail "--self-signed did not start"
[ -z "$(ls -A "$WORK/tmp")" ] || fail "--self-signed left files while serving: $(ls -AR "$WORK/tmp")"
echo hi | timeout 10 "$CLIENT" --insecure "127.0.0.1:$PORT" > "$WORK/self.echo" 2>/dev/null ||
    fail "--self-signed echo"
grep -q hi "$WORK/self.echo" || fail "--self-signed: no echo"
kill -KILL "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
[ -z "$(ls -A "$WORK/tmp")" ] || fail "--self-signed left files after SIGKILL"
echo PASS
