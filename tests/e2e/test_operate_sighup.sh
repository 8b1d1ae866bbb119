#!/usr/bin/env bash
# e2e (issue 4): LOG_FILE and SIGHUP. Both binaries append to LOG_FILE; after logrotate-style
# renaming, SIGHUP makes them reopen the path (a new file appears and gets the next lines, the
# renamed one keeps the old lines); the process keeps serving and SIGHUP never stops it.
source "$(dirname "$0")/lib.sh"
require_binaries

# wait_grep FILE NEEDLE TIMEOUT_S
wait_grep() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

start_echo app || exit 1
start_server LOG_FILE="$T/srv-file.log" || exit 1
start_client app "$ECHO_PORT" LOG_FILE="$T/cli-file.log"
CPID=$CLIENT_PID
wait_ready app / || exit 1
check "server writes to LOG_FILE" grep -q "tunnel registered: name=app" "$T/srv-file.log"
check "client writes to LOG_FILE" grep -q "registered as app" "$T/cli-file.log"
check_eq "server stderr stays empty" "" "$(cat "$T/server.log")"

for round in 1 2; do
    mv "$T/srv-file.log" "$T/srv-file.log.$round"
    mv "$T/cli-file.log" "$T/cli-file.log.$round"
    kill -HUP "$SERVER_PID" "$CPID"
    if wait_grep "$T/srv-file.log" "SIGHUP: log file reopened" 5; then pass "server reopened its log (round $round)"; else fail "server reopen $round"; fi
    if wait_grep "$T/cli-file.log" "SIGHUP: log file reopened" 5; then pass "client reopened its log (round $round)"; else fail "client reopen $round"; fi
    check_eq "server still serves after SIGHUP $round" 200 "$(tcurl app / -o /dev/null -w '%{http_code}')"
done
check "renamed server log kept the old lines" grep -q "tunnel registered: name=app" "$T/srv-file.log.1"
check_eq "first renamed log got no line after its rename" 0 "$(grep -c SIGHUP "$T/srv-file.log.1")"
check_eq "second renamed log only the first reopen's line" 1 "$(grep -c SIGHUP "$T/srv-file.log.2")"
# the next lines go to the new file: make the client reconnect (server kicks nothing; restart client)
stop_pid "$CPID"
wait_grep "$T/srv-file.log" "tunnel lost: name=app" 5 && pass "new events land in the reopened server log" || fail "new events in new log"
wait_grep "$T/cli-file.log" "exit 0" 5 && pass "new events land in the reopened client log" || fail "client new events"
kill -0 "$SERVER_PID" 2>/dev/null && pass "server alive after SIGHUPs" || fail "server alive"
exit 0
