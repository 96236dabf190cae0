#!/bin/sh
# man.sh lint MANDIR          every page lints clean (mandoc -Tlint, else groff -ww -z);
#                             a page that is only a .so link names a page that exists;
#                             every tlsflow_*(3) a page refers to has a page
# man.sh coverage MANDIR LIB  every tlsflow_* symbol LIB exports has a section 3 page
set -eu
mode=${1:?usage: man.sh lint MANDIR | coverage MANDIR LIB}
dir=$(cd "${2:?}" && pwd)
fail=0
bad() { echo "FAIL: $*"; fail=1; }
is_link() { [ "$(sed -n '1{s/^\(\.so\) .*/\1/p}' "$1")" = .so ] && [ "$(wc -l < "$1")" -eq 1 ]; }

case $mode in
lint)
    cd "$dir"
    if command -v mandoc >/dev/null 2>&1; then
        lint() { mandoc -Tlint -W warning "$1"; }
        echo "linting with mandoc -Tlint"
    elif command -v groff >/dev/null 2>&1; then
        lint() { out=$(groff -man -ww -z "$1" 2>&1) && [ -z "$out" ] || { echo "$out"; return 1; }; }
        echo "linting with groff -ww -z (no mandoc)"
    else
        echo "SKIP: neither mandoc nor groff installed"; exit 77
    fi
    n=0
    for page in man1/*.1 man3/*.3 man7/*.7; do
        [ -f "$page" ] || { bad "no pages match $page"; continue; }
        n=$((n + 1))
        if is_link "$page"; then
            target=$(sed 's/^\.so //' "$page")
            [ -f "$target" ] || bad "$page: .so $target: no such page"
            is_link "$target" 2>/dev/null && bad "$page: .so to another link ($target)"
            continue
        fi
        lint "$page" || bad "$page does not lint clean"
        name=$(basename "$page"); name=${name%.*}
        sed -n 's/^\.SH NAME$/x/p' "$page" | grep -q x || bad "$page has no NAME section"
        # each .BR reference to a tlsflow page must resolve
        for ref in $(sed -n 's/^\.BR \(tlsflow[a-z_\\-]*\) (\([137]\)).*/\1.\2/p' "$page" | sed 's/\\-/-/g'); do
            sec=${ref##*.}
            [ -f "man$sec/$ref" ] || bad "$page refers to $ref, which has no page"
        done
    done
    [ $fail -eq 0 ] && echo "ok: $n pages"
    ;;
coverage)
    lib=${3:?usage: man.sh coverage MANDIR LIB}
    syms=$(nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u)
    [ -n "$syms" ] || { echo "FAIL: $lib exports nothing"; exit 1; }
    n=0
    for s in $syms; do
        case $s in tlsflow_*) ;; *) continue ;; esac
        n=$((n + 1))
        [ -f "$dir/man3/$s.3" ] || bad "$s is exported but has no page ($dir/man3/$s.3)"
    done
    [ $fail -eq 0 ] && echo "ok: $n exported calls, each with a page"
    ;;
*) echo "usage: man.sh lint MANDIR | coverage MANDIR LIB"; exit 2 ;;
esac
exit $fail
