#!/bin/bash
# tlsflow-serve against Debian's nginx (OpenSSL) on this machine, in one go.
#
# Same certificate (ECDSA P-256), same files, TLS 1.3 with AES-128-GCM on both,
# one server thread/worker each.  Measures, for each server:
#   - throughput of 1 MiB and 100 MiB files with 1 and 16 connections, by wrk
#     (OpenSSL client) and by tlsflow-bench (GnuTLS client), MB/s, medians of
#     several runs;
#   - the server's CPU seconds per GB sent (/proc/PID/stat utime+stime deltas);
#   - full TLS 1.3 handshakes per second (tlsflow-bench handshake);
#   - RSS per idle connection with N idle TLS 1.3 flows (default 10,000).
# Prints every figure and the ratios tlsflow/nginx, and (full mode) writes
# BENCHMARKS.md at the repository root from that output.
#
# usage: bench/compare.sh [--quick] [--runs N] [--duration S] [--idle N]
#                         [--build DIR] [--ktls] [--out FILE | --no-write]
#   --quick     one short run per figure, 2,000 idle flows, about a minute;
#               does not write BENCHMARKS.md unless --out is given
#   --ktls      let both servers use kernel TLS (tlsflow --ktls auto, nginx
#               "ssl_conf_command Options KTLS"); off by default
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMDLINE="bench/compare.sh${*:+ $*}"
RUNS=3 DURATION=5 IDLE=10000 QUICK=0 KTLS=0 OUT= WRITE=1 BUILD= ONLY=
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1; RUNS=1; DURATION=2; IDLE=2000 ;;
        --runs) RUNS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --idle) IDLE=$2; shift ;;
        --build) BUILD=$2; shift ;;
        --ktls) KTLS=1 ;;
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

for d in "$BUILD" "${TLSFLOW_BUILD:-}" "$ROOT/build-tools" "$ROOT/build"; do
    if [ -n "$d" ] && [ -x "$d/tools/tlsflow-serve" ] && [ -x "$d/tools/tlsflow-bench" ]; then
        BUILD=$d
        break
    fi
done
SERVE=$BUILD/tools/tlsflow-serve
BENCH=$BUILD/tools/tlsflow-bench
CLIENT=$BUILD/tools/tlsflow-client
[ -x "$SERVE" ] || { echo "compare.sh: build the tools first (--build DIR)" >&2; exit 2; }
for p in nginx wrk certtool ss awk; do
    command -v $p >/dev/null || { echo "compare.sh: $p not installed" >&2; exit 2; }
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
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
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
TICK=$(getconf CLK_TCK)

PRIO='NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:+GROUP-X25519'
sh "$ROOT/tests/common/make-certs.sh" "$TMP/certs"
CA=$TMP/certs/ca.pem CERT=$TMP/certs/server-ecdsa.pem KEY=$TMP/certs/server-ecdsa-key.pem
mkdir -p "$TMP/root"
head -c $((1 << 20)) /dev/urandom > "$TMP/root/1m.bin"
head -c $((100 << 20)) /dev/urandom > "$TMP/root/100m.bin"

free_port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 30000 ))
        ss -Htln "sport = :$p" | grep -q . || { echo $p; return; }
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

start_tlsflow() {
    local k=off
    [ "$KTLS" = 1 ] && k=auto
    "$SERVE" --cert "$CERT" --key "$KEY" --root "$TMP/root" --port 0 --threads 1 \
        --priority "$PRIO" --ktls $k --stats-interval 0 > "$TMP/serve.out" 2> "$TMP/serve.err" &
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
    local n=$TMP/nginx ktls=
    mkdir -p "$n/tmp"
    [ "$KTLS" = 1 ] && ktls='ssl_conf_command Options KTLS;'
    cat > "$n/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $((IDLE + 1000));
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections $((IDLE + 500)); }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 600;
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
                bytes=$(to_bytes "$(echo "$out" | sed -n 's/.* requests in .*, \([0-9.]*[KMGT]*B\) read.*/\1/p')")
                mbs=$(awk -v b="$bytes" -v d="$DURATION" 'BEGIN {printf "%.1f", b / 1e6 / d}')
                cpugb=$(awk -v t=$((cpu1 - cpu0)) -v k="$TICK" -v b="$bytes" 'BEGIN {if (b > 0) printf "%.3f", t / k / (b / 1e9); else print "nan"}')
                say "$s wrk $f c=$c run $run: $mbs MB/s, server cpu $cpugb s/GB"
                add $s "wrk $f c=$c MB/s" "$mbs"
                add $s "wrk $f c=$c cpu" "$cpugb"

                cpu0=$(cpu_ticks "$SPID")
                out=$("$BENCH" throughput --host 127.0.0.1 --port "$PORT" --ca "$CA" --priority "$PRIO" \
                        --path "/$f" --connections $c --threads $t --duration "$DURATION" --json 2>&1 || true)
                cpu1=$(cpu_ticks "$SPID")
                bytes=$(echo "$out" | json_field bytes)
                mbs=$(echo "$out" | json_field mb_per_s)
                cpugb=$(awk -v t=$((cpu1 - cpu0)) -v k="$TICK" -v b="${bytes:-0}" 'BEGIN {if (b > 0) printf "%.3f", t / k / (b / 1e9); else print "nan"}')
                say "$s tlsflow-bench $f c=$c run $run: ${mbs:-nan} MB/s, server cpu $cpugb s/GB$(echo "$out" | grep -q '"errors":0,' || echo " (failed: $(echo "$out" | tail -n 1 | cut -c1-200))")"
                add $s "bench $f c=$c MB/s" "${mbs:-nan}"
                add $s "bench $f c=$c cpu" "$cpugb"
            done
        done
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
    local rss0 rss1 est=0 idle_s=$(( IDLE / 200 + 20 ))
    rss0=$(rss_kb "$SPID")
    "$BENCH" idle --host 127.0.0.1 --port "$PORT" --ca "$CA" --priority "$PRIO" \
        --connections "$IDLE" --duration $idle_s > "$TMP/idle.out" 2>&1 &
    local bpid=$!
    for _ in $(seq $(( idle_s * 10 - 50 ))); do
        est=$(ss -Htn state established "sport = :$PORT" | wc -l)
        [ "$est" -ge "$IDLE" ] && break
        sleep 0.1
    done
    sleep 1
    est=$(ss -Htn state established "sport = :$PORT" | wc -l)
    rss1=$(rss_kb "$SPID")
    kill -INT $bpid 2>/dev/null || true
    kill -TERM $bpid 2>/dev/null || true
    wait $bpid 2>/dev/null || true
    local per
    per=$(awk -v a="$rss0" -v b="$rss1" -v n="$est" 'BEGIN {if (n > 0) printf "%.1f", (b - a) / n; else print "nan"}')
    say "$s idle: $est flows, RSS ${rss0} kB -> ${rss1} kB, $per kB per flow"
    add $s "RSS kB/idle flow" "$per"
    add $s "idle flows" "$est"
    stop_server
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
         "handshakes/s" "RSS kB/idle flow" "idle flows"; do
    a=$(med tlsflow "$m") b=$(med nginx "$m")
    [ -n "$ONLY" ] && { [ "$ONLY" = tlsflow ] && b=- || a=-; }
    label=${m/ cpu/ server CPU s\/GB}
    label=${label/bench /tlsflow-bench }
    say "| $label | $a | $b | $(ratio "$a" "$b") |"
done
say ""
say "MB/s are 10^6 bytes of response body per second as the client counted them;"
say "server CPU s/GB is the server process's utime+stime over the run per 10^9 bytes."

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
        sed -n '/^## Medians/,$p' "$LOG"
    } > "$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    echo "wrote $OUT"
fi
