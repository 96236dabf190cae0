#!/usr/bin/env bash
# Installs what tlsflow needs on Debian 12, only what is missing.
#   scripts/deps.sh [build|test|vm|bench|package]...   (default: build test)
set -euo pipefail

build=(build-essential cmake pkg-config libgnutls28-dev liburing-dev libcmocka-dev)
test=(gnutls-bin openssl socat curl valgrind clang libclang-rt-14-dev python3 procps nginx-light mandoc faketime)
vm=(qemu-system-x86 busybox-static cpio xz-utils zstd kmod)
bench=(nginx-light wrk haproxy stunnel4 hitch)
# Debian packages: build them, check them with lintian, read the pages with man
package=(debhelper dpkg-dev lintian fakeroot man-db mandoc)

want=()
for set in "${@:-build test}"; do
    for s in $set; do
        case "$s" in
        build) want+=("${build[@]}") ;;
        test) want+=("${build[@]}" "${test[@]}") ;;
        vm) want+=("${vm[@]}") ;;
        bench) want+=("${build[@]}" "${bench[@]}") ;;
        package) want+=("${build[@]}" "${package[@]}") ;;
        *) echo "deps.sh: unknown set '$s'" >&2; exit 2 ;;
        esac
    done
done

missing=()
for p in "${want[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
echo "deps.sh: installing ${missing[*]}" >&2
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -q)
if ! "${apt[@]}" install --no-install-recommends "${missing[@]}"; then
    "${apt[@]}" update
    "${apt[@]}" install --no-install-recommends "${missing[@]}"
fi
