#!/bin/sh
# install.sh BUILD SRC CERTDIR [CC] [CXX]: `cmake --install` into a fresh
# prefix, then build tests/package/consumer.c against the installed files only:
# with pkg-config (shared, and static), with find_package(tlsflow), and check
# that the header compiles as C++ (and as strict C99).
set -eu
build=${1:?usage: install.sh BUILD SRC CERTDIR [CC] [CXX]}
src=${2:?}
certs=${3:?}
cc=${4:-cc}
cxx=${5:-c++}
here=$src/tests/package
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tlsflow-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail=0
step() { echo "--- $*"; }
bad() { echo "FAIL: $*"; fail=1; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" > "$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
so=$(find "$prefix" -name 'libtlsflow.so.0' | head -n 1)
[ -n "$so" ] || { bad "no libtlsflow.so.0 installed"; find "$prefix"; exit 1; }
libdir=$(dirname "$so")
for f in "$prefix/include/tlsflow.h" "$libdir/libtlsflow.so" "$libdir/libtlsflow.a" \
         "$libdir/pkgconfig/tlsflow.pc" "$libdir/cmake/tlsflow/tlsflowConfig.cmake" \
         "$libdir/cmake/tlsflow/tlsflowConfigVersion.cmake"; do
    [ -e "$f" ] || bad "missing $f"
done
for f in "$prefix/share/man/man7/tlsflow.7" "$prefix/share/man/man3/tlsflow_read.3" \
         "$prefix/share/man/man3/tlsflow_writev.3"; do
    [ -e "$f" ] || bad "missing $f (man pages)"
done
[ "$(ls "$prefix/include")" = "tlsflow.h" ] || bad "headers beyond tlsflow.h installed: $(ls "$prefix/include")"

step "pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cflags=$(pkg-config --cflags tlsflow)
libs=$(pkg-config --libs tlsflow)
echo "cflags: $cflags"
echo "libs:   $libs"
case "$cflags $libs" in
    *"$prefix"*) ;;
    *) bad "tlsflow.pc does not point into the prefix it was installed to ($prefix):
      $(grep '^prefix=' "$libdir/pkgconfig/tlsflow.pc") (cmake/tlsflow.pc.in bakes CMAKE_INSTALL_PREFIX in at configure time)" ;;
esac
# shellcheck disable=SC2086
if "$cc" -std=c11 -Wall -Wextra -Werror $cflags "$here/consumer.c" -o "$tmp/consumer-pc" $libs 2> "$tmp/cc.log"; then
    LD_LIBRARY_PATH=$libdir "$tmp/consumer-pc" "$certs" || bad "consumer (pkg-config build) failed"
    ldd "$tmp/consumer-pc" | grep -q "$libdir/libtlsflow.so.0" 2>/dev/null ||
        LD_LIBRARY_PATH=$libdir ldd "$tmp/consumer-pc" | grep -q "$libdir/libtlsflow.so.0" ||
        bad "consumer did not load the installed library"
else
    cat "$tmp/cc.log"; bad "consumer does not build with pkg-config's flags"
fi

step "a pkg-config program against OpenSSL and GnuTLS peers, both roles"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { python3 -c 'import socket,sys,time
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close(); sys.exit(0)
    except OSError: time.sleep(0.1)
sys.exit(1)' "$1"; }
# shellcheck disable=SC2086
if ! "$cc" -std=c11 -Wall -Wextra -Werror $cflags "$here/peers.c" -o "$tmp/peers" $libs; then
    bad "peers.c does not build with pkg-config's flags"
elif ! command -v socat >/dev/null || ! command -v gnutls-serv >/dev/null || ! command -v openssl >/dev/null; then
    echo "(skipped: socat, gnutls-serv or openssl missing)"
else
    export LD_LIBRARY_PATH=$libdir
    p=$(free_port)
    socat OPENSSL-LISTEN:"$p",bind=127.0.0.1,reuseaddr,fork,cert="$certs/server-rsa.pem",key="$certs/server-rsa-key.pem",verify=0 EXEC:cat 2>"$tmp/socat.log" &
    sp=$!
    wait_port "$p" && "$tmp/peers" client localhost "$p" "$certs/ca.pem" || bad "tlsflow client vs OpenSSL (socat) echo"
    kill $sp 2>/dev/null; wait $sp 2>/dev/null || true
    p=$(free_port)
    gnutls-serv --echo -p "$p" --x509certfile="$certs/server-rsa.pem" --x509keyfile="$certs/server-rsa-key.pem" >"$tmp/gs.log" 2>&1 &
    sp=$!
    wait_port "$p" && "$tmp/peers" client localhost "$p" "$certs/ca.pem" || bad "tlsflow client vs gnutls-serv --echo"
    kill $sp 2>/dev/null; wait $sp 2>/dev/null || true
    for peer in openssl gnutls; do
        mkfifo "$tmp/port.$peer"
        "$tmp/peers" server "$certs/server-ecdsa.pem" "$certs/server-ecdsa-key.pem" >"$tmp/port.$peer" &
        sp=$!
        read -r _ p < "$tmp/port.$peer"
        head -c 65536 /dev/urandom | base64 -w 63 | head -c 65536 > "$tmp/msg.$peer"
        if [ $peer = openssl ]; then
            (cat "$tmp/msg.$peer"; sleep 2) | timeout 20 openssl s_client -quiet -nocommands -no_ign_eof -CAfile "$certs/ca.pem" \
                -verify_return_error -servername localhost -connect 127.0.0.1:"$p" >"$tmp/echo.$peer" 2>"$tmp/cli.log"
        else
            (cat "$tmp/msg.$peer"; sleep 2) | timeout 20 gnutls-cli --logfile="$tmp/gcli.log" --x509cafile="$certs/ca.pem" -p "$p" localhost \
                >"$tmp/echo.$peer" 2>"$tmp/cli.log"
        fi
        cmp -s "$tmp/msg.$peer" "$tmp/echo.$peer" || { cat "$tmp/cli.log"; bad "tlsflow server vs $peer client: echo differs"; }
        wait $sp || bad "tlsflow server vs $peer client: server failed"
    done
    unset LD_LIBRARY_PATH
fi

step "static library"
# Requires.private carries the dependencies a static link needs ...
slibs=$(pkg-config --static --libs tlsflow)
case "$slibs" in *-lgnutls*) ;; *) bad "pkg-config --static --libs lacks -lgnutls: $slibs" ;; esac
case "$slibs" in *-luring*) ;; *) bad "pkg-config --static --libs lacks -luring: $slibs" ;; esac
# ... linked here against their shared forms (not every system ships the
# static archives of GnuTLS's own dependencies).
dlibs=$(pkg-config --libs gnutls liburing)
# shellcheck disable=SC2086
if "$cc" -std=c11 -Wall -Wextra -Werror $cflags "$here/consumer.c" -o "$tmp/consumer-static" \
        -L"$libdir" -Wl,-Bstatic -ltlsflow -Wl,-Bdynamic $dlibs 2> "$tmp/cc-static.log"; then
    ! ldd "$tmp/consumer-static" | grep -q libtlsflow || bad "static consumer links libtlsflow.so"
    "$tmp/consumer-static" "$certs" || bad "consumer (static) failed"
else
    cat "$tmp/cc-static.log"; bad "consumer does not link with libtlsflow.a"
fi

step "find_package(tlsflow)"
if cmake -S "$here/cmake-consumer" -B "$tmp/cbuild" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_COMPILER="$cc" -DCONSUMER_SOURCE="$here/consumer.c" > "$tmp/cmake.log" 2>&1 &&
   cmake --build "$tmp/cbuild" >> "$tmp/cmake.log" 2>&1; then
    "$tmp/cbuild/consumer" "$certs" || bad "consumer (CMake build) failed"
else
    cat "$tmp/cmake.log"; bad "find_package(tlsflow) project does not build"
fi

step "header as C++ and strict C99"
"$cxx" -std=c++11 -Wall -Wextra -Werror -pedantic -I"$prefix/include" "$here/cxx_header.cpp" \
    -o "$tmp/cxx" -L"$libdir" -ltlsflow || bad "C++ program on the header does not build"
[ ! -x "$tmp/cxx" ] || LD_LIBRARY_PATH=$libdir "$tmp/cxx" || bad "C++ program failed"
printf '#include <tlsflow.h>\n' > "$tmp/c99.c"
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$prefix/include" "$tmp/c99.c" ||
    bad "the header is not strict C99"

[ $fail -eq 0 ] && echo "ok"
exit $fail
