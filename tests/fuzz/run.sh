#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan, coverage in the library)
# and runs each one for a while on a copy of its committed corpus.
#   tests/fuzz/run.sh --build-dir DIR [--seconds N] [--jobs J] [--target NAME]...
# Exits non-zero when a target fails to build or finds a crash, leak, timeout
# or sanitizer report; the reproducer is left in DIR/fuzz-out/<target>/.
# The long campaign is described in tests/fuzz/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=
seconds=20
jobs=1
targets=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --build-dir) build=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --target) targets+=("$2"); shift 2 ;;
        *) echo "usage: $0 --build-dir DIR [--seconds N] [--jobs J] [--target NAME]..." >&2; exit 2 ;;
    esac
done
[[ -n "$build" ]] || { echo "$0: --build-dir is required" >&2; exit 2; }

cc=${CC:-}
if [[ -z "$cc" ]]; then
    for c in clang clang-14 clang-15 clang-16 clang-17 clang-18; do
        command -v "$c" >/dev/null 2>&1 && { cc=$c; break; }
    done
fi
[[ -n "$cc" ]] || { echo "$0: clang not found" >&2; exit 1; }
cxx=${CXX:-${cc/clang/clang++}}
command -v "$cxx" >/dev/null 2>&1 || cxx=$cc

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLSFLOW_FUZZ=ON -DTLSFLOW_TOOLS=OFF \
    -DTF_TEST_SUBDIRS=fuzz >/dev/null
[[ ${#targets[@]} -gt 0 ]] || targets=(fuzz_control fuzz_flow fuzz_http fuzz_config)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
    exe=$build/tests/fuzz/$t
    [[ -x "$exe" ]] || { echo "fuzz: $t was not built"; failed+=("$t"); continue; }
    out=$build/fuzz-out/$t
    rm -rf "$out"
    mkdir -p "$out/corpus" "$out/artifacts"
    cp "$here/corpus/$t"/* "$out/corpus/" 2>/dev/null || true
    echo "fuzz: $t for ${seconds}s"
    # The new corpus goes to a scratch copy: the committed one stays small.
    if ! "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
            -jobs="$jobs" -workers="$jobs" -print_final_stats=1 \
            -artifact_prefix="$out/artifacts/" "$out/corpus" >"$out/log" 2>&1; then
        echo "fuzz: $t FAILED"
        tail -n 60 "$out/log"
        ls -l "$out/artifacts"
        failed+=("$t")
        continue
    fi
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$out/log" | sed "s/^/fuzz: $t /" || true
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: all targets ran ${seconds}s without a finding"
