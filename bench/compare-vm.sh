#!/bin/bash
# tlsflow-serve and nginx, each with and without kernel TLS, then tlsflow-proxy
# (--ktls require) and HAProxy (userspace TLS, mode tcp) in front of a plain
# nginx, inside the qemu VM of the kTLS lane (tests/vm), on one of its kernels:
# what this machine's kernel (no tls module) cannot show.
#
# usage: bench/compare-vm.sh --build DIR [--cache DIR] [--kernel newest|6.1]
#                            [--size MIB] [--fetches N] [--quick]
#   --build DIR   a built tree with tools/tlsflow-serve (compare.sh passes its own)
#   --cache DIR   kernels (default ${XDG_CACHE_HOME:-~/.cache}/tlsflow-vm, shared
#                 with tests/vm/run.sh)
#   --size MIB    file size (default 16); --fetches N GETs per server (default 2)
#   --quick       one GET per server
#
# Reuses tests/vm/fetch-kernels.sh, mkinitramfs.sh and init.sh unchanged: the
# VM runs bench/vm-inside.sh as its only "test".  The image also carries strace,
# curl, tlsflow-proxy and haproxy (mkinitramfs.sh copies their libraries, by
# ldd).  Per server or proxy it prints whether the bodies came through intact
# (SHA-256), the /proc/net/tls_stat deltas (kTLS engaged or not), the syscalls
# per MiB (io_uring_enter for the tlsflow tools) from `strace -c -f`, and the
# tlsflow tools' io_uring set-up and exit counters (submissions, plaintext
# copied in userspace).  MB/s in the VM are not evidence: TCG emulates AES.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VMDIR=$ROOT/tests/vm
BUILD='' KERNEL=newest SIZE=16 FETCHES=2
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/tlsflow-vm
while [ $# -gt 0 ]; do
    case $1 in
        --build) BUILD=$2; shift ;;
        --cache) CACHE=$2; shift ;;
        --kernel) KERNEL=$2; shift ;;
        --size) SIZE=$2; shift ;;
        --fetches) FETCHES=$2; shift ;;
        --quick) FETCHES=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare-vm.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$BUILD" ] && [ -x "$BUILD/tools/tlsflow-serve" ] ||
    { echo "compare-vm.sh: --build DIR with tools/tlsflow-serve built" >&2; exit 2; }
BUILD=$(cd "$BUILD" && pwd)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
need() {   # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "compare-vm.sh: installing $2" >&2
    as_root apt-get -o DPkg::Lock::Timeout=300 install -y "$2" >&2
}
need qemu-system-x86_64 qemu-system-x86
need strace strace
need curl curl
need nginx nginx-light
need python3 python3
need haproxy haproxy
[ -x "$BUILD/tools/tlsflow-proxy" ] ||
    { echo "compare-vm.sh: $BUILD has no tools/tlsflow-proxy" >&2; exit 2; }

OUT=$BUILD/vmbench
PLAN=$OUT/plan
rm -rf "$PLAN"; mkdir -p "$PLAN"
sh "$ROOT/tests/common/make-certs.sh" "$OUT/certs" > /dev/null

TIMEOUT=900
printf 'run_test vm_bench %d /tmp 77 0 %q %q %q %q %q\n' $((TIMEOUT - 60)) \
    "$ROOT/bench/vm-inside.sh" "$BUILD/tools" "$OUT/certs" "$SIZE" "$FETCHES" > "$PLAN/tests.sh"
printf '%s\n' "$ROOT/bench/vm-inside.sh" "$BUILD/tools/tlsflow-serve" "$BUILD/tools/tlsflow-proxy" \
    "$OUT/certs" "$(command -v strace)" "$(command -v curl)" "$(command -v haproxy)" > "$PLAN/copy.txt"
printf '/tmp\n' > "$PLAN/mkdir.txt"

"$VMDIR/fetch-kernels.sh" "$CACHE" "$KERNEL" > "$PLAN/kernels.txt" 2> "$OUT/fetch-kernels.log" ||
    { cat "$OUT/fetch-kernels.log" >&2; exit 1; }
read -r label krel vmlinuz moddir < "$PLAN/kernels.txt"
"$VMDIR/mkinitramfs.sh" base --plan "$PLAN" --out "$OUT/base.cpio" 2> "$OUT/mkinitramfs.log"
"$VMDIR/mkinitramfs.sh" modules --moddir "$moddir" --out "$OUT/modules.cpio" 2>> "$OUT/mkinitramfs.log"
cat "$OUT/base.cpio" "$OUT/modules.cpio" > "$OUT/initrd.cpio"

LOG=$OUT/console.log
t0=$(date +%s)
rc=0
timeout --foreground -k 10 "$TIMEOUT" \
    qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m 1024 \
        -nographic -no-reboot -monitor none -nic none \
        -kernel "$vmlinuz" -initrd "$OUT/initrd.cpio" \
        -append "console=ttyS0 quiet loglevel=4 panic=1 rdinit=/init" \
        < /dev/null 2>&1 | sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' \
    > "$LOG" || rc=$?
secs=$(( $(date +%s) - t0 ))

echo "kernel $label: $krel under qemu TCG (-cpu max, 2 vCPUs, 1 GiB), booted and ran in ${secs}s"
echo "NOTE: VM MB/s are not evidence: TCG emulates AES (28-48 MB/s), and strace slows every"
echo "server; read the counts (tls_stat, syscalls, io_uring_enter per MiB), not the times."
grep -a '^TLSFLOW-BENCH: ' "$LOG" | sed 's/^TLSFLOW-BENCH: //'
grep -a '^TLSFLOW-VM-KWARN: ' "$LOG" | sed 's/^TLSFLOW-VM-KWARN: /kernel warning: /' || true
if ! grep -aq '^TLSFLOW-BENCH: done' "$LOG"; then
    echo "compare-vm.sh: the VM run did not finish (qemu exit $rc); console: $LOG"
    tail -n 20 "$LOG"
    exit 1
fi
