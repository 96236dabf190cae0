#!/usr/bin/env bash
# The main job: builds tlsflow, serves a file with tlsflow-serve and measures
# it with tlsflow-bench, printing TLS version, cipher and whether the kernel
# holds each direction's key (kTLS) or GnuTLS protects records in userspace.
#   scripts/demo.sh [--seconds N] [--connections N] [--ktls auto|require|off]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=5 conns=4 ktls=auto
while [[ $# -gt 0 ]]; do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --ktls) ktls=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--connections N] [--ktls MODE]" >&2; exit 2 ;;
    esac
done

scripts/deps.sh build
build=$PWD/_build/release
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target tlsflow-serve tlsflow-bench tlsflow-client >/dev/null

work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
head -c $((64 << 20)) /dev/urandom >"$work/file.bin"

echo "kernel $(uname -r); tls ULP available: $(grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null && echo yes || echo no)"
"$build/tools/tlsflow-serve" --self-signed --root "$work" --port 0 --ktls "$ktls" \
    >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
for _ in $(seq 100); do
    grep -q '^listening on' "$work/serve.out" 2>/dev/null && break
    sleep 0.1
done
addr=$(sed -n 's/^listening on \(.*\)$/\1/p' "$work/serve.out")
[[ -n "$addr" ]] || { cat "$work/serve.err" >&2; echo "tlsflow-serve did not start" >&2; exit 1; }
echo "tlsflow-serve listening on $addr"

echo "--- one request with tlsflow-client ---"
printf 'HEAD /file.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    "$build/tools/tlsflow-client" --insecure --ktls "$ktls" "$addr"

echo "--- tlsflow-bench throughput: $conns connections x ${seconds}s, 64 MiB file ---"
"$build/tools/tlsflow-bench" throughput --host "${addr%:*}" --port "${addr##*:}" --insecure \
    --ktls "$ktls" --path /file.bin --connections "$conns" --duration "$seconds"
