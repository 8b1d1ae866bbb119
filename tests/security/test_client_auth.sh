#!/usr/bin/env bash
# security: who may register (docs/SECURITY.md §2). Missing, wrong and other-name tokens are refused
# with AUTH_FAILED and never register; a live name is never taken over by another token
# (NAME_TAKEN; the same token joins as a replica, docs/SCALING.md); repeated
# failures from one address are throttled (REFUSE RATE_LIMITED, then 429 + Retry-After before the
# upgrade); tokens never appear in any log; the legitimate tunnels keep working throughout.
source "$(dirname "$0")/../e2e/lib.sh"
require_binaries
TOOL="/usr/bin/python3 $(dirname "$0")/sec_tool.py"

cat >"$T/tokens" <<TOK
# token            names
tok-alpha-5f2c9a   alpha
tok-team-77e1d0    team-*,shared
tok-ops-2b81e4     alpha,ops-*
TOK
start_echo alpha || exit 1
start_server AUTH_TOKEN= AUTH_TOKENS_FILE="$T/tokens" AUTH_FAIL_DELAY=2s || exit 1
start_client alpha "$ECHO_PORT" AUTH_TOKEN=tok-alpha-5f2c9a
ALPHA_PID=$CLIENT_PID
start_client team-one "$ECHO_PORT" AUTH_TOKEN=tok-team-77e1d0
wait_ready alpha || exit 1
wait_ready team-one || exit 1
pass "tokens from AUTH_TOKENS_FILE register their names (alpha, team-one)"

echo "== refused registrations (raw hostile client, one attempt each)"
out=$($TOOL evil "$SERVER_PORT" bravo "" none)
check_contains "missing token -> REFUSE AUTH_FAILED (21)" "refuse=21" "$out"
check_contains "missing token: server closes with 1000" "close=1000" "$out"
out=$($TOOL evil "$SERVER_PORT" bravo tok-wrong none)
check_contains "wrong token -> REFUSE AUTH_FAILED" "refuse=21" "$out"
out=$($TOOL evil "$SERVER_PORT" bravo tok-alpha-5f2c9a none)
check_contains "other-name token -> REFUSE AUTH_FAILED" "refuse=21" "$out"
out=$($TOOL evil "$SERVER_PORT" alpha tok-team-77e1d0 none)
check_contains "team token cannot claim alpha" "refuse=21" "$out"
sleep 0.3
log=$(cat "$T/server.log")
check_contains "log: missing token" "name=bravo peer=127.0.0.1:" "$log"
check_contains "log line for missing token" "reason=AUTH_FAILED (missing token)" "$log"
check_contains "log line for wrong token" "reason=AUTH_FAILED (invalid token)" "$log"
check_contains "log line for other-name token" "reason=AUTH_FAILED (token not allowed this name)" "$log"
code=$(tcurl bravo / -o /dev/null -w '%{http_code}')
check_eq "bravo never registered (404)" 404 "$code"
check_eq "alpha still served by its own client" 200 "$(tcurl alpha / -o /dev/null -w '%{http_code}')"

echo "== name hijack: another valid token for a live name is refused, never a takeover"
out=$($TOOL evil "$SERVER_PORT" alpha tok-ops-2b81e4 none)
check_contains "alpha with another token -> REFUSE NAME_TAKEN (22)" "refuse=22" "$out"
check_contains "log: NAME_TAKEN" "name=alpha peer=127.0.0.1:" "$(grep NAME_TAKEN "$T/server.log")"
check_contains "log: another credential" "with another credential" "$(grep NAME_TAKEN "$T/server.log")"
check_eq "alpha still served after the hijack attempt" 200 "$(tcurl alpha / -o /dev/null -w '%{http_code}')"
kill -0 "$ALPHA_PID" && pass "the original alpha client is still running" || fail "alpha client alive"

echo "== failure throttle (5 free failures per address, then AUTH_FAIL_DELAY doubling)"
# the hijack attempt had a valid token, which cleared 127.0.0.1's count: 5 free failures, then the
# 6th starts a 2 s wait
for i in 1 2 3 4 5; do
    out=$($TOOL evil "$SERVER_PORT" bravo tok-wrong none)
    [[ "$out" == *"refuse=21 retry_after_ms=0 "* ]] || fail "free failure $i" "$out"
done
out=$($TOOL evil "$SERVER_PORT" bravo tok-wrong none)
check_match "6th failure: AUTH_FAILED with retry_after 2000 ms" "refuse=21 retry_after_ms=2000" "$out"
out=$($TOOL evil "$SERVER_PORT" bravo tok-wrong none)
check_match "while throttled: 429 before the upgrade, Retry-After" "upgrade=HTTP/1.1_429_Too_Many_Requests retry_after=2" "$out"
check_contains "log: throttled" "reason=RATE_LIMITED (too many failed logins" "$(cat "$T/server.log")"
check_eq "public traffic unaffected by the throttle" 200 "$(tcurl team-one / -o /dev/null -w '%{http_code}')"
sleep 2.2
out=$($TOOL evil "$SERVER_PORT" shared tok-team-77e1d0 none)
check_contains "after the wait a valid token registers (shared)" "welcome=1" "$out"

echo "== secrets never logged"
all=$(cat "$T"/server.log "$T"/client-*.log)
check_not_contains "no client token in logs" "tok-alpha-5f2c9a" "$all"
check_not_contains "no team token in logs" "tok-team-77e1d0" "$all"
check_not_contains "no wrong token in logs" "tok-wrong" "$all"

echo "== client side: AUTH_TOKEN_FILE, and a refused client reports why"
echo tok-team-77e1d0 >"$T/client-token"
start_client team-two "$ECHO_PORT" AUTH_TOKEN= AUTH_TOKEN_FILE="$T/client-token"
wait_ready team-two && pass "client --auth-token-file registers"
start_client zulu "$ECHO_PORT" AUTH_TOKEN=tok-team-77e1d0 MAX_RETRIES=0
ZPID=$CLIENT_PID
for i in $(seq 1 50); do kill -0 "$ZPID" 2>/dev/null || break; sleep 0.1; done
check_contains "refused client logs AUTH_FAILED" "AUTH_FAILED" "$(cat "$T/client-zulu.log")"

echo "== --insecure-no-auth: explicit, with a warning"
P=$(free_port)
spawn IPID "$T/insecure.log" env -u AUTH_TOKEN PORT="$P" DOMAIN="$DOMAIN" LISTEN_ADDR=127.0.0.1 "$SERVER_BIN" --insecure-no-auth
wait_port "$P" 10
check_contains "insecure mode warns at start" "WARN  server: INSECURE: --insecure-no-auth" "$(cat "$T/insecure.log")"
out=$($TOOL evil "$P" anyone "" none)
check_contains "insecure mode accepts a client without token" "welcome=1" "$out"
stop_pid "$IPID"
exit 0
