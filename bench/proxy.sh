#!/usr/bin/env bash
# tlsflow-proxy against HAProxy (Debian's 2.6, mode tcp + ssl crt), stunnel4 and
# hitch on this machine: each terminates TLS 1.3 AES-128-GCM with the same ECDSA
# P-256 certificate, one thread or process each where the program allows it, in
# front of the same plain nginx (one worker) serving 1 MiB and 100 MiB files.
# tlsflow-bench is the client: throughput (keep-alive GETs) of both bodies at
# c=1 and c=16, and new connections per second (a full handshake each, c=16).
# The proxy's CPU seconds per GB are its user+system ticks (/proc, the process
# and its children) over the bytes the client got.  Every figure is measured
# --runs times per proxy; the table has the median of the runs that counted (a
# run counts when tlsflow-bench saw no error and no failed connect: every
# response a 200 of the right length, every handshake done), the runs
# themselves are printed below it.
#
#   bench/proxy.sh --build-dir BUILD [--duration S] [--runs N] [--only LIST]
#                  [--ktls] [--write [FILE]]
#
#   --build-dir BUILD  a built tree (tools/tlsflow-proxy, tools/tlsflow-bench)
#   --duration S       seconds per run (default 3: the machine is shared;
#                      short runs are noisy, read the ratios with that in mind)
#   --runs N           runs per figure and proxy, the median reported (default 3)
#   --only LIST        comma-separated subset of tlsflow,haproxy,stunnel,hitch
#   --ktls             tlsflow-proxy with --ktls auto (default off: this host's
#                      kernel may lack the tls module; in the VM, counts matter)
#   --write [FILE]     put the figures in FILE (default BENCHMARKS.md) between
#                      the proxy.sh markers, keeping the rest of the file
# apt-get installs what is missing (scripts/deps.sh bench).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD= DURATION=3 RUNS=3 ONLY=tlsflow,haproxy,stunnel,hitch KTLS=off WRITE=
CMDLINE="bench/proxy.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --ktls) KTLS=auto; shift ;;
    --write)
        if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then WRITE=$2; shift 2; else WRITE=$ROOT/BENCHMARKS.md; shift; fi ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "proxy.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$BUILD" ] || { echo "proxy.sh: --build-dir BUILD is needed" >&2; exit 2; }
case "$RUNS" in ''|*[!0-9]*|0) echo "proxy.sh: --runs N: a whole number, at least 1" >&2; exit 2 ;; esac
case "$DURATION" in ''|*[!0-9]*|0) echo "proxy.sh: --duration S: whole seconds, at least 1" >&2; exit 2 ;; esac
BUILD=$(cd "$BUILD" && pwd)
PROXY=$BUILD/tools/tlsflow-proxy
BENCH=$BUILD/tools/tlsflow-bench
[ -x "$PROXY" ] && [ -x "$BENCH" ] || { echo "proxy.sh: $BUILD has no tools/tlsflow-proxy, tools/tlsflow-bench" >&2; exit 2; }
bash "$ROOT/scripts/deps.sh" bench
for c in nginx haproxy stunnel4 hitch certtool python3; do
    command -v "$c" >/dev/null || { echo "proxy.sh: $c missing" >&2; exit 2; }
done

PRIO="NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:+GROUP-X25519"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tlsflow-proxy-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
LOG=$TMP/log
say() { printf '%s\n' "$*" | tee -a "$LOG"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
ticks() {   # user+system ticks of pid and its children
    local t=0 p
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        [ -r "/proc/$p/stat" ] || continue
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
TICK=$(getconf CLK_TCK)

# ---- the certificate, the files, nginx ----
certtool --generate-privkey --key-type ecdsa --curve secp256r1 --outfile "$TMP/key.pem" 2>/dev/null
cat > "$TMP/tmpl" <<EOF
cn = localhost
dns_name = localhost
ip_address = 127.0.0.1
expiration_days = 2
tls_www_server
signing_key
EOF
certtool --generate-self-signed --load-privkey "$TMP/key.pem" --template "$TMP/tmpl" \
    --outfile "$TMP/cert.pem" 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" > "$TMP/both.pem"
mkdir -p "$TMP/root" "$TMP/nginx"
head -c $((1 << 20)) /dev/urandom > "$TMP/root/1m.bin"
head -c $((100 << 20)) /dev/urandom > "$TMP/root/100m.bin"
chmod a+rx "$TMP" "$TMP/root"; chmod a+r "$TMP/root/"*.bin   # nginx's workers are not root
NPORT=$(free_port)
cat > "$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/pid;
error_log $TMP/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$NPORT; root $TMP/root; }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" > "$TMP/nginx/out" 2>&1 &
PIDS+=($!)
wait_port "$NPORT" || { cat "$TMP/nginx/out"; exit 2; }

# ---- the proxies ----
start_proxy() {   # start_proxy NAME PORT: sets PPID_ (the pid whose CPU is counted)
    local name=$1 port=$2
    case "$name" in
    tlsflow)
        "$PROXY" --listen "127.0.0.1:$port" --backend "127.0.0.1:$NPORT" --cert "$TMP/cert.pem" \
            --key "$TMP/key.pem" --threads 1 --ktls "$KTLS" --priority "$PRIO" --stats-interval 0 \
            > "$TMP/$name.out" 2> "$TMP/$name.err" & ;;
    haproxy)
        cat > "$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 1000
defaults
    mode tcp
    timeout connect 10s
    timeout client 120s
    timeout server 120s
frontend tls
    bind 127.0.0.1:$port ssl crt $TMP/both.pem ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256
    default_backend web
backend web
    server nginx 127.0.0.1:$NPORT
EOF
        haproxy -db -f "$TMP/haproxy.cfg" > "$TMP/$name.out" 2>&1 & ;;
    stunnel)
        cat > "$TMP/stunnel.conf" <<EOF
foreground = yes
pid =
[tls]
accept = 127.0.0.1:$port
connect = 127.0.0.1:$NPORT
cert = $TMP/cert.pem
key = $TMP/key.pem
sslVersionMin = TLSv1.3
ciphersuites = TLS_AES_128_GCM_SHA256
EOF
        stunnel4 "$TMP/stunnel.conf" > "$TMP/$name.out" 2>&1 & ;;
    hitch)
        hitch --frontend="[127.0.0.1]:$port" --backend="[127.0.0.1]:$NPORT" --workers=1 \
            --tls-protos=TLSv1.3 --daemon=off --user=nobody "$TMP/both.pem" > "$TMP/$name.out" 2>&1 & ;;
    esac
    PPID_=$!
    PIDS+=("$PPID_")
    wait_port "$port" || { echo "proxy.sh: $name did not start:"; cat "$TMP/$name.out" "$TMP/$name.err" 2>/dev/null; return 1; }
}

# jvalid FIELD: FIELD of tlsflow-bench's JSON on stdin when the run counts (no
# error, no failed connect, something moved), else "x" and why.
jvalid() { python3 -c "
import json, sys
try: j = json.loads(sys.stdin.read() or '{}')
except ValueError: j = {}
if not j: print('x(no result)')
elif j.get('errors', 1) or j.get('connect_errors', 1):
    print('x(%s errors, %s connect errors)' % (j.get('errors'), j.get('connect_errors')))
elif not j.get('bytes') and not j.get('handshakes'): print('x(nothing moved)')
else: print(j.get('$1', 'nan'))"; }
# median V...: of the values that are numbers ("nan" when none)
median() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
        awk '{a[NR] = $1; d = index($1, ".") ? length($1) - index($1, ".") : 0; if (d > p) p = d}
             END {if (!NR) print "nan"; else if (NR % 2) print a[(NR + 1) / 2];
                  else printf "%.*f\n", p, (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
RUNLOG=$TMP/runs

say "## tlsflow-proxy vs HAProxy, stunnel4, hitch ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs)"
say "versions: $("$PROXY" --version), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(stunnel4 -version 2>&1 | grep -m1 -o 'stunnel [0-9.]*'), $(hitch --version 2>&1 | head -1), $(nginx -v 2>&1)"
say "TLS 1.3 AES-128-GCM, ECDSA P-256, median of $RUNS runs of $DURATION s per figure, tlsflow-proxy --ktls $KTLS; load average $(cut -d' ' -f1-3 /proc/loadavg)"
say ""
say "| proxy | 1 MiB c=1 MB/s | 1 MiB c=16 MB/s | 100 MiB c=1 MB/s | 100 MiB c=16 MB/s | CPU s/GB (1 MiB c=16) | new conn/s (c=16) |"
say "| --- | --- | --- | --- | --- | --- | --- |"
IFS=, read -r -a names <<< "$ONLY"
declare -A M   # M[proxy,column]: the medians of the table, for the targets
for name in "${names[@]}"; do
    port=$(free_port)
    start_proxy "$name" "$port" || continue
    row="| $name"
    cpus=()
    for spec in "1m.bin 1" "1m.bin 16" "100m.bin 1" "100m.bin 16"; do
        set -- $spec
        vals=()
        for _ in $(seq "$RUNS"); do
            t0=$(ticks "$PPID_")
            j=$("$BENCH" throughput --port "$port" --path "/$1" --connections "$2" --duration "$DURATION" \
                --ca "$TMP/cert.pem" --priority "$PRIO" --json 2>>"$TMP/bench.err" | head -1 || true)
            t1=$(ticks "$PPID_")
            mbs=$(jvalid mb_per_s <<< "$j")
            vals+=("$mbs")
            if [ "$1 $2" = "1m.bin 16" ]; then
                bytes=$(jvalid bytes <<< "$j")
                cpus+=("$(awk -v t=$((t1 - t0)) -v k="$TICK" -v b="$bytes" 'BEGIN {if (b + 0 > 0) printf "%.3f", t / k / (b / 1e9); else print "x"}')")
            fi
        done
        med=$(median "${vals[@]}")
        printf '    %s %s c=%s MB/s: %s (median %s)\n' "$name" "${1%.bin}" "$2" "${vals[*]}" "$med" >> "$RUNLOG"
        M[$name,${1%.bin} c=$2 MB/s]=$med
        row="$row | $med"
    done
    cpugb=$(median "${cpus[@]}")
    printf '    %s CPU s/GB (1 MiB c=16): %s (median %s)\n' "$name" "${cpus[*]}" "$cpugb" >> "$RUNLOG"
    vals=()
    for _ in $(seq "$RUNS"); do
        j=$("$BENCH" handshake --port "$port" --connections 16 --duration "$DURATION" --ca "$TMP/cert.pem" \
            --priority "$PRIO" --json 2>>"$TMP/bench.err" | head -1 || true)
        vals+=("$(jvalid handshakes_per_s <<< "$j")")
    done
    hs=$(median "${vals[@]}")
    printf '    %s new conn/s (c=16): %s (median %s)\n' "$name" "${vals[*]}" "$hs" >> "$RUNLOG"
    M[$name,CPU s/GB]=$cpugb
    M[$name,new conn/s]=$hs
    row="$row | $cpugb | $hs |"
    say "$row"
    [ -s "$TMP/bench.err" ] && sed "s/^/    bench: /" "$TMP/bench.err" | sort -u | head -3 >&2 && : > "$TMP/bench.err"
    kill -TERM "$PPID_" 2>/dev/null || true
    wait "$PPID_" 2>/dev/null || true
    if [ "$name" = tlsflow ]; then
        grep -h "plaintext copied" "$TMP/tlsflow.err" | sed 's/^/    /' | tee -a "$TMP/counters" >/dev/null || true
    fi
done
say ""
if [ -s "$RUNLOG" ]; then
    say "The runs (x: did not count, and why):"
    while IFS= read -r l; do say "$l"; done < "$RUNLOG"
fi
if [ -n "${M[tlsflow,new conn/s]:-}" ] && [ "${#names[@]}" -gt 1 ]; then
    say "Targets: tlsflow-proxy against the best of the others (higher is better; CPU: lower):"
    for col in "1m c=1 MB/s" "1m c=16 MB/s" "100m c=1 MB/s" "100m c=16 MB/s" "CPU s/GB" "new conn/s"; do
        best='' who=''
        for name in "${names[@]}"; do
            [ "$name" = tlsflow ] && continue
            v=${M[$name,$col]:-nan}
            [ "$v" = nan ] && continue
            if [ -z "$best" ] || awk -v v="$v" -v b="$best" -v c="$col" \
                   'BEGIN {exit !(c == "CPU s/GB" ? v < b : v > b)}'; then
                best=$v who=$name
            fi
        done
        t=${M[tlsflow,$col]:-nan}
        if [ -z "$best" ] || [ "$t" = nan ]; then say "- $col: no figure"; continue; fi
        r=$(awk -v a="$t" -v b="$best" 'BEGIN {printf "%.2f", a / b}')
        if [ "$col" = "CPU s/GB" ]; then ok=$(awk -v r="$r" 'BEGIN {print (r <= 1.0) ? "met" : "MISSED"}')
        else ok=$(awk -v r="$r" 'BEGIN {print (r >= 1.0) ? "met" : "MISSED"}'); fi
        say "- $ok $col: tlsflow $t, best other $who $best (${r}x)"
    done
fi
say "stunnel4 runs a thread per connection (its build has no single-thread mode); hitch"
say "--workers=1 is one worker process; HAProxy nbthread 1; tlsflow-proxy --threads 1."
if [ -s "$TMP/counters" ]; then
    say "tlsflow-proxy's loop counters at exit:"
    while IFS= read -r l; do say "$l"; done < "$TMP/counters"
fi

if [ -n "$WRITE" ]; then
    begin='<!-- proxy.sh: begin (written by bench/proxy.sh --write; do not edit by hand) -->'
    end='<!-- proxy.sh: end -->'
    {
        echo "$begin"
        echo "Regenerate with \`$CMDLINE\` (\`--help\` describes the options)."
        echo "Targets (issue 13): throughput and new connections/s ≥ 1.0× the best of the others,"
        echo "CPU s/GB ≤ theirs.  MB/s on a shared 2-core machine move with its load; the"
        echo "counts (submissions, userspace copies at exit) do not."
        echo
        sed 's/^## /### /' "$LOG"
        echo "$end"
    } > "$TMP/section"
    if [ -f "$WRITE" ] && grep -qF "$begin" "$WRITE"; then
        awk -v b="$begin" -v e="$end" -v f="$TMP/section" '
            $0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
            skip && $0 == e { skip = 0; next }
            !skip' "$WRITE" > "$TMP/out"
    else
        { [ -f "$WRITE" ] && cat "$WRITE" && echo; cat "$TMP/section"; } > "$TMP/out"
    fi
    cat "$TMP/out" > "$WRITE"
    echo "wrote the section in $WRITE"
fi
