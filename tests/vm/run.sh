#!/bin/bash
# run.sh --build-dir DIR [--kernel 6.1|newest|all] [--cache DIR] [--label ktls]
#        [--timeout SECS] [--extra PATH]...
#
# The kTLS lane: runs every CTest test labelled LABEL (default ktls) of an
# already built tree inside qemu, once per Debian kernel, one VM boot per
# kernel, with TLSFLOW_EXPECT_KTLS=1.  Exits non-zero on a failed or timed-out
# test, a kernel warning, a missing result line, or a VM timeout.
#
#   --build-dir DIR  the CMake build tree (built: run.sh does not build)
#   --kernel K       6.1 (bookworm), newest (trixie-backports) or all (default)
#   --cache DIR      downloaded kernels (default ${XDG_CACHE_HOME:-~/.cache}/tlsflow-vm)
#   --label L        CTest label to run (default ktls)
#   --timeout SECS   wall-clock limit per VM (default: sum of the tests' timeouts + 120)
#   --extra PATH     another host path the tests need inside the VM (repeatable)
#   -R REGEX         only the tests (of that label) whose names match REGEX
# Logs: DIR/vm/<kernel>.log (the whole console).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "run.sh: $*" >&2; exit 2; }

BUILD='' KERNEL=all LABEL=ktls VM_TIMEOUT='' REGEX=''
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/tlsflow-vm
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
        --build-dir) BUILD=$2; shift 2 ;;
        --kernel) KERNEL=$2; shift 2 ;;
        --cache) CACHE=$2; shift 2 ;;
        --label) LABEL=$2; shift 2 ;;
        --timeout) VM_TIMEOUT=$2; shift 2 ;;
        --extra) EXTRA+=("$2"); shift 2 ;;
        -R) REGEX=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[ -n "$BUILD" ] || die "--build-dir is required"
BUILD=$(cd "$BUILD" && pwd)
[ -f "$BUILD/CTestTestfile.cmake" ] || die "$BUILD is not a configured CMake build tree"
case $KERNEL in 6.1|newest|all) ;; *) die "--kernel must be 6.1, newest or all" ;; esac
command -v qemu-system-x86_64 >/dev/null || \
    apt-get -o DPkg::Lock::Timeout=300 install -y qemu-system-x86 >&2
command -v python3 >/dev/null || apt-get -o DPkg::Lock::Timeout=300 install -y python3 >&2

T_START=$(date +%s)
OUT=$BUILD/vm
PLAN=$OUT/plan
rm -rf "$PLAN"; mkdir -p "$PLAN"
SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")

# ------------------------------------------------------------------ the plan
# From CTest's JSON: host-side fixture setups (run here, not in the VM), the
# run_test lines for init, the paths to copy and the directories to create.
(cd "$BUILD" && ctest --show-only=json-v1 -L "$LABEL" ${REGEX:+-R "$REGEX"}) > "$PLAN/ctest.json"
python3 - "$PLAN" "$BUILD" "$SRC" "${EXTRA[@]}" <<'EOF'
import json, os, shlex, sys

plan, build, src, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
info = json.load(open(os.path.join(plan, "ctest.json")))
setups, lines, names, copy, mkdirs = [], [], [], set(extra), set()
total_timeout = 0

def under_trees(p):
    return any(p == t or p.startswith(t + "/") for t in (build, src) if t)

for t in info.get("tests", []):
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    cmd = t.get("command") or []
    if not cmd:
        sys.exit(f"run.sh: test {t['name']} has no command (not built?)")
    # Absolute paths in the command line (the executable, scripts, data).
    for a in cmd:
        if a.startswith("/") and os.path.exists(a) and (under_trees(a) or a == cmd[0]):
            copy.add(a)
    if props.get("FIXTURES_SETUP"):
        setups.append(t["name"])
        continue
    if not os.path.exists(cmd[0]):
        sys.exit(f"run.sh: {cmd[0]} missing: build the tree first (cmake --build)")
    wd = props.get("WORKING_DIRECTORY") or os.path.dirname(cmd[0])
    mkdirs.add(wd)
    timeout = int(float(props.get("TIMEOUT", 120)))
    total_timeout += timeout
    skip = props.get("SKIP_RETURN_CODE", "")
    willfail = "1" if props.get("WILL_FAIL") else "0"
    env = props.get("ENVIRONMENT", [])
    argv = ["run_test", t["name"], str(timeout), wd, str(skip), willfail, "env"] + env + cmd
    lines.append(" ".join(shlex.quote(str(a)) for a in argv))
    names.append(t["name"])

# The source tree's tests/ (data the tests open through TF_SOURCE_DIR).
if src and os.path.isdir(os.path.join(src, "tests")):
    copy.add(os.path.join(src, "tests"))

open(os.path.join(plan, "tests.sh"), "w").write("\n".join(lines) + "\n")
open(os.path.join(plan, "names.txt"), "w").write("".join(n + "\n" for n in names))
open(os.path.join(plan, "setups.txt"), "w").write("".join(n + "\n" for n in setups))
open(os.path.join(plan, "mkdir.txt"), "w").write("".join(d + "\n" for d in sorted(mkdirs)))
open(os.path.join(plan, "timeout.txt"), "w").write(f"{total_timeout}\n")
# copy.txt is finished after the setups ran (they create some of these paths).
open(os.path.join(plan, "copy.candidates"), "w").write("".join(p + "\n" for p in sorted(copy)))
EOF
NTESTS=$(wc -l < "$PLAN/names.txt")
[ "$NTESTS" -gt 0 ] || die "no tests labelled $LABEL in $BUILD"
echo "run.sh: $NTESTS test(s) labelled $LABEL: $(tr '\n' ' ' < "$PLAN/names.txt")"

# Host-side fixture setups (tf_make_certs: certificates the tests read).
if [ -s "$PLAN/setups.txt" ]; then
    re="^($(paste -sd'|' "$PLAN/setups.txt"))\$"
    echo "run.sh: running fixture setup(s) on the host: $(tr '\n' ' ' < "$PLAN/setups.txt")"
    (cd "$BUILD" && ctest -R "$re" --output-on-failure) > "$OUT/setups.log" 2>&1 \
        || { cat "$OUT/setups.log"; die "fixture setup failed"; }
fi
while IFS= read -r p; do
    [ -e "$p" ] && echo "$p"
done < "$PLAN/copy.candidates" > "$PLAN/copy.txt"

# ------------------------------------------------------------------ kernels
T0=$(date +%s)
"$HERE/fetch-kernels.sh" "$CACHE" "$KERNEL" > "$PLAN/kernels.txt"
echo "run.sh: kernels ready in $(( $(date +%s) - T0 ))s"

T0=$(date +%s)
"$HERE/mkinitramfs.sh" base --plan "$PLAN" --out "$OUT/base.cpio"
echo "run.sh: initramfs base $(( $(stat -c %s "$OUT/base.cpio") / 1048576 )) MiB in $(( $(date +%s) - T0 ))s"

if [ -z "$VM_TIMEOUT" ]; then
    VM_TIMEOUT=$(( $(cat "$PLAN/timeout.txt") + 120 ))
fi

# ------------------------------------------------------------------ boot
# boot LABEL KREL VMLINUZ MODDIR: one VM, all tests; returns non-zero on failure.
boot() {
    local label=$1 krel=$2 vmlinuz=$3 moddir=$4
    local log=$OUT/$label.log initrd=$OUT/initrd-$label.cpio rc=0 vmrc=0 t0 secs
    "$HERE/mkinitramfs.sh" modules --moddir "$moddir" --out "$OUT/modules-$label.cpio"
    cat "$OUT/base.cpio" "$OUT/modules-$label.cpio" > "$initrd"

    echo "=== kernel $label: $krel (limit ${VM_TIMEOUT}s, console: $log)"
    t0=$(date +%s)
    # TCG, not KVM (KVM is not usable on every runner).  -cpu max gives the
    # guest AES-NI/PCLMUL, so the accelerated crypto modules load too.
    local attempt
    for attempt in 1 2; do
        vmrc=0
        timeout --foreground -k 10 "$VM_TIMEOUT" \
            qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m 1024 \
                -nographic -no-reboot -monitor none -nic none \
                -kernel "$vmlinuz" -initrd "$initrd" \
                -append "console=ttyS0 quiet loglevel=4 panic=1 rdinit=/init" \
                < /dev/null 2>&1 | sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' \
            > "$log" || vmrc=$?
        # Under TCG a boot very rarely oopses before init runs (seen once on
        # 7.3.4 in sched_clock_cpu): that boot is retried, once.  A panic once
        # tests have started is a failure like any other.
        if [ $attempt = 1 ] && ! grep -q '^TLSFLOW-VM-START:' "$log" && grep -q 'Kernel panic' "$log"; then
            echo "  the kernel panicked before any test started; booting again"
            cp "$log" "$log.panic"
            continue
        fi
        break
    done
    secs=$(( $(date +%s) - t0 ))

    local res
    res=$(grep -E '^TLSFLOW-VM-(TEST|RESULT|INFO|KWARN):' "$log" || true)
    printf '%s\n' "$res" | sed -n 's/^TLSFLOW-VM-INFO: /  info: /p'
    printf '%s\n' "$res" | sed -n 's/^TLSFLOW-VM-TEST: \([A-Z]*\) \(.*\)/  \1  \2/p'
    # Tests with no result line (the VM died or hung in them).
    local n
    while IFS= read -r n; do
        printf '%s\n' "$res" | awk -v n="$n" '$1 == "TLSFLOW-VM-TEST:" && $3 == n { f = 1 } END { exit !f }' \
            || { echo "  NORESULT  $n"; rc=1; }
    done < "$PLAN/names.txt"
    printf '%s\n' "$res" | sed -n 's/^TLSFLOW-VM-KWARN: /  kernel: /p'

    echo "  /proc/net/tls_stat (before -> after):"
    awk '/^TLSFLOW-VM-TLSSTAT-BEFORE:/ { b[$2] = $3 }
         /^TLSFLOW-VM-TLSSTAT-AFTER:/  { a[$2] = $3; o[++n] = $2 }
         END { for (i = 1; i <= n; i++) printf "    %-22s %6d -> %d\n", o[i], b[o[i]], a[o[i]] }' "$log"
    local moved passed
    moved=$(awk '/^TLSFLOW-VM-TLSSTAT-(BEFORE|AFTER):/ && $2 ~ /^Tls(Tx|Rx)(Sw|Device)$/ {
                     s += ($1 ~ /AFTER/ ? $3 : -$3) } END { print s + 0 }' "$log")
    passed=$(printf '%s\n' "$res" | awk '$1 == "TLSFLOW-VM-TEST:" && $2 == "PASS"' | wc -l)

    local sentinel
    sentinel=$(printf '%s\n' "$res" | sed -n 's/^TLSFLOW-VM-RESULT: //p' | tail -n1)
    if [ $vmrc -eq 124 ] || [ $vmrc -eq 137 ]; then
        echo "  VM TIMEOUT after ${secs}s (limit ${VM_TIMEOUT}s): see $log"
        rc=1
    elif [ $vmrc -ne 0 ]; then
        echo "  qemu failed (exit $vmrc): see $log"; tail -n 30 "$log" | sed 's/^/  | /'
        rc=1
    elif [ -z "$sentinel" ]; then
        echo "  NO RESULT LINE (VM crashed or init failed): see $log"; tail -n 30 "$log" | sed 's/^/  | /'
        rc=1
    else
        echo "  result: $sentinel"
        set -- $sentinel    # pass N fail M skip K warnings W
        [ "$4" = 0 ] && [ "$8" = 0 ] || rc=1
        if [ "$passed" -gt 0 ] && [ "$moved" -le 0 ]; then
            echo "  tests passed but /proc/net/tls_stat did not move: kTLS was not used"; rc=1
        fi
    fi
    echo "  kernel $label ($krel): $([ $rc = 0 ] && echo OK || echo FAILED) in ${secs}s"
    return $rc
}

STATUS=0
SUMMARY=()
while read -r -u 3 label krel vmlinuz moddir; do
    if boot "$label" "$krel" "$vmlinuz" "$moddir"; then
        SUMMARY+=("$label ($krel): OK")
    else
        SUMMARY+=("$label ($krel): FAILED"); STATUS=1
    fi
done 3< "$PLAN/kernels.txt"

echo "=== summary ($(( $(date +%s) - T_START ))s in all)"
printf '  %s\n' "${SUMMARY[@]}"
exit $STATUS
