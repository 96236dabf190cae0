#!/bin/sh
# SIGTERM with open connections: close_notify reaches the peer (tlsflow-client
# then exits 0) and tlsflow-serve exits 0.  SIGINT too.
. "$(dirname "$0")/lib.sh"

start_server --echo --threads 2
# a client whose stdin stays open: only the server's close_notify ends it
mkfifo "$WORK/fifo"
timeout 20 "$CLIENT" --ca "$CA" "127.0.0.1:$PORT" < "$WORK/fifo" > "$WORK/out" 2>"$WORK/client.err" &
CPID=$!
exec 3>"$WORK/fifo"
printf 'before\n' >&3
for _ in $(seq 50); do
    grep -q before "$WORK/out" 2>/dev/null && break
    sleep 0.1
done
grep -q before "$WORK/out" || fail "no echo before SIGTERM"
stop_server
rc=0
wait "$CPID" || rc=$?
exec 3>&-
[ "$rc" -eq 0 ] || fail "client exited $rc (no close_notify from the server?)"

start_server --root "$WORK"
kill -INT "$SERVER_PID"
for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
[ "$rc" -eq 0 ] || fail "SIGINT exit $rc"
echo PASS
