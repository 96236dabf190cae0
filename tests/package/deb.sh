#!/usr/bin/env bash
# deb.sh SRC: the Debian packages, end to end, leaving the machine as found.
#   1. dpkg-buildpackage -us -uc -b in a temporary copy of SRC (SRC stays clean);
#   2. lintian: no errors;
#   3. apt-get install ./*.deb;
#   4. every installed example builds with pkg-config; examples/echo_server.c,
#      as libtlsflow-dev installs it, built against the
#      installed package with pkg-config and with find_package(tlsflow), each
#      run against openssl s_client; man -w finds the pages; the tools run;
#   5. every package this script installed is purged again (also on failure).
# Needs root or sudo (as scripts/deps.sh), and scripts/deps.sh package test.
set -euo pipefail
src=$(cd "${1:?usage: deb.sh SRC}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tlsflow-deb.XXXXXX")
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -q)
fail=0
step() { echo "--- $*"; }
bad() { echo "FAIL: $*"; fail=1; }
installed() { dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 ~ /^.i/ { print $2 }' | sort; }

have=$(installed)
for p in libtlsflow0 libtlsflow-dev tlsflow-tools; do
    if grep -qx "$p" <<< "$have"; then
        echo "FAIL: $p is installed already; remove it first (this lane purges what it installs)"
        exit 1
    fi
done
# What this script installed: the packages its own apt-get set up (read from
# apt-get's output, not from a before/after comparison: what another apt-get
# on the machine installs meanwhile is not ours to undo), less those that were
# there before (one it upgraded, say).
installed > "$tmp/before"
ours() {
    [[ -f $tmp/install.log ]] && sed -n 's/^Setting up \([^ :]*\).*/\1/p' "$tmp/install.log"
    installed | grep -x -e libtlsflow0 -e libtlsflow-dev -e tlsflow-tools -e 'libtlsflow0-dbgsym' \
        -e 'tlsflow-tools-dbgsym' || true
}
cleanup() {
    mapfile -t new < <(ours | sort -u | comm -23 - "$tmp/before")
    if [[ ${#new[@]} -gt 0 ]]; then
        echo "--- purging ${new[*]}"
        "${apt[@]}" purge "${new[@]}" > "$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; echo "FAIL: purge"; }
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

step "copy of the tree"
mkdir "$tmp/src"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$src" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$tmp/src"
else
    tar -C "$src" --exclude=./_build --exclude=./build -cf - . | tar -xf - -C "$tmp/src"
fi

step "dpkg-buildpackage -us -uc -b"
if ! (cd "$tmp/src" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -us -uc -b) > "$tmp/build.log" 2>&1; then
    tail -n 60 "$tmp/build.log"; echo "FAIL: dpkg-buildpackage"; exit 1
fi
grep -E '^dpkg-gensymbols: warning' "$tmp/build.log" || true
ls "$tmp"/*.deb

step "lintian"
lintian --fail-on error --tag-display-limit 0 "$tmp"/*.changes 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error "$tmp"/*.changes > /dev/null 2>&1 || bad "lintian reports errors"

step "apt-get install ./*.deb"
(cd "$tmp" && "${apt[@]}" install --no-install-recommends ./*.deb) > "$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; echo "FAIL: apt-get install"; exit 1; }

step "man pages"
for page in tlsflow_read tlsflow_writev "7 tlsflow" tlsflow-serve tlsflow-bench tlsflow-client; do
    # shellcheck disable=SC2086
    where=$(man -w $page 2>&1) || { bad "man -w $page: $where"; continue; }
    echo "man -w $page: $where"
done

# a page reached through a .so link (a symlink once packaged) renders
text=$(MANWIDTH=80 MANPAGER=cat man tlsflow_writev 2>&1) || bad "man tlsflow_writev: $text"
[[ $text == *"tlsflow_writev("*"iovcnt"* ]] || bad "man tlsflow_writev does not show its synopsis"

step "the tools"
for t in tlsflow-serve tlsflow-bench tlsflow-client; do
    out=$("$t" --version 2>&1) || bad "$t --version failed: $out"
done

certs=$tmp/certs
"$src/tests/common/make-certs.sh" "$certs" > /dev/null
example=/usr/share/doc/libtlsflow-dev/examples/echo_server.c
[[ -f $example ]] || { bad "libtlsflow-dev has no $example"; example=$src/examples/echo_server.c; }

# echo_check BIN: runs the echo server example and a round trip with s_client
echo_check() {
    local bin=$1 port pid got
    "$bin" "$certs/server-ecdsa.pem" "$certs/server-ecdsa-key.pem" 0 > "$tmp/echo.out" 2> "$tmp/echo.err" &
    pid=$!
    for _ in $(seq 100); do [[ -s $tmp/echo.out ]] && break; sleep 0.1; done
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/echo.out")
    if [[ -z $port ]]; then
        kill "$pid" 2>/dev/null || true; cat "$tmp/echo.err"; bad "$bin did not listen"; return
    fi
    got=$( (echo "hello from the package lane"; sleep 1) | timeout 20 openssl s_client -quiet \
           -connect "127.0.0.1:$port" -servername localhost -verify_hostname localhost \
           -CAfile "$certs/ca.pem" -verify_return_error 2> "$tmp/s_client.err") || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ $got == "hello from the package lane" ]] || { cat "$tmp/s_client.err"; bad "$bin did not echo (got '$got')"; }
    # the system's copy (/usr/lib, or /lib with merged /usr), not a build tree's
    ldd "$bin" | grep -E '^\s*libtlsflow\.so\.0 => (/usr)?/lib/[^ ]*libtlsflow\.so\.0 ' > "$tmp/ldd.txt" ||
        { ldd "$bin"; bad "$bin does not load the installed libtlsflow.so.0"; }
}

step "every installed example builds with pkg-config"
for ex in /usr/share/doc/libtlsflow-dev/examples/*.c; do
    [[ -f $ex ]] || { bad "no examples installed"; break; }
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror -pthread "$ex" -o "$tmp/$(basename "$ex" .c)" \
        $(pkg-config --cflags --libs tlsflow) || bad "$ex does not build against the package"
done

step "echo_server.c with pkg-config"
# shellcheck disable=SC2046
if cc -std=c11 -Wall -Wextra -Werror "$example" -o "$tmp/echo-pc" $(pkg-config --cflags --libs tlsflow); then
    echo_check "$tmp/echo-pc"
else
    bad "the example does not build with pkg-config"
fi

step "echo_server.c with find_package(tlsflow)"
if cmake -S "$src/tests/package/cmake-consumer" -B "$tmp/cbuild" -DCONSUMER_SOURCE="$example" \
        > "$tmp/cmake.log" 2>&1 && cmake --build "$tmp/cbuild" >> "$tmp/cmake.log" 2>&1; then
    grep -q "tlsflow_DIR:PATH=/usr/lib/" "$tmp/cbuild/CMakeCache.txt" ||
        bad "find_package found tlsflow outside /usr: $(grep tlsflow_DIR "$tmp/cbuild/CMakeCache.txt")"
    echo_check "$tmp/cbuild/consumer"
else
    cat "$tmp/cmake.log"; bad "the example does not build with find_package(tlsflow)"
fi

[[ $fail -eq 0 ]] && echo "ok"
exit $fail
