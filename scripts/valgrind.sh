#!/usr/bin/env bash
# Runs the flow tests under valgrind memcheck: zero reports.  The API tests,
# the loop, the fallback flows, stalled handshakes and 100 concurrent flows.
#   scripts/valgrind.sh BUILD_DIR
set -euo pipefail
build=$1
cd "$build"
ctest -R tf_make_certs >/dev/null
mapfile -t tests < <(ctest -N -L unit |
    sed -n 's/^ *Test *#[0-9]*: \(api_[a-z0-9_]*\|ring_loop\|kernel_fallback\|faults_stall\|faults_many\)$/\1/p')
export TF_FAULTS_FLOWS=100   # faults_many: enough flows to matter, few enough for valgrind
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
