#!/usr/bin/env bash
# e2e (issue 4): MAX_CLIENTS means something. With MAX_CLIENTS=3, a 4th client's HELLO gets REFUSE
# (TOO_MANY_CLIENTS, with a reason): the server logs it, the client logs the reason and retries after
# RECONNECT_DELAY without exiting; its name answers 404/502 meanwhile while the other three serve.
# When one of the three leaves, the 4th gets in on its next retry.
source "$(dirname "$0")/lib.sh"
require_binaries

start_echo app || exit 1
start_server MAX_CLIENTS=3 || exit 1
CPIDS=()
for n in c1 c2 c3; do
    start_client "$n" "$ECHO_PORT"
    CPIDS+=("$CLIENT_PID")
    wait_ready "$n" / || exit 1
done
start_client c4 "$ECHO_PORT" RECONNECT_DELAY=1s
C4=$CLIENT_PID

# the 4th is refused, logs the reason and keeps retrying
for ((i = 0; i < 50; i++)); do
    [ "$(grep -c 'refused by server' "$T/client-c4.log")" -ge 2 ] && break
    sleep 0.2
done
refusals=$(grep -c 'refused by server' "$T/client-c4.log")
if [ "$refusals" -ge 2 ]; then pass "4th client refused and retried ($refusals refusals)"; else fail "4th refused twice" "$refusals"; fi
check_contains "client logs the reason" "refused by server: too many clients (TOO_MANY_CLIENTS)" "$(cat "$T/client-c4.log")"
check_contains "server logs the refusal with MAX_CLIENTS" "reason=TOO_MANY_CLIENTS (MAX_CLIENTS=3)" "$(cat "$T/server.log")"
check_contains "client waits RECONNECT_DELAY between attempts" "retrying in 1000 ms" "$(cat "$T/client-c4.log")"
kill -0 "$C4" 2>/dev/null && pass "refused client keeps running" || fail "refused client keeps running"
code=$(tcurl c4 / -o /dev/null -w '%{http_code}')
check_match "refused name is not served (404/502, got $code)" "^(404|502)$" "$code"
for n in c1 c2 c3; do
    check_eq "$n still serves" 200 "$(tcurl "$n" / -o /dev/null -w '%{http_code}')"
done

# a slot frees: the 4th gets in after its delay
stop_pid "${CPIDS[0]}"
t0=$(date +%s%N)
wait_ready c4 / 10 && pass "4th client registered after a slot freed ($((($(date +%s%N) - t0) / 1000000)) ms)"
check_contains "client c4 registered" "registered as c4" "$(cat "$T/client-c4.log")"
exit 0
