#!/usr/bin/env bash
# e2e (issue 4): keepalive. A peer frozen with SIGSTOP (its socket stays open, it just says nothing)
# is declared dead within PING_TIMEOUT (+ one tick) on both sides:
#   - client frozen: the server drops the tunnel ("tunnel lost ... timeout"), requests get 502 at
#     once; after SIGCONT the client notices, reconnects and serves again;
#   - server frozen: the client drops the tunnel and starts redialling; after SIGCONT it is back.
source "$(dirname "$0")/lib.sh"
require_binaries

# ms_since T0_NS
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
# wait_log FILE REGEX TIMEOUT_S: until FILE has a line matching REGEX (grep -E)
wait_log() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

start_echo app || exit 1
start_server PING_INTERVAL=1s PING_TIMEOUT=3s || exit 1
start_client app "$ECHO_PORT" PING_INTERVAL=1s PING_TIMEOUT=3s RECONNECT_DELAY=500ms
CPID=$CLIENT_PID
wait_ready app / || exit 1

echo "== idle tunnel survives several PING_TIMEOUTs (PINGs keep it alive)"
sleep 7
check_eq "idle tunnel still serves after 7 s" 200 "$(tcurl app / -o /dev/null -w '%{http_code}')"
check_not_contains "no tunnel lost while idle" "tunnel lost" "$(cat "$T/server.log")"

echo "== client frozen (SIGSTOP): the server notices"
kill -STOP "$CPID"
t0=$(date +%s%N)
if wait_log "$T/server.log" "tunnel lost: name=app" 10; then
    ms=$(ms_since "$t0")
    echo "MEASURED: server declared the frozen client dead after $ms ms (PING_TIMEOUT=3s)"
    if [ "$ms" -le 4500 ]; then pass "server detected the frozen client in $ms ms"; else fail "server detection bounded" "$ms ms"; fi
else
    fail "server detected the frozen client" "$(tail -3 "$T/server.log")"
fi
check_match "server says why" "tunnel lost: name=app .*reason=.*(timeout|TIMEOUT|silent)" "$(grep 'tunnel lost' "$T/server.log" | tail -1)"
t1=$(date +%s%N)
code=$(CURL_MAX_TIME=10 tcurl app / -o /dev/null -w '%{http_code}')
check_eq "request while the client is frozen -> 502" 502 "$code"
ms=$(ms_since "$t1")
if [ "$ms" -lt 1000 ]; then pass "502 in $ms ms"; else fail "502 quickly" "$ms ms"; fi
kill -CONT "$CPID"
wait_ready app / 15 && pass "client resumed (SIGCONT), reconnected and serves"
check_eq "client did not exit" 0 "$(kill -0 "$CPID" 2>/dev/null; echo $?)"

echo "== server frozen (SIGSTOP): the client notices"
lines_before=$(grep -c "tunnel lost" "$T/client-app.log")
kill -STOP "$SERVER_PID"
t0=$(date +%s%N)
detected=0
for ((i = 0; i < 200; i++)); do
    [ "$(grep -c "tunnel lost" "$T/client-app.log")" -gt "$lines_before" ] && { detected=1; break; }
    sleep 0.05
done
ms=$(ms_since "$t0")
if [ $detected = 1 ]; then
    echo "MEASURED: client declared the frozen server dead after $ms ms (PING_TIMEOUT=3s)"
    if [ "$ms" -le 4500 ]; then pass "client detected the frozen server in $ms ms"; else fail "client detection bounded" "$ms ms"; fi
else
    fail "client detected the frozen server" "$(tail -3 "$T/client-app.log")"
fi
check_match "client says why" "tunnel lost: .*(timeout|TIMEOUT|silent)" "$(grep 'tunnel lost' "$T/client-app.log" | tail -1)"
wait_log "$T/client-app.log" "reconnecting to" 5 && pass "client redials" || fail "client redials"
kill -CONT "$SERVER_PID"
t0=$(date +%s%N)
if wait_ready app / 30; then
    pass "server resumed, client back after $(ms_since "$t0") ms"
fi
kill -0 "$CPID" 2>/dev/null && pass "client still running" || fail "client still running"
exit 0
