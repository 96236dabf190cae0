#!/bin/sh
# exports.sh LIB HEADER [CC]: the shared library exports exactly the public API.
#   - every defined dynamic symbol is tlsflow_* (version nodes aside), versioned TLSFLOW_0
#   - every function the public header declares is exported
#   - the SONAME is libtlsflow.so.0
set -eu
lib=${1:?usage: exports.sh LIB HEADER [CC]}
header=${2:?usage: exports.sh LIB HEADER [CC]}
cc=${3:-cc}
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tlsflow-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Defined dynamic symbols; type A entries are the version nodes themselves.
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' > "$tmp/raw"
sed 's/@.*//' "$tmp/raw" | sort -u > "$tmp/exported"
[ -s "$tmp/exported" ] || { echo "FAIL: $lib exports nothing"; exit 1; }
if grep -v '^tlsflow_' "$tmp/exported" > "$tmp/stray"; then
    echo "FAIL: exported symbols outside the tlsflow_ namespace:"; sed 's/^/  /' "$tmp/stray"; fail=1
fi
if grep -v '@@TLSFLOW_0$' "$tmp/raw" > "$tmp/unversioned"; then
    echo "FAIL: symbols without the TLSFLOW_0 version:"; sed 's/^/  /' "$tmp/unversioned"; fail=1
fi

# The functions the header declares, as the compiler sees them.
printf '#include "%s"\n' "$header" > "$tmp/h.c"
"$cc" -fsyntax-only -aux-info "$tmp/aux" "$tmp/h.c"
grep -F "$(basename "$header"):" "$tmp/aux" |
    sed 's|^/\*[^*]*\*/ *||' |
    sed -n 's/^[^(]*[ *]\(tlsflow_[A-Za-z0-9_]*\) (.*/\1/p' | sort -u > "$tmp/declared"
[ "$(wc -l < "$tmp/declared")" -ge 20 ] || { echo "FAIL: found only $(wc -l < "$tmp/declared") declarations in $header"; fail=1; }
if comm -23 "$tmp/declared" "$tmp/exported" > "$tmp/missing" && [ -s "$tmp/missing" ]; then
    echo "FAIL: declared in $header but not exported:"; sed 's/^/  /' "$tmp/missing"; fail=1
fi
if comm -13 "$tmp/declared" "$tmp/exported" > "$tmp/extra" && [ -s "$tmp/extra" ]; then
    echo "FAIL: exported but not declared in $header:"; sed 's/^/  /' "$tmp/extra"; fail=1
fi

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" != "libtlsflow.so.0" ]; then
    echo "FAIL: SONAME is '$soname', not libtlsflow.so.0"; fail=1
fi

[ $fail -eq 0 ] && echo "ok: $(wc -l < "$tmp/exported") symbols, all declared, SONAME $soname"
exit $fail
