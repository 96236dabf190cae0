#!/usr/bin/env bash
# Sets up and runs every tlsflow test lane.
#   scripts/test.sh [lane...]    lanes: build tests package sanitize valgrind fuzz vm (default: all)
# Build trees: _build/release, _build/asan, _build/tsan.  Exits non-zero when any lane fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
lanes=("$@")
[[ ${#lanes[@]} -eq 0 || "${lanes[0]}" == all ]] && lanes=(build tests package sanitize valgrind fuzz vm)
has() { local l; for l in "${lanes[@]}"; do [[ "$l" == "$1" ]] && return 0; done; return 1; }

sets="build test"
has vm && sets+=" vm"
has fuzz && sets+=" test"
has package && sets+=" package"
scripts/deps.sh $sets

jobs=$(nproc)
rel=$root/_build/release
asan=$root/_build/asan
tsan=$root/_build/tsan
failed=()
lane() {   # lane NAME CMD...: runs one lane, records its failure, goes on
    local name=$1; shift
    local t0=$SECONDS
    echo "=== lane $name ==="
    if "$@"; then
        echo "=== lane $name: ok ($((SECONDS - t0)) s) ==="
    else
        echo "=== lane $name: FAILED ($((SECONDS - t0)) s) ==="
        failed+=("$name")
    fi
}

configure() {   # configure DIR [cmake args]
    local dir=$1; shift
    cmake -S "$root" -B "$dir" -DTLSFLOW_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
}

tsan_build() {
    cmake -S "$root" -B "$tsan" -DTLSFLOW_WERROR=ON -DCMAKE_BUILD_TYPE=Debug -DTLSFLOW_TSAN=ON \
          -DTLSFLOW_TOOLS=OFF >/dev/null
    cmake --build "$tsan" -j"$jobs" --target ring_post
}

run_ctest() {   # run_ctest DIR LABEL-REGEX [ctest args]
    local dir=$1 labels=$2
    shift 2
    (cd "$dir" && ctest --output-on-failure -j"$jobs" -L "$labels" --timeout 300 "$@")
}

# The flow suites under each io_uring set-up that TLSFLOW_RING_FLAGS can
# force (the tests lane ran them under the probed one).
ring_sets() {
    local set rc=0 sets=(defer,regfd plain) kv
    # receive bundles (on request only) where the kernel has them (6.10)
    kv=$(uname -r | awk -F. '{printf "%d", $1 * 1000 + $2}')
    [ "$kv" -ge 6010 ] && sets+=(coop,bundle)
    for set in "${sets[@]}"; do
        echo "--- TLSFLOW_RING_FLAGS=$set"
        TLSFLOW_RING_FLAGS=$set run_ctest "$rel" 'unit|interop' -R '^(ring|faults|api|buf)_' || rc=1
    done
    return $rc
}

lane build configure "$rel" -DCMAKE_BUILD_TYPE=RelWithDebInfo
has tests && lane tests run_ctest "$rel" 'unit|interop'
has tests && lane ringflags ring_sets
# The Debian packages, built in a temporary copy, installed, used, purged.
has package && lane package tests/package/deb.sh "$root"
if has sanitize; then
    lane sanitize-build configure "$asan" -DCMAKE_BUILD_TYPE=Debug -DTLSFLOW_SANITIZE=ON
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    # (the packaging tests link plain programs against the library: not for ASan)
    # (tools_timeouts measures the server's timeouts against a client's pace: ASan's
    # slowness moves it, and the release lane runs it)
    lane sanitize run_ctest "$asan" 'unit|interop' -E '^package_|^tools_timeouts$'
    unset ASAN_OPTIONS UBSAN_OPTIONS
    # ThreadSanitizer for the one thread-safe call, tlsflow_loop_post: only
    # that test is built and run (TSan and ASan cannot share a tree).
    lane tsan-build tsan_build
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
    lane tsan run_ctest "$tsan" 'unit' -R '^ring_post$'
    unset TSAN_OPTIONS
fi
has valgrind && lane valgrind scripts/valgrind.sh "$rel"
if has fuzz && [[ -x tests/fuzz/run.sh ]]; then
    lane fuzz tests/fuzz/run.sh --build-dir "$root/_build/fuzz" --seconds 20
fi
if has vm && [[ -x tests/vm/run.sh ]]; then
    # (the proxy's tests start the tool by its path in the build tree)
    lane vm tests/vm/run.sh --build-dir "$rel" --kernel all --extra "$rel/tools/tlsflow-proxy"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED lanes: ${failed[*]}"
    exit 1
fi
echo "all lanes passed"
