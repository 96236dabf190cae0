#!/usr/bin/env bash
# Runs the flow tests under valgrind memcheck: zero reports.  The tests it
# runs are the ones labelled valgrind (tests/*/CMakeLists.txt): the API tests,
# the loop, the fallback flows, stalled handshakes, 100 concurrent flows and
# fragmented handshakes.  (Not the tests with a peer in a thread: under
# valgrind that thread hardly runs while the loop waits in io_uring_enter.)
#   scripts/valgrind.sh BUILD_DIR
set -euo pipefail
build=$1
cd "$build"
ctest -R tf_make_certs >/dev/null
mapfile -t tests < <(ctest -N -L '^valgrind$' -FA '.*' | sed -n 's/^ *Test *#[0-9]*: \([A-Za-z0-9_]*\)$/\1/p')
[[ ${#tests[@]} -gt 0 ]] || { echo "valgrind: no test labelled valgrind in $build"; exit 1; }
export TF_FAULTS_FLOWS=100   # faults_many: enough flows to matter, few enough for valgrind
export TF_TIME_SCALE=${TF_TIME_SCALE:-20}   # every harness timeout: valgrind runs ~20x slower
rc=0
for t in "${tests[@]}"; do
    exe=$(find . -type f -name "$t" -perm -u+x | head -n1)
    [[ -n "$exe" ]] || continue
    echo "valgrind: $t"
    if ! valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
            --errors-for-leak-kinds=definite,indirect --track-fds=no "$exe" >"$t.valgrind.log" 2>&1; then
        cat "$t.valgrind.log"
        echo "valgrind: $t FAILED"
        rc=1
    fi
done
exit $rc
