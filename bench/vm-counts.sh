#!/bin/bash
# Counts in the kTLS lane's VM on both Debian kernels (bookworm's 6.1 and the
# newest trixie-backports one): bench/compare-vm.sh once per kernel, which runs
# tlsflow-serve (kTLS and userspace) beside nginx, and tlsflow-proxy (kTLS)
# beside HAProxy (userspace), each under strace: bodies checked by SHA-256,
# tls_stat deltas, syscalls and io_uring_enter per MiB, the tools' io_uring
# set-up and their own counters (submissions, plaintext copied).  Counts, not
# speed: qemu TCG emulates AES.
#
# usage: bench/vm-counts.sh --build DIR [--size MIB] [--fetches N] [--write [FILE]]
#   --build DIR    a built tree (tools/tlsflow-serve, tools/tlsflow-proxy)
#   --write [FILE] put the output between the vm-counts.sh markers of FILE
#                  (default BENCHMARKS.md at the repository root)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMDLINE="bench/vm-counts.sh${*:+ $*}"
BUILD='' WRITE='' OPTS=()
while [ $# -gt 0 ]; do
    case $1 in
        --build) BUILD=$2; shift ;;
        --size|--fetches) OPTS+=("$1" "$2"); shift ;;
        --write)
            WRITE=$ROOT/BENCHMARKS.md
            if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then WRITE=$2; shift; fi ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "vm-counts.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$BUILD" ] || { echo "vm-counts.sh: --build DIR" >&2; exit 2; }

OUT=$(mktemp)
trap 'rm -f "$OUT" "$OUT.md"' EXIT
rc=0
for k in 6.1 newest; do
    "$ROOT/bench/compare-vm.sh" --build "$BUILD" --kernel "$k" "${OPTS[@]}" 2>&1 | tee -a "$OUT" ||
        rc=1
    echo | tee -a "$OUT"
done
[ "$rc" = 0 ] || { echo "vm-counts.sh: a VM run failed; nothing written" >&2; exit 1; }
[ -n "$WRITE" ] || exit 0

{
    echo "<!-- vm-counts.sh: begin (written by bench/vm-counts.sh --write; do not edit by hand) -->"
    echo "## Counts in the kTLS VM: tlsflow-serve vs nginx, tlsflow-proxy vs HAProxy"
    echo
    echo "Written by \`$CMDLINE\` on $(date -u +%Y-%m-%d), from its own output."
    echo "Per server or proxy: bodies checked (SHA-256), /proc/net/tls_stat deltas (8 kTLS"
    echo "sockets of each tlsflow tool are the library's start-up probe), syscalls per MiB from"
    echo "strace -c -f (start-up included), and the tlsflow tools' io_uring set-up and own"
    echo "counters at exit.  HAProxy reads every plaintext byte from its backend and writes the"
    echo "ciphertext (recvfrom/sendto); tlsflow-proxy with kTLS splices socket -> pipe -> socket."
    echo
    echo '```'
    cat "$OUT"
    echo '```'
    echo "<!-- vm-counts.sh: end -->"
} > "$OUT.md"
if [ -f "$WRITE" ] && grep -q '^<!-- vm-counts.sh: begin' "$WRITE"; then
    awk -v new="$OUT.md" '
        /^<!-- vm-counts.sh: begin/ { while ((getline l < new) > 0) print l; skip = 1; next }
        skip && /^<!-- vm-counts.sh: end/ { skip = 0; next }
        !skip { print }' "$WRITE" > "$WRITE.tmp"
    mv "$WRITE.tmp" "$WRITE"
else
    { echo; cat "$OUT.md"; } >> "$WRITE"
fi
echo "wrote $WRITE"
