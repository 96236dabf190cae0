#!/bin/bash
# tlsflow-serve against Debian's nginx (OpenSSL) on this machine, in one go.
#
# Same certificate (ECDSA P-256), same files, TLS 1.3 with AES-128-GCM and
# X25519 on both, one server thread/worker each.  Measures, for each server:
#   - throughput of 1 MiB and 100 MiB files with 1 and 16 connections, by wrk
#     (OpenSSL client) and by tlsflow-bench (GnuTLS client), MB/s, medians of
#     several runs;
#   - the server's CPU seconds per GB sent (/proc/PID/stat utime+stime deltas);
#   - small responses: keep-alive requests/s for a 1-byte file at 16, 100 and
#     1,000 connections (wrk and tlsflow-bench), and new connections/s (wrk,
#     16 connections, "Connection: close");
#   - full TLS 1.3 handshakes per second (tlsflow-bench handshake, ECDSA P-256);
#   - RSS per idle connection with N idle TLS 1.3 flows (default 10,000);
#   - tlsflow-serve's own io_uring submission / plaintext copy counters, and
#     per io_uring set-up (TLSFLOW_RING_FLAGS plain, coop, defer,regfd) its
#     submissions and io_uring_enter calls per MiB (1 MiB, c=16) and per
#     request (1 byte, c=100).
# Prints every figure, the ratios tlsflow/nginx and how far each target is
# missed, and (full mode) writes BENCHMARKS.md at the repository root from
# that output, with the exact command line.
#
# From a fresh clone: builds the tools into build-bench/ (RelWithDebInfo, no
# tests) unless --build names a built tree, and apt-get installs nginx-light,
# wrk (and linux-perf or valgrind for --profile) when missing.
#
# usage: bench/compare.sh [--quick] [--vm] [--profile] [--runs N] [--duration S]
#                         [--idle N] [--build DIR] [--ktls] [--out FILE | --no-write]
#   --quick     one short run per figure, 2,000 idle flows, about 1.5 minutes;
#               does not write BENCHMARKS.md unless --out is given
#   --vm        also bench/compare-vm.sh: both servers, kTLS and userspace,
#               inside the kTLS lane's qemu VM (newest kernel); its output is
#               part of BENCHMARKS.md
#   --profile   perf record (or callgrind) of tlsflow-serve serving 1 MiB to
#               16 wrk connections; the top of the profile goes in the output
#   --ktls      let both servers use kernel TLS (tlsflow --ktls auto, nginx
#               "ssl_conf_command Options KTLS"); off by default (this
#               machine's kernel may have no tls module)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMDLINE="bench/compare.sh${*:+ $*}"
RUNS=3 DURATION=5 IDLE=10000 QUICK=0 KTLS=0 OUT= WRITE=1 BUILD= ONLY= VM=0 PROFILE=0
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1; RUNS=1; DURATION=2; IDLE=2000 ;;
        --runs) RUNS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --idle) IDLE=$2; shift ;;
        --build) BUILD=$2; shift ;;
        --ktls) KTLS=1 ;;
        --vm) VM=1 ;;
        --profile) PROFILE=1 ;;
        --out) OUT=$2; shift ;;
        --no-write) WRITE=0 ;;
        --only) ONLY=$2; WRITE=0; shift ;;   # one server, for debugging this script
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$OUT" ]; then
    [ "$QUICK" = 1 ] && WRITE=0
    OUT=$ROOT/BENCHMARKS.md
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
apt_install() {
    echo "compare.sh: installing $*" >&2
    as_root apt-get -o DPkg::Lock::Timeout=300 install -y "$@" >&2 ||
        { as_root apt-get -o DPkg::Lock::Timeout=300 update >&2 &&
          as_root apt-get -o DPkg::Lock::Timeout=300 install -y "$@" >&2; }
}
need() {   # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
    command -v "$1" >/dev/null 2>&1 || { echo "compare.sh: $1 ($2) missing" >&2; exit 2; }
}
need nginx nginx-light
need wrk wrk
need certtool gnutls-bin
need openssl openssl
need ss iproute2

if [ -n "$BUILD" ]; then
    BUILD=$(cd "$BUILD" && pwd)
else
    # our own tree, rebuilt every time (incremental): the figures are of this source
    BUILD=$ROOT/build-bench
    need cmake cmake
    need cc gcc
    need pkg-config pkg-config
    pkg-config --exists gnutls liburing || apt_install libgnutls28-dev liburing-dev
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLSFLOW_TESTS=OFF \
            > "$ROOT/build-bench.log" 2>&1 || { cat "$ROOT/build-bench.log"; exit 2; }
    fi
    cmake --build "$BUILD" -j"$(nproc)" --target tlsflow-serve tlsflow-bench tlsflow-client \
        >> "$ROOT/build-bench.log" 2>&1 || { tail -n 40 "$ROOT/build-bench.log"; exit 2; }
    mv "$ROOT/build-bench.log" "$BUILD/compare-build.log"
fi
SERVE=$BUILD/tools/tlsflow-serve
BENCH=$BUILD/tools/tlsflow-bench
CLIENT=$BUILD/tools/tlsflow-client
[ -x "$SERVE" ] && [ -x "$BENCH" ] && [ -x "$CLIENT" ] ||
    { echo "compare.sh: $BUILD has no built tools (tools/tlsflow-serve ...)" >&2; exit 2; }
PROFILER=
if [ "$PROFILE" = 1 ]; then
    command -v perf >/dev/null 2>&1 || apt_install linux-perf || true
    if command -v perf >/dev/null 2>&1 && perf record -q -o /dev/null -- true >/dev/null 2>&1; then
        PROFILER=perf
    else
        need valgrind valgrind
        PROFILER=callgrind
    fi
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 200)) ]; then
    IDLE=$(( $(ulimit -n) - 200 ))
    echo "note: open-file limit $(ulimit -n): idle flows reduced to $IDLE"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tlsflow-compare.XXXXXX")
SPID=
LOG=$TMP/log
cleanup() {
    [ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
# every figure goes through say, into $LOG too, from which BENCHMARKS.md is written
say() { printf '%s\n' "$*" | tee -a "$LOG"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR+1)/2]; else printf "%.6g\n", (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || a == "nan" || b == "nan" || b + 0 == 0) print "-"; else printf "%.2f\n", a/b}'; }
json_field() { sed -n "s/.*\"$1\":\\([0-9.eE+-]*\\).*/\\1/p"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# cpu_per_gb TICKS BYTES: the server's CPU seconds per 10^9 bytes ("nan" for none)
cpu_per_gb() { awk -v t="$1" -v k="$TICK" -v b="${2:-0}" 'BEGIN {if (b > 0) printf "%.3f", t / k / (b / 1e9); else print "nan"}'; }
# wrk_bytes: the bytes wrk's output (stdin) says it read
wrk_bytes() { to_bytes "$(sed -n 's/.* requests in .*, \([0-9.]*[KMGT]*B\) read.*/\1/p')"; }
# serve_per_mib submissions|io_uring_enter: that count per MiB from tlsflow-serve's exit line
serve_per_mib() { grep -m1 'io_uring submissions' "$TMP/serve.err" | sed -n "s/.*$1 [0-9]* (\([0-9.]*\) per MiB.*/\1/p"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
TICK=$(getconf CLK_TCK)

PRIO='NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:+GROUP-X25519'
sh "$ROOT/tests/common/make-certs.sh" "$TMP/certs"
CA=$TMP/certs/ca.pem CERT=$TMP/certs/server-ecdsa.pem KEY=$TMP/certs/server-ecdsa-key.pem
mkdir -p "$TMP/root"
head -c $((1 << 20)) /dev/urandom > "$TMP/root/1m.bin"
head -c $((100 << 20)) /dev/urandom > "$TMP/root/100m.bin"
printf x > "$TMP/root/1b.bin"

# A port below the ephemeral range (thousands of client sockets of the idle
# test may still hold ports in it) that no socket uses at all.
free_port() {
    local p lo
    lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    while :; do
        p=$(( 10000 + RANDOM % (lo - 10000) ))
        ss -Htan "sport = :$p" | grep -q . || { echo $p; return; }
    done
}

wait_port() {
    for _ in $(seq 100); do
        ss -Htln "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    echo "server did not listen on $1" >&2
    return 1
}

start_tlsflow() {   # start_tlsflow [--echo] [options]
    local k=off what=(--root "$TMP/root")
    [ "$KTLS" = 1 ] && k=auto
    [ "${1:-}" = --echo ] && { what=(--echo); shift; }
    "$SERVE" --cert "$CERT" --key "$KEY" "${what[@]}" --port 0 --threads 1 \
        --priority "$PRIO" --ktls $k --stats-interval 86400 --grace 1 "$@" \
        > "$TMP/serve.out" 2> "$TMP/serve.err" &
    SPID=$!
    for _ in $(seq 100); do
        [ -s "$TMP/serve.out" ] && break
        sleep 0.1
    done
    PORT=$(sed -n '1s/^listening on .*:\([0-9]*\)$/\1/p' "$TMP/serve.out")
    [ -n "$PORT" ] || { cat "$TMP/serve.err"; return 1; }
}

start_nginx() {
    PORT=$(free_port)
    # one fd per connection (plain files are sendfile'd and closed at once);
    # worker_connections counts the listener too
    NGINX_NOFILE=$NOFILE NGINX_CONNS=$((IDLE + 500))
    [ "$NOFILE" = unlimited ] && NGINX_NOFILE=$((IDLE + 1000))
    [ "$NGINX_CONNS" -gt $((NGINX_NOFILE - 20)) ] && NGINX_CONNS=$((NGINX_NOFILE - 20))
    local n=$TMP/nginx ktls=
    mkdir -p "$n/tmp"
    [ "$KTLS" = 1 ] && ktls='ssl_conf_command Options KTLS;'
    cat > "$n/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $NGINX_NOFILE;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections $NGINX_CONNS; multi_accept on; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 600;
    client_header_timeout 600s;   # idle flows send no request: keep them
    keepalive_requests 1000000;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$PORT ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve X25519;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
        $ktls
        root $TMP/root;
    }
}
EOF
    nginx -p "$n" -e "$n/error.log" -c "$n/nginx.conf" > "$n/stdout" 2>&1 &
    SPID=$!
    wait_port "$PORT" || { cat "$n/error.log" "$n/stdout"; return 1; }
}

stop_server() {
    kill -TERM "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
}

# wrk's "Transfer/sec" and "read" use 1024-based units
to_bytes() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        m = (u == "KB") ? 1024 : (u == "MB") ? 1048576 : (u == "GB") ? 1073741824 : (u == "TB") ? 1099511627776 : 1
        printf "%.0f\n", n * m }'
}

declare -A R   # R[server,metric] = "v1 v2 ..."
add() { R[$1,$2]="${R[$1,$2]:-} $3"; }
med() { printf '%s\n' ${R[$1,$2]:-} | median; }

run_server() {  # run_server tlsflow|nginx
    local s=$1
    if [ "$s" = tlsflow ]; then start_tlsflow; else start_nginx; fi
    local neg
    neg=$(echo | timeout 10 "$CLIENT" --ca "$CA" "127.0.0.1:$PORT" 2>&1 >/dev/null |
          awk '/version|cipher|kTLS/ {printf "%s ", $0}' | tr -s ' ' || true)
    say "== $s on 127.0.0.1:$PORT (pid $SPID): $neg"
    local f c t run out bytes cpu0 cpu1 mbs cpugb
    for f in 1m.bin 100m.bin; do
        for c in 1 16; do
            t=1
            [ "$c" -gt 1 ] && t=2
            for run in $(seq "$RUNS"); do
                cpu0=$(cpu_ticks "$SPID")
                out=$(wrk -t$t -c$c -d${DURATION}s "https://127.0.0.1:$PORT/$f" 2>&1)
                cpu1=$(cpu_ticks "$SPID")
                bytes=$(echo "$out" | wrk_bytes)
                mbs=$(awk -v b="$bytes" -v d="$DURATION" 'BEGIN {printf "%.1f", b / 1e6 / d}')
                cpugb=$(cpu_per_gb $((cpu1 - cpu0)) "$bytes")
                say "$s wrk $f c=$c run $run: $mbs MB/s, server cpu $cpugb s/GB"
                add $s "wrk $f c=$c MB/s" "$mbs"
                add $s "wrk $f c=$c cpu" "$cpugb"

                cpu0=$(cpu_ticks "$SPID")
                out=$("$BENCH" throughput --host 127.0.0.1 --port "$PORT" --ca "$CA" --priority "$PRIO" \
                        --path "/$f" --connections $c --threads $t --duration "$DURATION" --json 2>&1 || true)
                cpu1=$(cpu_ticks "$SPID")
                bytes=$(echo "$out" | json_field bytes)
                mbs=$(echo "$out" | json_field mb_per_s)
                cpugb=$(cpu_per_gb $((cpu1 - cpu0)) "${bytes:-0}")
                say "$s tlsflow-bench $f c=$c run $run: ${mbs:-nan} MB/s, server cpu $cpugb s/GB$(echo "$out" | grep -q '"errors":0,' || echo " (failed: $(echo "$out" | tail -n 1 | cut -c1-200))")"
                add $s "bench $f c=$c MB/s" "${mbs:-nan}"
                add $s "bench $f c=$c cpu" "$cpugb"
            done
        done
    done
    # small responses: keep-alive GETs of a 1-byte file, by wrk and by
    # tlsflow-bench; then new connections per second (wrk, one request per
    # connection).  A figure counts only when every response was a 200.
    local rps bad n
    for c in 16 100 1000; do
        for run in $(seq "$RUNS"); do
            out=$(wrk -t2 -c$c -d${DURATION}s "https://127.0.0.1:$PORT/1b.bin" 2>&1)
            rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
            bad=$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr '\n' ' ' || true)
            n=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in .*/\1/p')
            [ -n "$rps" ] && [ "${n:-0}" -gt 0 ] || rps=nan
            echo "$out" | grep -q 'Non-2xx' && rps=nan
            say "$s wrk 1b.bin keep-alive c=$c run $run: $rps req/s ($n requests)${bad:+; $bad}"
            add $s "wrk 1b c=$c req/s" "$rps"
            out=$("$BENCH" throughput --host 127.0.0.1 --port "$PORT" --ca "$CA" --priority "$PRIO" \
                    --path /1b.bin --connections $c --threads 2 --duration "$DURATION" --json 2>&1 || true)
            rps=$(echo "$out" | json_field requests_per_s)
            echo "$out" | grep -q '"errors":0,' || rps=nan
            say "$s tlsflow-bench 1b.bin keep-alive c=$c run $run: ${rps:-nan} req/s"
            add $s "bench 1b c=$c req/s" "${rps:-nan}"
        done
    done
    for run in $(seq "$RUNS"); do
        out=$(wrk -t2 -c16 -d${DURATION}s -H 'Connection: close' "https://127.0.0.1:$PORT/1b.bin" 2>&1)
        rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
        echo "$out" | grep -q 'Non-2xx' && rps=nan
        bad=$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr '\n' ' ' || true)
        say "$s wrk 1b.bin Connection: close c=16 run $run: ${rps:-nan} connections/s${bad:+; $bad}"
        add $s "wrk close c=16 conn/s" "${rps:-nan}"
    done
    for run in $(seq "$RUNS"); do
        out=$("$BENCH" handshake --host 127.0.0.1 --port "$PORT" --ca "$CA" --priority "$PRIO" \
                --connections 16 --threads 2 --duration "$DURATION" --json 2>&1 || true)
        local hs
        hs=$(echo "$out" | json_field handshakes_per_s)
        say "$s handshakes run $run: ${hs:-nan}/s (resumed $(echo "$out" | json_field resumed))"
        add $s "handshakes/s" "${hs:-nan}"
    done

    # idle flows: RSS growth of the server over IDLE established connections
    local rss0 rss1 est=0 last=-1 same=0 idle_s=$(( IDLE / 100 + 30 )) t0
    rss0=$(rss_kb "$SPID")
    "$BENCH" idle --host 127.0.0.1 --port "$PORT" --ca "$CA" --priority "$PRIO" \
        --connections "$IDLE" --threads 2 --duration $idle_s > "$TMP/idle.out" 2>&1 &
    local bpid=$!
    t0=$(date +%s)
    # until all are up, or the count stops growing for 3 s
    while [ $(( $(date +%s) - t0 )) -lt $(( idle_s - 5 )) ]; do
        sleep 0.5
        est=$(ss -Htn state established "sport = :$PORT" | wc -l)
        [ "$est" -ge "$IDLE" ] && break
        if [ "$est" = "$last" ] && [ "$est" -gt 0 ]; then
            same=$((same + 1)); [ $same -ge 6 ] && break
        else
            same=0
        fi
        last=$est
    done
    sleep 1
    est=$(ss -Htn state established "sport = :$PORT" | wc -l)
    rss1=$(rss_kb "$SPID")
    local took=$(( $(date +%s) - t0 ))
    kill -INT $bpid 2>/dev/null || true
    kill -TERM $bpid 2>/dev/null || true
    wait $bpid 2>/dev/null || true
    local per
    per=$(awk -v a="$rss0" -v b="$rss1" -v n="$est" 'BEGIN {if (n > 0) printf "%.1f", (b - a) / n; else print "nan"}')
    say "$s idle: $est of $IDLE flows established in ${took}s, RSS ${rss0} kB -> ${rss1} kB, $per kB per flow"
    [ "$est" -ge "$IDLE" ] || say "$s idle: only $est of $IDLE flows came up ($(tail -n 2 "$TMP/idle.out" | tr '\n' ' ' | cut -c1-200))"
    add $s "RSS kB/idle flow" "$per"
    add $s "idle flows" "$est"
    stop_server
    if [ "$s" = tlsflow ]; then
        say "tlsflow-serve at exit: $(grep -m1 'io_uring submissions' "$TMP/serve.err" | sed 's/^tlsflow-serve: //' ||
             echo 'no counter line (library exposes no io_uring submission / copy counters)')"
        say "tlsflow-serve totals: $(grep 'connections' "$TMP/serve.err" | tail -n 1 | sed 's/^tlsflow-serve: //')"
    fi
}

# io_uring set-ups (issue 11): tlsflow-serve under each ring set
# TLSFLOW_RING_FLAGS forces, a fresh server per load so that its exit line
# counts that load alone: submissions and io_uring_enter calls per MiB of
# 1 MiB responses (c=16), per request of 1-byte responses (c=100).
ring_sets() {
    local set run out bytes n line subs enters rps cpu0 cpu1 cpugb
    for set in plain coop defer,regfd; do
        for run in $(seq "$RUNS"); do
            TLSFLOW_RING_FLAGS=$set start_tlsflow
            cpu0=$(cpu_ticks "$SPID")
            out=$(wrk -t2 -c16 -d${DURATION}s "https://127.0.0.1:$PORT/1m.bin" 2>&1)
            cpu1=$(cpu_ticks "$SPID")
            bytes=$(echo "$out" | wrk_bytes)
            cpugb=$(cpu_per_gb $((cpu1 - cpu0)) "$bytes")
            stop_server
            subs=$(serve_per_mib submissions || true)
            enters=$(serve_per_mib io_uring_enter || true)
            echo "$out" | grep -q 'Non-2xx' && subs=nan enters=nan
            say "ring $set wrk 1m.bin c=16 run $run: $(awk -v b="$bytes" -v d="$DURATION" 'BEGIN {printf "%.1f", b / 1e6 / d}') MB/s, server cpu $cpugb s/GB, submissions ${subs:-nan}/MiB, io_uring_enter ${enters:-nan}/MiB ($(sed -n 's/^tlsflow-serve: io_uring set-up: //p' "$TMP/serve.err" | head -n 1))"
            add "ring $set" "1m subs/MiB" "${subs:-nan}"
            add "ring $set" "1m enters/MiB" "${enters:-nan}"
            add "ring $set" "1m cpu" "$cpugb"

            TLSFLOW_RING_FLAGS=$set start_tlsflow
            out=$(wrk -t2 -c100 -d${DURATION}s "https://127.0.0.1:$PORT/1b.bin" 2>&1)
            stop_server
            rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
            n=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in .*/\1/p')
            line=$(grep -m1 'io_uring submissions' "$TMP/serve.err" || true)
            subs=$(echo "$line" | sed -n 's/.*submissions \([0-9]*\) .*/\1/p')
            enters=$(echo "$line" | sed -n 's/.*io_uring_enter \([0-9]*\) .*/\1/p')
            if [ "${n:-0}" -gt 0 ] && [ -n "$subs" ] && ! echo "$out" | grep -q 'Non-2xx'; then
                subs=$(awk -v a="$subs" -v n="$n" 'BEGIN {printf "%.2f", a / n}')
                enters=$(awk -v a="$enters" -v n="$n" 'BEGIN {printf "%.2f", a / n}')
            else
                rps=nan subs=nan enters=nan
            fi
            say "ring $set wrk 1b.bin keep-alive c=100 run $run: ${rps:-nan} req/s, submissions $subs/request, io_uring_enter $enters/request"
            add "ring $set" "1b req/s" "${rps:-nan}"
            add "ring $set" "1b subs/req" "$subs"
            add "ring $set" "1b enters/req" "$enters"
        done
    done
    # receive bundles: an echo (64 KiB writes, 16 connections, tlsflow-bench)
    # receives as much as it sends; with and without bundles
    for set in coop coop,bundle; do
        for run in $(seq "$RUNS"); do
            TLSFLOW_RING_FLAGS=$set start_tlsflow --echo
            cpu0=$(cpu_ticks "$SPID")
            out=$("$BENCH" throughput --host 127.0.0.1 --port "$PORT" --ca "$CA" --priority "$PRIO" \
                    --echo --size 65536 --connections 16 --threads 2 --duration "$DURATION" --json 2>&1 || true)
            cpu1=$(cpu_ticks "$SPID")
            stop_server
            bytes=$(echo "$out" | json_field bytes)
            rps=$(echo "$out" | json_field mb_per_s)
            echo "$out" | grep -q '"errors":0,' || rps=nan bytes=0
            cpugb=$(cpu_per_gb $((cpu1 - cpu0)) "${bytes:-0}")
            subs=$(serve_per_mib submissions || true)
            enters=$(serve_per_mib io_uring_enter || true)
            [ "$rps" = nan ] && subs=nan enters=nan
            say "ring $set echo 64k c=16 run $run: ${rps:-nan} MB/s, server cpu $cpugb s/GB, submissions ${subs:-nan}/MiB, io_uring_enter ${enters:-nan}/MiB"
            add "echo $set" "MB/s" "${rps:-nan}"
            add "echo $set" "cpu" "$cpugb"
            add "echo $set" "subs/MiB" "${subs:-nan}"
            add "echo $set" "enters/MiB" "${enters:-nan}"
        done
    done
}

# --profile: tlsflow-serve serving 1m.bin to 16 wrk connections
profile_tlsflow() {
    local d=$(( DURATION > 5 ? DURATION : 5 ))
    say ""
    say "## Profile: tlsflow-serve, wrk 1m.bin c=16 ($PROFILER, ${d}s)"
    say ""
    if [ "$PROFILER" = perf ]; then
        start_tlsflow
        perf record -q -F 999 -o "$TMP/perf.data" -p "$SPID" -- sleep "$d" > "$TMP/perf.log" 2>&1 &
        local ppid=$!
        sleep 0.3
        wrk -t2 -c16 -d"$((d + 1))"s "https://127.0.0.1:$PORT/1m.bin" > /dev/null 2>&1 || true
        wait $ppid || true
        stop_server
        say "by object:"
        perf report -i "$TMP/perf.data" --stdio --no-children --sort dso --percent-limit 1 2>/dev/null |
            grep -v '^#' | grep -v '^ *$' | head -n 10 | sed 's/ *$//' | tee -a "$LOG"
        say "by kind of work (share of the server's samples):"
        perf report -i "$TMP/perf.data" --stdio --no-children --sort dso,symbol --percent-limit 0 2>/dev/null |
            awk '$1 ~ /%$/ {
                pct = $1 + 0; dso = $2; sym = $4
                if (dso ~ /libgnutls|libnettle|libhogweed/) k = "AES-GCM, GHASH and the rest of GnuTLS"
                else if (sym == "_copy_from_iter") k = "kernel: copy into socket buffers (send)"
                else if (sym ~ /^(_copy_to_iter|copy_page_to_iter|filemap_)/) k = "kernel: file read into userspace (page cache)"
                else if (dso ~ /libc/ && sym ~ /mem(move|cpy)/) k = "userspace memmove/memcpy (libc)"
                else if (dso ~ /kernel/) k = "kernel: TCP/IP, io_uring, scheduling, the rest"
                else if (dso ~ /tlsflow|liburing/) k = "tlsflow and liburing"
                else k = "other"
                share[k] += pct
            } END { for (k in share) printf "%6.2f%%  %s\n", share[k], k }' | sort -rn | tee -a "$LOG"
        say "What each copy is, userspace TLS (the kind above): the file's bytes are read from the"
        say "page cache into a pooled buffer (the kernel's copy to userspace; the library counts"
        say "it as plaintext copied, 1 per payload byte: encryption in userspace needs the bytes"
        say "there); they are sealed from that buffer straight into the send buffer with"
        say "GnuTLS's write key (handshake/seal.c: no pass through GnuTLS's record buffer, so no"
        say "memmove of the ciphertext); the send copies the ciphertext into socket buffers."
        say "GnuTLS's record API cannot do less (it encrypts into its own buffer and hands it to"
        say "the push callback, which must take it); with the keys in the kernel no byte of a"
        say "file enters userspace at all (the VM counts below)."
        say "by symbol (GnuTLS/nettle have no symbols here: their addresses are split):"
        perf report -i "$TMP/perf.data" --stdio --no-children --sort dso,symbol --percent-limit 0.7 2>/dev/null |
            grep -v '^#' | grep -v '^ *$' | head -n 30 | sed 's/ *$//; s/ *- *- *$//' | tee -a "$LOG"
    else
        local k=off
        [ "$KTLS" = 1 ] && k=auto
        valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" "$SERVE" --cert "$CERT" \
            --key "$KEY" --root "$TMP/root" --port 0 --threads 1 --priority "$PRIO" --ktls $k \
            --stats-interval 0 --grace 1 > "$TMP/serve.out" 2> "$TMP/serve.err" &
        SPID=$!
        for _ in $(seq 300); do [ -s "$TMP/serve.out" ] && break; sleep 0.1; done
        PORT=$(sed -n '1s/^listening on .*:\([0-9]*\)$/\1/p' "$TMP/serve.out")
        wrk -t2 -c16 -d"$((d * 4))"s "https://127.0.0.1:$PORT/1m.bin" > /dev/null 2>&1 || true
        stop_server
        callgrind_annotate "$TMP/callgrind.out" 2>/dev/null | sed -n '/^Ir/,$p' | head -n 35 | tee -a "$LOG"
    fi
}

say "tlsflow-serve vs nginx, $(date -u '+%Y-%m-%d %H:%M UTC')"
say "command: $CMDLINE"
say "machine: $(uname -sr), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
say "software: $("$SERVE" --version), GnuTLS $(certtool --version | sed -n '1s/.* //p'), $(nginx -v 2>&1 | sed 's/.*: //') with $(openssl version | cut -d' ' -f1-2), wrk $(wrk -v 2>&1 | sed -n '1s/^wrk \([^ ]*\).*/\1/p')"
ulp=$(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null || true)
say "kernel TLS: $([ "$KTLS" = 1 ] && echo requested || echo off) (tcp_available_ulp: ${ulp:-none})"
say "settings: $RUNS run(s) x ${DURATION}s per figure, one server thread, TLS 1.3 AES-128-GCM X25519, ECDSA P-256 certificate, $IDLE idle flows"
say ""

[ "$ONLY" = nginx ] || run_server tlsflow
[ "$ONLY" = nginx ] || ring_sets
[ "$ONLY" = tlsflow ] || run_server nginx

say ""
say "## Medians (tlsflow / nginx)"
say ""
say "| figure | tlsflow-serve | nginx | ratio |"
say "| --- | ---: | ---: | ---: |"
for m in "wrk 1m.bin c=1 MB/s" "wrk 1m.bin c=16 MB/s" "wrk 100m.bin c=1 MB/s" "wrk 100m.bin c=16 MB/s" \
         "bench 1m.bin c=1 MB/s" "bench 1m.bin c=16 MB/s" "bench 100m.bin c=1 MB/s" "bench 100m.bin c=16 MB/s" \
         "wrk 1m.bin c=1 cpu" "wrk 1m.bin c=16 cpu" "wrk 100m.bin c=1 cpu" "wrk 100m.bin c=16 cpu" \
         "bench 1m.bin c=1 cpu" "bench 1m.bin c=16 cpu" "bench 100m.bin c=1 cpu" "bench 100m.bin c=16 cpu" \
         "wrk 1b c=16 req/s" "wrk 1b c=100 req/s" "wrk 1b c=1000 req/s" \
         "bench 1b c=16 req/s" "bench 1b c=100 req/s" "bench 1b c=1000 req/s" \
         "wrk close c=16 conn/s" "handshakes/s" "RSS kB/idle flow" "idle flows"; do
    a=$(med tlsflow "$m") b=$(med nginx "$m")
    [ -n "$ONLY" ] && { [ "$ONLY" = tlsflow ] && b=- || a=-; }
    label=${m/ cpu/ server CPU s\/GB}
    label=${label/bench /tlsflow-bench }
    say "| $label | $a | $b | $(ratio "$a" "$b") |"
done
say ""
say "req/s: keep-alive GETs of a 1-byte file; conn/s: wrk with one request per connection"
say "(Connection: close; wrk's OpenSSL client may resume sessions, as browsers do)."
say "MB/s are 10^6 bytes of response body per second as the client counted them;"
say "server CPU s/GB is the server process's utime+stime over the run per 10^9 bytes."

if [ "$ONLY" != nginx ]; then
    say ""
    say "## io_uring set-ups (tlsflow-serve, TLSFLOW_RING_FLAGS)"
    say ""
    say "| set | 1m c=16 submissions/MiB | io_uring_enter/MiB | CPU s/GB | 1b c=100 req/s | submissions/request | io_uring_enter/request |"
    say "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for set in plain coop defer,regfd; do
        k="ring $set"
        say "| $set | $(med "$k" "1m subs/MiB") | $(med "$k" "1m enters/MiB") | $(med "$k" "1m cpu") | $(med "$k" "1b req/s") | $(med "$k" "1b subs/req") | $(med "$k" "1b enters/req") |"
    done
    say ""
    say "| echo, 64 KiB writes, c=16 | MB/s | server CPU s/GB | submissions/MiB | io_uring_enter/MiB |"
    say "| --- | ---: | ---: | ---: | ---: |"
    for set in coop coop,bundle; do
        k="echo $set"
        say "| $set | $(med "$k" MB/s) | $(med "$k" cpu) | $(med "$k" subs/MiB) | $(med "$k" enters/MiB) |"
    done
    say ""
    say "plain: CQSIZE only (the loop before issue 11); coop: COOP_TASKRUN|TASKRUN_FLAG (the"
    say "default where the kernel has it); defer,regfd: SINGLE_ISSUER|DEFER_TASKRUN and a"
    say "registered ring fd (opt-in: ties the ring to one thread).  A fresh server per load."
    say "Echo: each MiB the server sends it also received; coop,bundle asks for receive bundles"
    say "(6.10: one receive may fill up to 4 buffers of 32 KiB, within the flow's 64 KiB receive"
    say "budget), coop one buffer per receive; per MiB sent.  Bundles stay off unless asked for:"
    say "they pay only where more than a buffer waits in the socket when a receive is made."
fi

# ---- targets: serving >= 1.0x nginx at c=1 and c=16 with no more CPU s/GB,
# handshakes/s >= 1.0x nginx, idle RSS per flow below nginx's
if [ -z "$ONLY" ]; then
    say ""
    say "## Targets"
    say ""
    missed=0
    pct() { awk -v r="$1" 'BEGIN {printf "%.0f%%", (r - 1) * 100}'; }
    for cl in wrk bench; do
        for f in 1m.bin 100m.bin; do
            for c in 1 16; do
                r=$(ratio "$(med tlsflow "$cl $f c=$c MB/s")" "$(med nginx "$cl $f c=$c MB/s")")
                q=$(ratio "$(med tlsflow "$cl $f c=$c cpu")" "$(med nginx "$cl $f c=$c cpu")")
                name="${cl/bench/tlsflow-bench} $f c=$c"
                if [ "$r" = - ] || [ "$q" = - ]; then
                    say "- $name: no figure"; missed=$((missed + 1)); continue
                fi
                m=
                awk -v r="$r" 'BEGIN {exit !(r < 1.0)}' && m="throughput ${r}x nginx (missed by $(pct "$r" | tr -d -))"
                awk -v q="$q" 'BEGIN {exit !(q > 1.0)}' && m="${m:+$m; }CPU ${q}x nginx's s/GB ($(pct "$q") more)"
                if [ -n "$m" ]; then say "- MISSED $name: $m"; missed=$((missed + 1))
                else say "- met $name: throughput ${r}x, CPU ${q}x"; fi
            done
        done
    done
    # issue 11: the server's CPU s/GB at c=16 <= 0.7x nginx's
    for cl in wrk bench; do
        for f in 1m.bin 100m.bin; do
            q=$(ratio "$(med tlsflow "$cl $f c=16 cpu")" "$(med nginx "$cl $f c=16 cpu")")
            name="${cl/bench/tlsflow-bench} $f c=16 CPU s/GB"
            if [ "$q" = - ]; then say "- $name: no figure"; missed=$((missed + 1))
            elif awk -v q="$q" 'BEGIN {exit !(q > 0.7)}'; then
                say "- MISSED $name: ${q}x nginx's (target 0.7x)"; missed=$((missed + 1))
            else say "- met $name: ${q}x nginx's (target 0.7x)"; fi
        done
    done
    # small responses: keep-alive requests/s >= 1.2x nginx's, new connections/s >= 1.0x
    for m in "wrk 1b c=16 req/s" "wrk 1b c=100 req/s" "wrk 1b c=1000 req/s" \
             "bench 1b c=16 req/s" "bench 1b c=1000 req/s" "wrk close c=16 conn/s"; do
        want=1.2
        [ "$m" = "wrk close c=16 conn/s" ] && want=1.0
        r=$(ratio "$(med tlsflow "$m")" "$(med nginx "$m")")
        name=${m/bench /tlsflow-bench }
        if [ "$r" = - ]; then say "- $name: no figure"; missed=$((missed + 1))
        elif awk -v r="$r" -v w="$want" 'BEGIN {exit !(r < w)}'; then
            say "- MISSED $name: ${r}x nginx (target ${want}x)"; missed=$((missed + 1))
        else say "- met $name: ${r}x nginx (target ${want}x)"; fi
    done
    r=$(ratio "$(med tlsflow handshakes/s)" "$(med nginx handshakes/s)")
    if [ "$r" = - ]; then say "- handshakes/s: no figure"; missed=$((missed + 1))
    elif awk -v r="$r" 'BEGIN {exit !(r < 1.0)}'; then
        say "- MISSED handshakes/s: ${r}x nginx (missed by $(pct "$r" | tr -d -))"; missed=$((missed + 1))
    else say "- met handshakes/s: ${r}x nginx"; fi
    r=$(ratio "$(med tlsflow 'RSS kB/idle flow')" "$(med nginx 'RSS kB/idle flow')")
    if [ "$r" = - ]; then say "- idle RSS per flow: no figure"; missed=$((missed + 1))
    elif awk -v r="$r" 'BEGIN {exit !(r >= 1.0)}'; then
        say "- MISSED idle RSS per flow: ${r}x nginx's ($(pct "$r") more)"; missed=$((missed + 1))
    else say "- met idle RSS per flow: ${r}x nginx's"; fi
    say ""
    say "$missed target(s) missed.  This is a shared 2-core machine: client and server share"
    say "the cores, so ratios are the figure to read, not absolute MB/s."
fi

[ "$PROFILE" = 1 ] && [ "$ONLY" != nginx ] && profile_tlsflow

if [ "$VM" = 1 ]; then
    say ""
    say "## In the kTLS VM (bench/compare-vm.sh)"
    say ""
    vmopts=()
    [ "$QUICK" = 1 ] && vmopts+=(--quick)
    "$ROOT/bench/compare-vm.sh" --build "$BUILD" "${vmopts[@]}" 2>&1 | tee -a "$LOG" ||
        say "compare-vm.sh failed (exit ${PIPESTATUS[0]})"
fi

if [ "$WRITE" = 1 ]; then
    {
        echo "# Benchmarks: tlsflow-serve vs nginx"
        echo
        echo "Written by \`$CMDLINE\` from its own output; do not edit by hand."
        echo
        echo '```'
        sed -n '1,/^## Medians/p' "$LOG" | sed '$d'
        echo '```'
        echo
        sed -n '/^## Medians/,$p' "$LOG" | awk '
            /^## (Profile|In the kTLS VM)/ { if (code) print "```"; print; print ""; print "```"; code = 1; skip = 1; next }
            skip && /^$/ { skip = 0; next }
            { skip = 0; print }
            END { if (code) print "```" }'
        # bench/memory.sh's, proxy.sh's and vm-counts.sh's sections are their own: kept as they were
        for own in memory.sh proxy.sh vm-counts.sh; do
            if [ -f "$OUT" ] && grep -q "^<!-- $own: begin" "$OUT"; then
                echo
                sed -n "/^<!-- $own: begin/,/^<!-- $own: end/p" "$OUT"
            fi
        done
    } > "$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    "$ROOT/bench/chart.sh" "$OUT" "$ROOT/bench/ratios.svg"
    echo "wrote $OUT"
fi
