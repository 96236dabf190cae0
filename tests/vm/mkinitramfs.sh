#!/bin/bash
# mkinitramfs.sh — builds the kTLS test VM's initramfs in two parts that the
# kernel unpacks one after the other (concatenated cpio archives):
#
#   mkinitramfs.sh base --plan PLAN_DIR --out BASE.cpio
#       kernel-independent: busybox, /init (init.sh), the peers (gnutls-serv,
#       gnutls-cli, openssl, socat, certtool) and the test binaries with all
#       their shared libraries, and the build/source paths the tests use, at
#       the same absolute paths as on the host.  PLAN_DIR (written by run.sh)
#       holds tests.sh (the run_test lines init sources), copy.txt (absolute
#       paths to copy) and mkdir.txt (directories to create).
#
#   mkinitramfs.sh modules --moddir /…/lib/modules/KREL --out MODS.cpio
#       tls.ko and the crypto modules for AES-GCM, AES-CCM and
#       ChaCha20-Poly1305 (those that are modular in this kernel), with their
#       dependencies, decompressed, and a modules.dep from `depmod -b`.
#
# The image is left uncompressed: qemu loads it straight into memory, which
# under TCG is faster than decompressing it in the guest.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "mkinitramfs: $*" >&2; exit 1; }

need_pkg() {    # need_pkg COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "mkinitramfs: installing $2 (for $1)" >&2
    apt-get -o DPkg::Lock::Timeout=300 install -y "$2" >&2
}

# Peers the tests may start; all are required but nginx, taken when installed.
PEERS_REQUIRED="gnutls-serv gnutls-cli certtool openssl socat"
PEERS_OPTIONAL="nginx"

mkcpio() {      # mkcpio ROOT OUT
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort \
        | cpio -o -H newc -R 0:0 --quiet) > "$2.tmp"
    mv "$2.tmp" "$2"
}

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# copy_abs ROOT PATH: PATH (file or directory) to the same place under ROOT,
# symlinks followed, so the guest sees plain files.
copy_abs() {
    local root=$1 p=$2
    [ -e "$p" ] || die "missing $p"
    mkdir -p "$root$(dirname "$p")"
    if [ -d "$p" ]; then
        mkdir -p "$root$p"
        cp -RL --preserve=mode,timestamps "$p/." "$root$p/"
    else
        cp -L --preserve=mode,timestamps "$p" "$root$p"
    fi
}

# Shared libraries (and the loader) of an ELF, as absolute paths.
elf_libs() {
    ldd "$1" 2>/dev/null | awk '
        $2 == "=>" && $3 ~ /^\// { print $3 }
        $1 ~ /^\// { print $1 }'
}

build_base() {
    local plan=$1 out=$2 root p f
    [ -f "$plan/tests.sh" ] || die "$plan/tests.sh missing"
    need_pkg cpio cpio
    need_pkg busybox busybox-static
    for p in $PEERS_REQUIRED; do
        case $p in
            gnutls-serv|gnutls-cli) need_pkg "$p" gnutls-bin ;;
            certtool) need_pkg "$p" gnutls-bin ;;
            *) need_pkg "$p" "$p" ;;
        esac
    done

    root=$(mktemp -d "${TMPDIR:-/tmp}/tlsflow-initramfs.XXXXXX")
    trap 'rm -rf "$root"' RETURN
    # Merged-/usr layout like the host, so paths from ldd land where they resolve.
    mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{dev,proc,sys,tmp,run,root,etc/tlsflow}
    ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"
    ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"

    local elves=()
    # Peers.
    for p in $PEERS_REQUIRED $PEERS_OPTIONAL; do
        f=$(command -v "$p" || true)
        if [ -z "$f" ]; then
            case " $PEERS_OPTIONAL " in *" $p "*) continue ;; esac
            die "peer $p not found"
        fi
        copy_abs "$root" "$f"
        elves+=("$f")
    done
    # OpenSSL's config and providers; GnuTLS's system config, if any.
    if [ -e /usr/lib/ssl/openssl.cnf ]; then
        mkdir -p "$root/usr/lib/ssl" "$root/etc/ssl"
        cp -L /usr/lib/ssl/openssl.cnf "$root/usr/lib/ssl/openssl.cnf"
        cp -L /usr/lib/ssl/openssl.cnf "$root/etc/ssl/openssl.cnf"
    fi
    for d in /usr/lib/x86_64-linux-gnu/ossl-modules /etc/gnutls; do
        [ -d "$d" ] || continue
        copy_abs "$root" "$d"
        for f in "$d"/*.so; do [ -f "$f" ] && elves+=("$f"); done
    done
    # Tests and the paths they use.
    while IFS= read -r p; do
        [ -n "$p" ] || continue
        copy_abs "$root" "$p"
        if [ -f "$p" ] && is_elf "$p"; then elves+=("$p"); fi
        if [ -d "$p" ]; then
            while IFS= read -r -d '' f; do is_elf "$f" && elves+=("$f"); done \
                < <(find "$p" -type f -perm -u+x -print0)
        fi
    done < "$plan/copy.txt"
    while IFS= read -r p; do
        [ -n "$p" ] && mkdir -p "$root$p"
    done < "$plan/mkdir.txt"
    # Libraries of everything, the dynamic loader included.
    for f in "${elves[@]}"; do
        for p in $(elf_libs "$f"); do
            [ -e "$root$p" ] || copy_abs "$root" "$p"
        done
    done
    # Busybox last, so its applets never shadow a real binary copied above.
    cp -L "$(command -v busybox)" "$root/usr/bin/busybox"
    for p in $(elf_libs "$(command -v busybox)"); do    # none when static
        [ -e "$root$p" ] || copy_abs "$root" "$p"
    done
    for p in $(busybox --list); do
        [ -e "$root/usr/bin/$p" ] || [ -e "$root/usr/sbin/$p" ] || ln -s busybox "$root/usr/bin/$p"
    done
    # The kernel runs /sbin/modprobe to autoload crypto templates.
    for p in modprobe insmod rmmod lsmod depmod poweroff reboot; do
        rm -f "$root/usr/bin/$p"; ln -s ../bin/busybox "$root/usr/sbin/$p"
    done

    cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
    printf 'passwd: files\ngroup: files\nhosts: files\n' > "$root/etc/nsswitch.conf"
    [ -e /etc/services ] && cp /etc/services "$root/etc/services"
    [ -e /etc/protocols ] && cp /etc/protocols "$root/etc/protocols"

    install -m 0755 "$HERE/init.sh" "$root/init"
    cp "$plan/tests.sh" "$root/etc/tlsflow/tests.sh"
    mkcpio "$root" "$out"
}

# The modules a kTLS session needs: the ULP and the AEADs it allocates
# (gcm(aes), ccm(aes), rfc7539(chacha20,poly1305)) with the templates and
# ciphers those pull in, generic and x86-accelerated.  Names that are builtin
# or absent in a kernel are simply not there to load.
WANT_MODULES="tls gcm ccm chacha20poly1305 ctr ghash-generic aes_generic libaes
    chacha_generic chacha poly1305_generic libpoly1305 cryptd crypto_simd
    aesni-intel ghash-clmulni-intel chacha-x86_64 poly1305-x86_64"

build_modules() {
    local mdir=$1 out=$2 krel root m rel dep
    krel=$(basename "$mdir")
    [ -f "$mdir/modules.dep" ] || die "$mdir/modules.dep missing (run fetch-kernels.sh)"
    need_pkg cpio cpio
    root=$(mktemp -d "${TMPDIR:-/tmp}/tlsflow-modules.XXXXXX")
    trap 'rm -rf "$root"' RETURN
    mkdir -p "$root/usr/lib/modules/$krel" "$root/etc/tlsflow"
    ln -s usr/lib "$root/lib"

    # modules.dep lines are "path.ko: dep.ko ..." with the full closure.
    declare -A picked=()
    local load=()
    for m in $WANT_MODULES; do
        local pat=${m//[-_]/[-_]}
        rel=$(grep -E "(^|/)${pat}\.ko:" "$mdir/modules.dep" | head -n1 | cut -d: -f1 || true)
        if [ -z "$rel" ]; then
            if grep -qE "(^|/)${pat}\.ko$" "$mdir/modules.builtin"; then
                echo "mkinitramfs: $krel: $m is builtin" >&2
            fi
            continue
        fi
        load+=("$m")
        for dep in $rel $(grep -E "^${rel//./\\.}:" "$mdir/modules.dep" | cut -d: -f2-); do
            picked[$dep]=1
        done
    done
    if [ "${load[0]:-}" != tls ] && ! grep -qE '(^|/)tls\.ko$' "$mdir/modules.builtin"; then
        die "$krel: no tls module, neither loadable nor builtin"
    fi
    for rel in "${!picked[@]}"; do
        mkdir -p "$root/usr/lib/modules/$krel/$(dirname "$rel")"
        cp "$mdir/$rel" "$root/usr/lib/modules/$krel/$rel"
    done
    cp "$mdir/modules.builtin" "$mdir/modules.order" "$root/usr/lib/modules/$krel/"
    # depmod over the subset writes its modules.dep/alias (busybox: no kmod needed).
    busybox depmod -b "$root" "$krel"
    [ -s "$root/usr/lib/modules/$krel/modules.dep" ] || die "$krel: depmod failed"
    printf '%s\n' "${load[@]}" > "$root/etc/tlsflow/modules"
    echo "mkinitramfs: $krel: ${#picked[@]} module files; load: ${load[*]}" >&2
    rm "$root/lib"      # the base archive provides the lib -> usr/lib link
    mkcpio "$root" "$out"
}

[ $# -ge 1 ] || die "usage: $0 base --plan DIR --out FILE | modules --moddir DIR --out FILE"
cmd=$1; shift
plan='' moddir='' out=''
while [ $# -gt 0 ]; do
    case $1 in
        --plan) plan=$2; shift 2 ;;
        --moddir) moddir=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
[ -n "$out" ] || die "--out is required"
case $cmd in
    base) [ -n "$plan" ] || die "--plan is required"; build_base "$plan" "$out" ;;
    modules) [ -n "$moddir" ] || die "--moddir is required"; build_modules "$moddir" "$out" ;;
    *) die "unknown command $cmd" ;;
esac
