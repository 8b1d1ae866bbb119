#!/usr/bin/env bash
# e2e (issue 4): a restarted server gets all its clients back. 20 client daemons are connected;
# the server is stopped with SIGTERM (GOAWAY, exit 0) and started again on the same port; every
# client redials after RECONNECT_DELAY (with RECONNECT_JITTER) and all 20 serve again. Prints the
# measured time from the new server's start to the last client serving. Then: a request for a
# client that is away (killed) gets 502 quickly, not a hang.
source "$(dirname "$0")/lib.sh"
require_binaries

NCLIENTS=${NCLIENTS:-20}
start_echo app || exit 1
start_server || exit 1
for ((i = 1; i <= NCLIENTS; i++)); do
    start_client "c$i" "$ECHO_PORT" RECONNECT_DELAY=1s RECONNECT_JITTER=0.2 LOG_LEVEL=info
    eval "CPID_$i=$CLIENT_PID"
done
# all_serving TIMEOUT_S: every client answers 200 through the tunnel within TIMEOUT_S (total)
all_serving() {
    local deadline=$((SECONDS + $1)) i code
    for ((i = 1; i <= NCLIENTS; i++)); do
        while :; do
            code=$(CURL_MAX_TIME=2 tcurl "c$i" / -o /dev/null -w '%{http_code}' 2>/dev/null)
            [ "$code" = 200 ] && break
            if [ $SECONDS -ge $deadline ]; then
                echo "c$i not serving (last status $code)" >&2
                return 1
            fi
            sleep 0.1
        done
    done
}
check "all $NCLIENTS clients serving" all_serving 30

echo "== server restart"
OLD_PID=$SERVER_PID
kill -TERM "$OLD_PID"
for ((i = 0; i < 100; i++)); do
    kill -0 "$OLD_PID" 2>/dev/null || break
    sleep 0.1
done
wait "$OLD_PID"
check_eq "server exits 0 on SIGTERM" 0 "$?"
check_contains "server sent GOAWAY and drained" "drained in" "$(cat "$T/server.log")"
mv "$T/server.log" "$T/server-1.log"
sleep 0.5 # the clients see the server gone
t0=$(date +%s%N)
SERVER_PORT_WANTED=$SERVER_PORT start_server || exit 1
if all_serving 40; then
    ms=$((($(date +%s%N) - t0) / 1000000))
    pass "all $NCLIENTS clients back after the restart in $ms ms"
    echo "MEASURED: $NCLIENTS clients back ${ms} ms after the server restart (RECONNECT_DELAY=1s, RECONNECT_JITTER=0.2)"
else
    fail "all $NCLIENTS clients back after the restart"
fi
check_eq "every client registered again" "$NCLIENTS" "$(grep -c 'tunnel registered' "$T/server.log")"
gone=0
for ((i = 1; i <= NCLIENTS; i++)); do
    grep -q "server going away" "$T/client-c$i.log" && gone=$((gone + 1))
done
check_eq "every client logged the server's GOAWAY" "$NCLIENTS" "$gone"
alive=0
for ((i = 1; i <= NCLIENTS; i++)); do
    p=CPID_$i
    kill -0 "${!p}" 2>/dev/null && alive=$((alive + 1))
done
check_eq "no client exited" "$NCLIENTS" "$alive"

echo "== a client away -> 502 quickly"
kill -KILL "$CPID_1"
wait "$CPID_1" 2>/dev/null
sleep 0.3
t0=$(date +%s%N)
code=$(CURL_MAX_TIME=10 tcurl c1 / -o /dev/null -w '%{http_code}')
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "request for a killed client -> 502" 502 "$code"
if [ $ms -lt 1000 ]; then pass "502 in $ms ms"; else fail "502 quickly" "$ms ms"; fi
stop_pid "$CPID_2"
t0=$(date +%s%N)
code=$(CURL_MAX_TIME=10 tcurl c2 / -o /dev/null -w '%{http_code}')
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "request for a client stopped with SIGTERM -> 502" 502 "$code"
if [ $ms -lt 1000 ]; then pass "502 in $ms ms"; else fail "502 quickly" "$ms ms"; fi
check_eq "the others still serve" 200 "$(tcurl c3 / -o /dev/null -w '%{http_code}')"
exit 0
