#!/bin/sh
# /init of the kTLS test VM (busybox sh).  Built into the initramfs by
# mkinitramfs.sh; run.sh reads the console.  Every line run.sh parses starts with
# "TLSFLOW-VM-"; the last one is the sentinel
#   TLSFLOW-VM-RESULT: pass N fail M skip K warnings W
# after which the VM powers off.  No sentinel means the run is broken.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C

# The initramfs has no /dev/console node (cpio built without root), so the
# console is opened once devtmpfs is up.
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
echo    # the firmware's last escape codes share this line, not a result line

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm /run /tmp /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
# /tmp may hold build-tree paths copied at their host location: keep those.
if [ -z "$(ls -A /tmp)" ]; then mount -t tmpfs -o mode=1777 tmpfs /tmp; fi
chmod 1777 /tmp
hostname tlsflow-vm

say() { echo "TLSFLOW-VM-$*"; }
now() { read -r up _ < /proc/uptime; echo "$up"; }

# Kernel messages from here on are ours: boot-time noise is not counted.
echo "tlsflow-vm: init start" > /dev/kmsg
echo 5 > /proc/sys/kernel/printk   # warnings reach the console as they happen

ip link set lo up
ip addr add 127.0.0.1/8 dev lo 2>/dev/null
ip -6 addr add ::1/128 dev lo 2>/dev/null

say "INFO: kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
for m in $(cat /etc/tlsflow/modules); do
    modprobe "$m" 2>&1 || say "INFO: modprobe $m failed"
done
say "INFO: modules: $(awk '{printf "%s ", $1}' /proc/modules)"
say "INFO: tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
say "INFO: crypto: $(awk -F': *' '/^driver/ && $2 ~ /gcm|ccm|chacha|rfc7539|rfc4106/ {printf "%s ", $2}' /proc/crypto)"
if [ -r /proc/net/tls_stat ]; then
    while read -r k v; do say "TLSSTAT-BEFORE: $k $v"; done < /proc/net/tls_stat
fi

PASS=0 FAIL=0 SKIP=0

# Kills what a test left running (peers it forgot), so the next test starts
# clean.  Kernel threads have no exe; builtins only, so nothing of ours forks.
reap_leftovers() {
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [ "$p" = 1 ] || [ "$p" = "$$" ] || [ ! -e "$d/exe" ] && continue
        read -r comm < "$d/comm" 2>/dev/null
        # busybox timeout's watcher outlives the test by up to a second.
        [ "$comm" = timeout ] || say "INFO: killing leftover pid $p ($comm) after $1"
        kill -9 "$p" 2>/dev/null
    done
}

# run_test NAME TIMEOUT WORKDIR SKIP_RC WILL_FAIL CMD...
run_test() {
    name=$1 tmo=$2 wd=$3 skiprc=$4 willfail=$5
    shift 5
    say "START: $name"
    mkdir -p "$wd"
    t0=$(now)
    # Straight to the console, no pipe: a child the test leaves behind would
    # hold a pipe open and stall the run past the timeout.
    (cd "$wd" && exec timeout "$tmo" "$@") </dev/null 2>&1
    rc=$?
    t1=$(now)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" = 143 ] || [ "$rc" = 137 ]; then
        verdict=TIMEOUT
    elif [ -n "$skiprc" ] && [ "$rc" = "$skiprc" ]; then
        verdict=SKIP
    elif { [ "$willfail" = 1 ] && [ "$rc" != 0 ]; } || { [ "$willfail" != 1 ] && [ "$rc" = 0 ]; }; then
        verdict=PASS
    else
        verdict=FAIL
    fi
    case $verdict in
        PASS) PASS=$((PASS + 1)) ;;
        SKIP) SKIP=$((SKIP + 1)) ;;
        *)    FAIL=$((FAIL + 1)) ;;
    esac
    say "TEST: $verdict $name ${secs}s rc=$rc"
    reap_leftovers "$name"
}

export TLSFLOW_EXPECT_KTLS=1
. /etc/tlsflow/tests.sh

# Kernel warnings since init started: any one fails the run.
dmesg | awk '/tlsflow-vm: init start/ { on = 1; next } on' > /tmp/.dmesg
PAT='WARNING:|BUG:|Oops|refcount_t|KASAN|UBSAN|KFENCE|kernel BUG|general protection fault|list_(add|del) corruption|INFO: task .* blocked|rcu: INFO|Kernel panic|stack-protector|Bad page'
WARN=$(grep -E -c "$PAT" /tmp/.dmesg)
if [ "$WARN" -gt 0 ]; then
    while IFS= read -r l; do say "KWARN: $l"; done < /tmp/.dmesg
fi
if [ -r /proc/net/tls_stat ]; then
    while read -r k v; do say "TLSSTAT-AFTER: $k $v"; done < /proc/net/tls_stat
fi

say "RESULT: pass $PASS fail $FAIL skip $SKIP warnings $WARN"
sync
poweroff -f
