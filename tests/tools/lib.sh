# Shared by the tools' shell tests.  Sourced with the test's arguments:
#   SERVE CLIENT BENCH CERTDIR
# Sets SERVE, CLIENT, BENCH, CERTS, CA, CERT, KEY, WORK (a temp dir removed at
# exit) and offers start_server / stop_server / need / fail.
set -eu

SERVE=${1:?usage: $0 SERVE CLIENT BENCH CERTDIR}
CLIENT=${2:?}
BENCH=${3:?}
CERTS=$(cd "${4:?}" && pwd)
CA=$CERTS/ca.pem
CERT=$CERTS/server-ecdsa.pem
KEY=$CERTS/server-ecdsa-key.pem
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tlsflow-tools-test.XXXXXX")
SERVER_PID=
PORT=

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$WORK"/*.err; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

# need PROGRAM...: skip (77) when one is missing
need() {
    for p in "$@"; do
        command -v "$p" >/dev/null 2>&1 || { echo "SKIP: $p not installed"; exit 77; }
    done
}

# start_server ARGS...: runs tlsflow-serve on a free port; sets PORT, SERVER_PID
start_server() {
    rm -f "$WORK/serve.out"
    "$SERVE" --cert "$CERT" --key "$KEY" --port 0 --stats-interval 0 "$@" \
        >"$WORK/serve.out" 2>"$WORK/serve.err" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        if [ -s "$WORK/serve.out" ]; then
            line=$(head -n 1 "$WORK/serve.out")
            case $line in
                "listening on "*:*) PORT=${line##*:}; return 0 ;;
                *) fail "unexpected first line: $line" ;;
            esac
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || fail "tlsflow-serve exited at start"
        sleep 0.1
    done
    fail "tlsflow-serve did not print its port"
}

# stop_server: SIGTERM, expect exit 0 within 10 s
stop_server() {
    kill -TERM "$SERVER_PID"
    for _ in $(seq 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            rc=0
            wait "$SERVER_PID" || rc=$?
            SERVER_PID=
            [ "$rc" -eq 0 ] || fail "tlsflow-serve exited $rc after SIGTERM"
            return 0
        fi
        sleep 0.1
    done
    fail "tlsflow-serve still running 10 s after SIGTERM"
}
