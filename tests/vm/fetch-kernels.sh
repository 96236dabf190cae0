#!/bin/bash
# fetch-kernels.sh CACHE_DIR [6.1|newest|all]
#
# Downloads and unpacks the Debian kernels the kTLS VM lane boots:
#   6.1     bookworm's newest linux-image-6.1.0-<N>-amd64 (the machine's own apt)
#   newest  the newest *complete* amd64 kernel of trixie-backports, fetched with a
#           private apt state under CACHE_DIR (the host's apt is left untouched)
# Everything lands in CACHE_DIR; a rerun that picks the same versions downloads
# nothing.  For each kernel one line goes to stdout:
#   <label> <kernel-release> <vmlinuz> <modules-dir>
# Progress and the picks go to stderr.
set -euo pipefail

die() { echo "fetch-kernels: $*" >&2; exit 1; }
log() { echo "fetch-kernels: $*" >&2; }

[ $# -ge 1 ] || die "usage: $0 CACHE_DIR [6.1|newest|all]"
CACHE=$(mkdir -p "$1" && cd "$1" && pwd)
WHICH=${2:-all}
case $WHICH in 6.1|newest|all) ;; *) die "unknown kernel '$WHICH'";; esac

need_pkg() {    # need_pkg COMMAND PACKAGE: install PACKAGE when COMMAND is missing
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2 (for $1)"
    apt-get -o DPkg::Lock::Timeout=300 install -y "$2" >&2
}
need_pkg xz xz-utils
need_pkg zstd zstd
need_pkg dpkg-deb dpkg
need_pkg busybox busybox-static

# The Debian mirror this machine already uses: the URI of the first deb source for a
# plain release suite (not -security), from one-line or deb822 sources.  No host name
# is written here, so CI and developers use their own mirror or proxy.
find_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk '$1 == "deb" {
                 i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                 if ($(i+1) ~ /^[a-z]+(-updates)?$/ && $i !~ /security/) { print $i; exit }
             }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             {
                 types = uris = suites = ""; enabled = 1
                 for (n = 1; n <= NF; n++) {
                     line = $n; sub(/^[ \t]+/, "", line)
                     if (line ~ /^#/) continue
                     split(line, kv, ":"); key = tolower(kv[1])
                     val = substr(line, length(kv[1]) + 2); sub(/^[ \t]+/, "", val)
                     if (key == "types") types = val
                     else if (key == "uris") uris = val
                     else if (key == "suites") suites = val
                     else if (key == "enabled" && val ~ /^no/) enabled = 0
                 }
                 if (!enabled || types !~ /(^| )deb( |$)/ || uris ~ /security/) next
                 ns = split(suites, s, /[ \t]+/)
                 for (k = 1; k <= ns; k++)
                     if (s[k] ~ /^[a-z]+(-updates)?$/) { split(uris, u, /[ \t]+/); print u[1]; exit }
             }' "$f"
    done
}

# ---------------------------------------------------------------- private apt
# Only the trixie-backports index lives here; the host's lists, status and
# preferences are not read or written (Dir::State::status is an empty file).
APTDIR=$CACHE/apt
APT_OPTS=(
    -o "APT::Sandbox::User=$(id -un)"
    -o "Dir::State=$APTDIR/state"
    -o "Dir::State::status=$APTDIR/status"
    -o "Dir::Cache=$APTDIR/cache"
    -o "Dir::Etc::sourcelist=$APTDIR/sources.list"
    -o "Dir::Etc::sourceparts=$APTDIR/sources.list.d"
    -o "Dir::Etc::preferences=$APTDIR/preferences"
    -o "Dir::Etc::preferencesparts=$APTDIR/preferences.d"
    -o "APT::Architecture=amd64"
    -o "APT::Architectures::=amd64"
)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

setup_private_apt() {
    local mirror
    mirror=$(find_mirror | head -n1)
    [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}"
    # trixie-backports is signed with the trixie archive keys.  Bookworm's own
    # debian-archive-keyring (2023.3+deb12u1 and later, a signed Debian update)
    # carries them; an older keyring is upgraded from the distribution rather
    # than by fetching keys from anywhere else.
    if [ ! -e /usr/share/keyrings/debian-archive-trixie-automatic.gpg ]; then
        log "trixie archive keys missing: upgrading debian-archive-keyring"
        apt-get -o DPkg::Lock::Timeout=300 install -y debian-archive-keyring >&2
    fi
    mkdir -p "$APTDIR"/state/lists/partial "$APTDIR"/cache/archives/partial \
             "$APTDIR"/sources.list.d "$APTDIR"/preferences.d
    : > "$APTDIR/status"
    echo "deb [signed-by=$KEYRING] $mirror trixie-backports main" > "$APTDIR/sources.list.new"
    mv "$APTDIR/sources.list.new" "$APTDIR/sources.list"
    log "mirror $mirror (from the machine's apt sources)"
}

# ------------------------------------------------------------------ unpacking
# unpack KREL DEB...: extract into $CACHE/kernels/KREL, normalise the layout to
# boot/vmlinuz-KREL + lib/modules/KREL, and mark it complete.
unpack() {
    local krel=$1; shift
    local dst=$CACHE/kernels/$krel tmp deb
    tmp=$(mktemp -d "$CACHE/kernels/.unpack.XXXXXX")
    for deb in "$@"; do dpkg-deb -x "$deb" "$tmp"; done
    # Merged-/usr packages put modules under usr/lib/modules.
    if [ -d "$tmp/usr/lib/modules/$krel" ] && [ ! -d "$tmp/lib/modules/$krel" ]; then
        mkdir -p "$tmp/lib/modules"
        mv "$tmp/usr/lib/modules/$krel" "$tmp/lib/modules/$krel"
    fi
    # Split packages (linux-binary-*) ship the image as lib/modules/<krel>/vmlinuz.
    if [ ! -f "$tmp/boot/vmlinuz-$krel" ] && [ -f "$tmp/lib/modules/$krel/vmlinuz" ]; then
        mkdir -p "$tmp/boot"
        mv "$tmp/lib/modules/$krel/vmlinuz" "$tmp/boot/vmlinuz-$krel"
    fi
    [ -f "$tmp/boot/vmlinuz-$krel" ] || die "$krel: no vmlinuz in the packages"
    [ -f "$tmp/lib/modules/$krel/modules.order" ] || die "$krel: no module tree in the packages"
    mkdir -p "$dst"
    rm -rf "${dst:?}/boot" "${dst:?}/lib"
    mv "$tmp/boot" "$dst/boot"
    mkdir -p "$dst/lib/modules"
    mv "$tmp/lib/modules/$krel" "$dst/lib/modules/$krel"
    rm -rf "$tmp"
    decompress_modules "$dst/lib/modules/$krel"
    touch "$dst/.complete"
}

# Modules may ship as .ko.xz / .ko.zst / .ko.gz; busybox modprobe and depmod read
# only plain .ko, so decompress them (all of them, once, in parallel) and rewrite
# modules.dep to match.
decompress_modules() {
    local mdir=$1
    log "decompressing modules in $mdir"
    find "$mdir" -name '*.ko.xz'  -print0 | xargs -0 -r -P "$(nproc)" -n 64 xz -d -f
    find "$mdir" -name '*.ko.zst' -print0 | xargs -0 -r -P "$(nproc)" -n 64 zstd -q -d -f --rm
    find "$mdir" -name '*.ko.gz'  -print0 | xargs -0 -r -P "$(nproc)" -n 64 gzip -d -f
    local f
    for f in modules.dep modules.order; do
        [ -f "$mdir/$f" ] && sed -i -E 's/\.ko\.(xz|zst|gz)/.ko/g' "$mdir/$f"
    done
    # The binary indexes (.bin) still name the compressed files; the initramfs
    # builder runs depmod on its own subset, so drop them.
    rm -f "$mdir"/modules.*.bin
    # Debian generates modules.dep at install time, so the packages lack it:
    # build it from the modules' own "depends=" (busybox depmod; kmod not needed).
    local base=${mdir%/lib/modules/*} krel=${mdir##*/}
    busybox depmod -b "$base" "$krel"
    [ -s "$mdir/modules.dep" ] || die "$krel: depmod produced no modules.dep"
    prune_modules "$mdir"
}

# Keep what a TLS/crypto initramfs can use (net/, crypto/, lib/, x86 crypto)
# plus anything those depend on; the rest (~90 % of the tree) only costs cache
# space.  modules.dep is kept whole: mkinitramfs copies only what it names.
prune_modules() {
    local mdir=$1
    awk -F': *' '
        { key = $1; keep = key ~ /^kernel\/(net|crypto|lib|arch\/x86\/crypto)\// }
        keep { print key; n = split($2, d, / +/); for (i = 1; i <= n; i++) if (d[i] != "") print d[i] }
    ' "$mdir/modules.dep" | sort -u > "$mdir/.keep"
    (cd "$mdir" && find kernel -name '*.ko' | sort > .all && comm -23 .all .keep | xargs -r rm -f)
    find "$mdir/kernel" -type d -empty -delete
    rm -f "$mdir/.all" "$mdir/.keep"
}

emit() {        # emit LABEL KREL
    local d=$CACHE/kernels/$2
    echo "$1 $2 $d/boot/vmlinuz-$2 $d/lib/modules/$2"
}

# ------------------------------------------------------------------- 6.1 (bookworm)
fetch_61() {
    local pkg krel ver deb
    pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' \
          | awk '{print $1}' | sort -V | tail -n1)
    if [ -z "$pkg" ] && [ ! -f "$CACHE/kernels/6.1.pick" ]; then
        # A fresh machine may have no package lists yet.
        apt-get -o DPkg::Lock::Timeout=300 update >&2 || true
        pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' \
              | awk '{print $1}' | sort -V | tail -n1)
    fi
    if [ -z "$pkg" ]; then
        # Fall back to what an earlier run fetched (offline rerun).
        [ -f "$CACHE/kernels/6.1.pick" ] || die "no linux-image-6.1.0-*-amd64 in apt (run apt-get update)"
        krel=$(cat "$CACHE/kernels/6.1.pick")
    else
        krel=${pkg#linux-image-}
        ver=$(apt-cache show "$pkg" | awk '/^Version:/ {print $2}' | sort -V | tail -n1)
        log "6.1: picked $pkg $ver"
        if [ ! -f "$CACHE/kernels/$krel/.complete" ]; then
            mkdir -p "$CACHE/debs"
            deb=$(ls "$CACHE/debs/${pkg}_${ver//:/%3a}_amd64.deb" 2>/dev/null || true)
            if [ -z "$deb" ]; then
                (cd "$CACHE/debs" && apt-get -o "APT::Sandbox::User=$(id -un)" download "$pkg=$ver" >&2)
                deb=$(ls "$CACHE/debs/${pkg}_"*"_amd64.deb" | sort -V | tail -n1)
            fi
            unpack "$krel" "$deb"
        fi
        echo "$krel" > "$CACHE/kernels/6.1.pick"
    fi
    [ -f "$CACHE/kernels/$krel/.complete" ] || die "6.1: $krel is not unpacked"
    log "6.1: $krel ready"
    emit 6.1 "$krel"
}

# ---------------------------------------------------- newest (trixie-backports)
# Newer kernels are split: linux-image-<v> is a meta package depending on
# linux-binary-<v>, linux-modules-<v> and linux-base-<v> at the same version, and the
# index sometimes lacks one of them.  A version is complete when every such
# dependency exists at the version asked for; older, unsplit images are complete
# by themselves.  Prints "PKG VERSION PART=VER..." for the newest complete one.
pick_newest() {
    local pkg ver parts dep name dver ok
    for pkg in $(apt-cache "${APT_OPTS[@]}" search --names-only '^linux-image-[0-9].*-amd64$' \
                 | awk '{print $1}' | grep -v -e '-cloud-' -e '-rt-' | sort -rV); do
        ver=$(apt-cache "${APT_OPTS[@]}" show "$pkg" | awk '/^Version:/ {print $2}' | sort -V | tail -n1)
        parts="$pkg=$ver"
        ok=1
        while read -r dep; do
            [ -n "$dep" ] || continue
            name=${dep%% *}
            dver=$(sed -E 's/.*\(= ([^)]*)\).*/\1/' <<<"$dep")
            if apt-cache "${APT_OPTS[@]}" show "$name=$dver" >/dev/null 2>&1; then
                parts="$parts $name=$dver"
            else
                log "newest: skipping $pkg $ver: $name $dver is not in the index"
                ok=0
                break
            fi
        done < <(apt-cache "${APT_OPTS[@]}" show "$pkg=$ver" | awk -F': ' '/^Depends:/ {print $2; exit}' \
                 | tr ',' '\n' | sed 's/^ *//' \
                 | grep -E '^linux-(binary|modules|base)-[0-9][^ ]* \(= ' || true)
        if [ $ok = 1 ]; then echo "$parts"; return 0; fi
    done
    return 1
}

fetch_newest() {
    local pick krel p debs=()
    setup_private_apt
    if apt-get "${APT_OPTS[@]}" update >&2 && pick=$(pick_newest); then
        krel=${pick%%=*}; krel=${krel#linux-image-}
        log "newest: picked $pick"
        if [ ! -f "$CACHE/kernels/$krel/.complete" ]; then
            mkdir -p "$CACHE/debs"
            for p in $pick; do
                local name=${p%%=*} ver=${p#*=}
                local f="$CACHE/debs/${name}_${ver//:/%3a}_amd64.deb"
                [ -f "$f" ] || (cd "$CACHE/debs" && apt-get "${APT_OPTS[@]}" download "$p" >&2)
                debs+=("$f")
            done
            unpack "$krel" "${debs[@]}"
        fi
        echo "$krel" > "$CACHE/kernels/newest.pick"
    else
        [ -f "$CACHE/kernels/newest.pick" ] || die "newest: no complete kernel in trixie-backports"
        krel=$(cat "$CACHE/kernels/newest.pick")
        log "newest: index unavailable, reusing cached $krel"
    fi
    [ -f "$CACHE/kernels/$krel/.complete" ] || die "newest: $krel is not unpacked"
    log "newest: $krel ready"
    emit newest "$krel"
}

# Drops kernels and packages that no pick names any more (a newer kernel was
# published), so the cache does not grow without bound.
prune_cache() {
    local keep=() d krel
    for d in "$CACHE"/kernels/*.pick; do [ -f "$d" ] && keep+=("$(cat "$d")"); done
    for d in "$CACHE"/kernels/*/; do
        krel=$(basename "$d")
        case " ${keep[*]} " in *" $krel "*) continue ;; esac
        log "pruning old kernel $krel"
        rm -rf "$d"
    done
    # The unpacked trees are the cache; the .deb files are not needed again.
    rm -f "$CACHE"/debs/*.deb
}

mkdir -p "$CACHE/kernels"
case $WHICH in
    6.1)    fetch_61 ;;
    newest) fetch_newest ;;
    all)    fetch_61; fetch_newest ;;
esac
prune_cache
