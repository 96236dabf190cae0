#!/bin/bash
# Memory per connection under TLS peers that never read: tlsflow-serve (HTTP
# and --echo) and Debian's nginx (HTTP), on this machine.
#
# Method, per server and mode, --runs times (a fresh server each run):
#   1. start the server (one thread / worker, TLS 1.3 AES-128-GCM X25519, the
#      test PKI's ECDSA P-256 certificate) with --root holding a --file-mib MiB
#      file "big";
#   2. warm up with one connection (handshake, one small request or echo),
#      then take the idle RSS (VmRSS of /proc/PID/status);
#   3. connect --conns clients (bench/never_read.py, python3's ssl) that each
#      complete the handshake and never read a byte:
#        http: "GET /big HTTP/1.1" plus --pipelined more requests in one write
#        echo: stream bytes for --stream seconds, as fast as the server takes them
#   4. wait until the server's RSS is stable (change <= 256 kB + 1% of the
#      growth over 2 s; at most --settle s), take it, and check with ss that
#      every server-side socket has bytes queued in its send queue (the server
#      really answered each peer);
#   5. report (RSS_with - RSS_idle) / conns in kB.
# Figures are medians over the runs.  Then, unless --no-throughput, a
# well-behaved client's throughput: curl downloads "big" (200 and the whole
# length checked) alone, then with --conns never-reading HTTP clients
# connected, --runs times each, interleaved; median MB/s (10^6 bytes/s).
#
# usage: bench/memory.sh [--build-dir DIR | --serve FILE] [--conns N] [--runs N]
#                        [--only tlsflow|nginx] [--modes http,echo] [--file-mib M]
#                        [--pipelined K] [--stream S] [--settle S] [--ktls MODE]
#                        [--certs DIR] [--max-kb KB] [--no-throughput]
#                        [--write [FILE]] [--note TEXT]
#   --build-dir DIR  a built tree holding tools/tlsflow-serve (default:
#                    build-bench/, configured and built here as bench/compare.sh
#                    does it)
#   --serve FILE     the tlsflow-serve binary itself
#   --conns N        never-reading clients per run (default 16)
#   --runs N         runs per figure (default 3)
#   --ktls MODE      tlsflow-serve --ktls (default auto)
#   --max-kb KB      exit 1 when a tlsflow-serve median exceeds KB per connection
#   --write [FILE]   put the figures in FILE (default BENCHMARKS.md) between
#                    the "memory.sh" markers, replacing what was there
#   --note TEXT      a line for the written section (what was measured)
# Exit status: 0, 1 (a figure over --max-kb, or a run that did not measure
# what it should: a client failed, a peer got no response), 2 (usage, setup).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMDLINE=bench/memory.sh
for a in "$@"; do   # as a shell would take it back, quoted only where needed
    case $a in
        *[!A-Za-z0-9_./:,=+-]*|"") CMDLINE+=" '${a//\'/\'\\\'\'}'" ;;
        *) CMDLINE+=" $a" ;;
    esac
done
BUILD= SERVE= CONNS=16 RUNS=3 ONLY= MODES=http,echo FILE_MIB=64 PIPELINED=3 STREAM=3
SETTLE=20 KTLS=auto CERTS= MAX_KB= THROUGHPUT=1 WRITE= NOTE=
while [ $# -gt 0 ]; do
    case $1 in
        --build-dir|--build) BUILD=$2; shift ;;
        --serve) SERVE=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --modes) MODES=$2; shift ;;
        --file-mib) FILE_MIB=$2; shift ;;
        --pipelined) PIPELINED=$2; shift ;;
        --stream) STREAM=$2; shift ;;
        --settle) SETTLE=$2; shift ;;
        --ktls) KTLS=$2; shift ;;
        --certs) CERTS=$2; shift ;;
        --max-kb) MAX_KB=$2; shift ;;
        --no-throughput) THROUGHPUT=0 ;;
        --write)
            WRITE=$ROOT/BENCHMARKS.md
            case ${2:-} in ""|--*) ;; *) WRITE=$2; shift ;; esac ;;
        --note) NOTE=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "memory.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case $ONLY in ""|tlsflow|nginx) ;; *) echo "memory.sh: --only tlsflow|nginx" >&2; exit 2 ;; esac
IFS=, read -r -a modes <<< "$MODES"
for m in "${modes[@]}"; do
    case $m in http|echo) ;; *) echo "memory.sh: --modes takes http, echo or both (http,echo)" >&2; exit 2 ;; esac
done
for v in "$CONNS" "$RUNS" "$FILE_MIB" "$PIPELINED" "$SETTLE"; do
    case $v in ""|*[!0-9]*) echo "memory.sh: not a number: '$v'" >&2; exit 2 ;; esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
apt_install() {
    echo "memory.sh: installing $*" >&2
    as_root apt-get -o DPkg::Lock::Timeout=300 install -y "$@" >&2 ||
        { as_root apt-get -o DPkg::Lock::Timeout=300 update >&2 &&
          as_root apt-get -o DPkg::Lock::Timeout=300 install -y "$@" >&2; }
}
need() { command -v "$1" >/dev/null 2>&1 || apt_install "$2"; }
need python3 python3
need ss iproute2
[ -n "$CERTS" ] || need certtool gnutls-bin
[ "$THROUGHPUT" = 1 ] && need curl curl
[ "$ONLY" = tlsflow ] || need nginx nginx-light

if [ -z "$SERVE" ] && [ -z "$BUILD" ] && [ "$ONLY" != nginx ]; then
    # as bench/compare.sh: our own tree, rebuilt (incrementally) every time
    BUILD=$ROOT/build-bench
    need cmake cmake
    need cc gcc
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLSFLOW_TESTS=OFF \
            > "$ROOT/build-bench.log" 2>&1 || { cat "$ROOT/build-bench.log"; exit 2; }
    fi
    cmake --build "$BUILD" -j"$(nproc)" --target tlsflow-serve >> "$ROOT/build-bench.log" 2>&1 ||
        { tail -n 40 "$ROOT/build-bench.log"; exit 2; }
    mv "$ROOT/build-bench.log" "$BUILD/memory-build.log"
fi
[ -n "$SERVE" ] || SERVE=$BUILD/tools/tlsflow-serve
if [ "$ONLY" != nginx ] && [ ! -x "$SERVE" ]; then
    echo "memory.sh: no tlsflow-serve at $SERVE (build it, or pass --build-dir / --serve)" >&2
    exit 2
fi
CLIENTS=$ROOT/bench/never_read.py

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tlsflow-memory.XXXXXX")
SPID= CPID=
LOG=$TMP/log
BAD=0
cleanup() {
    [ -n "$CPID" ] && kill -KILL "$CPID" 2>/dev/null || true
    [ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
say() { printf '%s\n' "$*" | tee -a "$LOG"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR+1)/2]; else printf "%.6g\n", (v[NR/2]+v[NR/2+1])/2}'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

PRIO='NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:+GROUP-X25519'
if [ -z "$CERTS" ]; then
    CERTS=$TMP/certs
    sh "$ROOT/tests/common/make-certs.sh" "$CERTS"
fi
CA=$CERTS/ca.pem CERT=$CERTS/server-ecdsa.pem KEY=$CERTS/server-ecdsa-key.pem
mkdir -p "$TMP/root"
head -c $((FILE_MIB << 20)) /dev/urandom > "$TMP/root/big"
echo small > "$TMP/root/small"
BIG_BYTES=$((FILE_MIB << 20))

free_port() {
    local p lo out
    lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    while :; do
        p=$(( 10000 + RANDOM % (lo - 10000) ))
        out=$(ss -Htan "sport = :$p")
        [ -z "$out" ] && { echo $p; return; }
    done
}

wait_listen() {   # wait_listen PORT: until something listens there
    local out
    for _ in $(seq 100); do
        out=$(ss -Htln "sport = :$1")
        [ -n "$out" ] && return 0
        kill -0 "$SPID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

start_tlsflow() {   # start_tlsflow http|echo
    local m=(--root "$TMP/root")
    [ "$1" = echo ] && m=(--echo)
    "$SERVE" --cert "$CERT" --key "$KEY" --port 0 --threads 1 --priority "$PRIO" \
        --ktls "$KTLS" --stats-interval 0 --grace 1 "${m[@]}" \
        > "$TMP/serve.out" 2> "$TMP/serve.err" &
    SPID=$!
    for _ in $(seq 100); do
        [ -s "$TMP/serve.out" ] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    PORT=$(sed -n '1s/^listening on .*:\([0-9]*\)$/\1/p' "$TMP/serve.out")
    [ -n "$PORT" ] || { echo "tlsflow-serve did not start: $(cat "$TMP/serve.err")" >&2; exit 2; }
}

# as bench/compare.sh starts it: one process, no master, TLS 1.3 AES-128-GCM
# X25519, sendfile on; nothing here is tuned for never-reading peers
start_nginx() {
    local n=$TMP/nginx try
    mkdir -p "$n/tmp"
    for try in 1 2 3 4 5; do
        PORT=$(free_port)
        cat > "$n/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 600;
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
        root $TMP/root;
    }
}
EOF
        nginx -p "$n" -e "$n/error.log" -c "$n/nginx.conf" > "$n/stdout" 2>&1 &
        SPID=$!
        wait_listen "$PORT" && return 0
        kill -KILL "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    done
    echo "nginx did not start: $(cat "$n/error.log" "$n/stdout")" >&2
    exit 2
}

start_server() {   # start_server tlsflow|nginx http|echo
    if [ "$1" = tlsflow ]; then start_tlsflow "$2"; else start_nginx; fi
}

stop_server() {
    kill -TERM "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
}

# start_clients N MODE [ARGS...]: never-reading clients; returns once all are ready
start_clients() {
    local n=$1 mode=$2
    shift 2
    python3 "$CLIENTS" --port "$PORT" --ca "$CA" --conns "$n" --mode "$mode" \
        --pipelined "$PIPELINED" --stream "$STREAM" "$@" > "$TMP/clients.out" 2> "$TMP/clients.err" &
    CPID=$!
    for _ in $(seq 600); do
        [ -s "$TMP/clients.out" ] && return 0
        kill -0 "$CPID" 2>/dev/null || break
        sleep 0.1
    done
    echo "never_read.py did not get ready: $(cat "$TMP/clients.err")" >&2
    return 1
}

stop_clients() {
    kill -TERM "$CPID" 2>/dev/null || true
    wait "$CPID" 2>/dev/null || true
    CPID=
}

# the server's established sockets on PORT: "sendq recvq" per line
server_queues() {
    ss -Htn state established "( sport = :$PORT )" | awk '{print $2, $1}'
}

declare -A R   # R[server mode] = "v1 v2 ..."

measure() {   # measure tlsflow|nginx http|echo RUN
    local s=$1 m=$2 run=$3 rss0 rss1 t0 hist=() per q nq full minq
    start_server "$s" "$m"
    # warm-up: one connection that is served (one-time costs stay out of the figure)
    python3 "$CLIENTS" --port "$PORT" --ca "$CA" --conns 1 --mode "$m" --path /small \
        --pipelined 0 --stream 0 --hold 0.3 > /dev/null 2> "$TMP/warm.err" ||
        { say "$s $m run $run: warm-up connection failed: $(cat "$TMP/warm.err")"; BAD=1; stop_server; return; }
    # and, for echo, 8 MiB through one connection that reads it back: the
    # loop's shared receive ring (a fixed cost per loop) is then warm too
    if [ "$m" = echo ]; then
        python3 - "$PORT" "$CA" <<'PY' 2> "$TMP/warm.err" ||
import socket, ssl, sys
# One thread: an SSL socket must not be read and written from two at once.
# In lockstep, 64 KiB out then 64 KiB back, which the buffers always hold.
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
n, step = 8 << 20, 65536
chunk = b"w" * step
for _ in range(n // step):
    s.sendall(chunk)
    got = 0
    while got < step:
        b = s.recv(step - got)
        if not b:
            sys.exit("echo warm-up: the server closed")
        got += len(b)
s.close()
PY
            { say "$s $m run $run: echo warm-up failed: $(cat "$TMP/warm.err")"; BAD=1; stop_server; return; }
    fi
    sleep 0.5
    rss0=$(rss_kb "$SPID")
    if ! start_clients "$CONNS" "$m"; then
        say "$s $m run $run: clients failed"; BAD=1; stop_clients; stop_server; return
    fi
    # stable: the last five samples (2 s) within 256 kB + 1% of the growth
    t0=$(date +%s.%N)
    while :; do
        sleep 0.5
        hist+=("$(rss_kb "$SPID")")
        local k=${#hist[@]}
        if [ "$k" -ge 5 ]; then
            local w=("${hist[@]:k-5:5}")
            awk -v a="$rss0" -v w="${w[*]}" 'BEGIN {
                n = split(w, v, " "); lo = hi = v[1]
                for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
                exit !(hi - lo <= 256 + 0.01 * (hi - a)) }' && break
        fi
        if awk -v t0="$t0" -v now="$(date +%s.%N)" -v s="$SETTLE" 'BEGIN {exit !(now - t0 > s)}'; then
            say "$s $m run $run: RSS not stable after ${SETTLE}s (last: ${hist[*]: -5})"
            break
        fi
    done
    rss1=${hist[${#hist[@]}-1]}
    local waited
    waited=$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN {printf "%.1f", now - t0}')
    q=$(server_queues)
    nq=$(printf '%s\n' "$q" | awk 'NF' | wc -l)
    full=$(printf '%s\n' "$q" | awk '$1 > 0' | wc -l)
    minq=$(printf '%s\n' "$q" | awk 'NF {print $1}' | sort -n | head -n 1)
    local sent
    sent=$(awk '{print $3}' "$TMP/clients.out")
    kill -0 "$CPID" 2>/dev/null || { say "$s $m run $run: never_read.py exited: $(cat "$TMP/clients.err")"; BAD=1; }
    stop_clients
    stop_server
    per=$(awk -v a="$rss0" -v b="$rss1" -v n="$CONNS" 'BEGIN {printf "%.1f", (b - a) / n}')
    say "$s $m run $run: RSS idle $rss0 kB, with $CONNS never-reading clients $rss1 kB (stable after ${waited}s), $per kB per connection; server sockets $nq, $full with bytes queued to send (least ${minq:-0} B); clients wrote $sent B"
    if [ "$nq" -ne "$CONNS" ] || [ "$full" -ne "$CONNS" ]; then
        say "$s $m run $run: NOT MEASURED RIGHT: expected $CONNS server sockets, each with a send queue"
        BAD=1
    fi
    R[$s $m]="${R[$s $m]:-} $per"
}

curl_mbs() {   # one download of big: MB/s, or "fail ..."
    local out code size speed
    out=$(curl -sS --cacert "$CA" --max-time 60 -o /dev/null \
          -w '%{http_code} %{size_download} %{speed_download}' "https://127.0.0.1:$PORT/big" 2>&1) || true
    read -r code size speed <<< "$out"
    if [ "$code" != 200 ] || [ "$size" != "$BIG_BYTES" ]; then
        echo "fail ($out)"
        return
    fi
    awk -v s="$speed" 'BEGIN {printf "%.1f", s / 1e6}'
}

throughput() {   # throughput tlsflow|nginx: alone and with the clients, interleaved
    local s=$1 run v
    start_server "$s" http
    for run in $(seq "$RUNS"); do
        v=$(curl_mbs)
        say "$s curl alone run $run: $v MB/s"
        case $v in fail*) BAD=1 ;; *) R[$s alone]="${R[$s alone]:-} $v" ;; esac
        if ! start_clients "$CONNS" http; then
            say "$s throughput: clients failed"; BAD=1; stop_clients; continue
        fi
        sleep 1
        v=$(curl_mbs)
        say "$s curl with $CONNS never-reading clients run $run: $v MB/s"
        case $v in fail*) BAD=1 ;; *) R[$s hostile]="${R[$s hostile]:-} $v" ;; esac
        stop_clients
        sleep 0.5
    done
    stop_server
}

servers=()
[ "$ONLY" = nginx ] || servers+=(tlsflow)
[ "$ONLY" = tlsflow ] || servers+=(nginx)

say "memory per connection under TLS peers that never read, $(date -u '+%Y-%m-%d %H:%M UTC')"
say "command: $CMDLINE"
if git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
    dirty=$(git -C "$ROOT" status --porcelain -- ring handshake ktls include tools | awk '{print $2}' | tr '\n' ' ')
    say "working tree at run time: commit $(git -C "$ROOT" rev-parse --short HEAD)${dirty:+, uncommitted changes in: $dirty}"
fi
[ "$ONLY" != nginx ] && say "tlsflow-serve: $SERVE, built $(date -u -r "$SERVE" '+%Y-%m-%d %H:%M UTC')"
[ -n "$NOTE" ] && say "note: $NOTE"
say "machine: $(uname -sr), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), kernel TLS ULP: $(cat /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null || echo none)"
sw="python3 $(python3 -c 'import ssl, platform; print(platform.python_version(), "with", ssl.OPENSSL_VERSION)')"
[ "$ONLY" != nginx ] && sw="$("$SERVE" --version) (--ktls $KTLS), $sw"
[ "$ONLY" != tlsflow ] && sw="$sw, $(nginx -v 2>&1 | sed 's/.*: //')"
say "software: $sw"
say "settings: $CONNS clients, $RUNS run(s), file $FILE_MIB MiB, http: GET /big + $PIPELINED pipelined, echo: ${STREAM}s of streaming; TLS 1.3 AES-128-GCM X25519, ECDSA P-256"
say ""

for s in "${servers[@]}"; do
    for m in "${modes[@]}"; do
        [ "$s" = nginx ] && [ "$m" != http ] && continue   # nginx has no echo
        for run in $(seq "$RUNS"); do
            measure "$s" "$m" "$run"
        done
    done
done
if [ "$THROUGHPUT" = 1 ]; then
    for s in "${servers[@]}"; do
        throughput "$s"
    done
fi

med() { if [ -n "${R[$1]:-}" ]; then printf '%s\n' ${R[$1]} | median; else echo nan; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "nan" || b == "nan" || a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.1f\n", a / b}'; }
nginx_http=$(med "nginx http")
over=0
say ""
say "## kB per never-reading connection (median of $RUNS)"
say ""
say "| mode | server | kB per connection | vs nginx http |${MAX_KB:+ limit $MAX_KB kB |}"
say "| --- | --- | ---: | ---: |${MAX_KB:+ --- |}"
for s in "${servers[@]}"; do
    for m in "${modes[@]}"; do
        [ "$s" = nginx ] && [ "$m" != http ] && continue
        v=$(med "$s $m")
        lim=
        if [ -n "$MAX_KB" ] && [ "$s" = tlsflow ]; then
            if awk -v v="$v" -v l="$MAX_KB" 'BEGIN {exit !(v == "nan" || v + 0 > l)}'; then
                lim=" OVER |"; over=1
            else
                lim=" ok |"
            fi
        elif [ -n "$MAX_KB" ]; then
            lim=" - |"
        fi
        name=$s; [ "$s" = tlsflow ] && name=tlsflow-serve
        say "| $m | $name | $v | $(ratio "$v" "$nginx_http") |$lim"
    done
done
if [ "$THROUGHPUT" = 1 ]; then
    say ""
    say "## A well-behaved client's throughput (curl, ${FILE_MIB} MiB, median MB/s of $RUNS)"
    say ""
    say "| server | alone | with $CONNS never-reading clients | ratio |"
    say "| --- | ---: | ---: | ---: |"
    for s in "${servers[@]}"; do
        a=$(med "$s alone") b=$(med "$s hostile")
        name=$s; [ "$s" = tlsflow ] && name=tlsflow-serve
        say "| $name | $a | $b | $(ratio "$b" "$a") |"
    done
fi
say ""
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: MB/s move with it, kB per connection do not)"
say "kB per connection = (VmRSS with the clients connected - VmRSS idle) / $CONNS; the kernel's"
say "socket buffers are not in RSS.  A \"NOT MEASURED RIGHT\" line above voids its run."

if [ -n "$WRITE" ]; then
    begin='<!-- memory.sh: begin (written by bench/memory.sh --write; do not edit by hand) -->'
    end='<!-- memory.sh: end -->'
    {
        echo "$begin"
        echo "## Memory per connection under peers that never read"
        echo
        echo "Regenerate with \`bench/memory.sh --build-dir BUILD --write\` (BUILD: a built tree; \`--help\`"
        echo "describes the options); the exact command of these figures is in the block below."
        echo "Each never-reading client completes the TLS handshake and then never reads: over HTTP"
        echo "it sends \`GET /big HTTP/1.1\` plus pipelined requests for the same ${FILE_MIB} MiB file, over"
        echo "\`tlsflow-serve --echo\` it streams bytes for a few seconds.  The server's VmRSS is taken idle"
        echo "(after one warm-up connection) and again once it is stable with the clients connected;"
        echo "\`ss\` confirms that every server socket has bytes queued to send.  A fresh server per run."
        echo
        echo '```'
        sed -n '1,/^## kB per/p' "$LOG" | sed '$d'
        echo '```'
        echo
        sed -n '/^## kB per/,$p' "$LOG" | sed 's/^## /### /'
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

[ "$BAD" = 0 ] || { echo "memory.sh: some runs did not measure what they should (see above)" >&2; exit 1; }
[ "$over" = 0 ] || { echo "memory.sh: tlsflow-serve holds more than $MAX_KB kB per never-reading connection" >&2; exit 1; }
exit 0
