#!/usr/bin/env bash
# security: the wire behaviours of docs/PROTOCOL.md that a third-party implementation relies on
# (docs/CONFORMANCE.md points here), observed from a hand-written peer (sec_tool.py):
# lingering close (§8: a peer still sending after its fatal message reads GOAWAY and the close
# code, never a reset), version refusal (§3.1, §4.2), zstd window limit (§3.2), and the HTTP
# mapping seen by a scripted client daemon (§9: upgrade refused, 1xx, invalid response headers,
# CLOSE reasons, forwarded headers), and failed-login throttling (§4.2).
source "$(dirname "$0")/../e2e/lib.sh"
require_binaries
TOOL="/usr/bin/python3 $(dirname "$0")/sec_tool.py"

start_echo app || exit 1
start_server MAX_MESSAGE_SIZE=1M || exit 1
start_client app "$ECHO_PORT"
wait_ready app || exit 1

# evil MODE NAME EXPECT-GOAWAY EXPECT-CLOSE LOG-NEEDLE
evil() {
    local out
    out=$($TOOL evil "$SERVER_PORT" "$2" "$E2E_TOKEN" "$1" "$T/wlog.zst")
    echo "   $1: $out"
    check_contains "$1: registered first" "welcome=1" "$out"
    check_contains "$1: GOAWAY code $3" "goaway=$3 " "$out"
    check_contains "$1: WebSocket close $4" "close=$4 " "$out"
    check_contains "$1: closed with FIN, not reset" "reset=0" "$out"
    sleep 0.2
    check_contains "$1: server log names the fault" "$5" "$(grep "name=$2 " "$T/server.log" | grep 'tunnel lost')"
}

echo "== §8 lingering close: the peer keeps sending after its fatal message"
head -c 65536 /dev/zero | zstd -q --no-content-size --zstd=wlog=22 -c >"$T/wlog.zst"
evil bigmsg-keep keep-big 5 1009 "reason=message too large"
evil wlog-keep keep-wlog 8 1002 "zstd window too large"
evil unknown-keep keep-unknown 1 1002 "DATA for unknown stream 99"
check_eq "app still served" 200 "$(tcurl app / -o /dev/null -w '%{http_code}')"

echo "== §3.1/§4.2 version refusal"
out=$($TOOL evil "$SERVER_PORT" v2 "$E2E_TOKEN" hello2)
check_contains "HELLO version 2 -> REFUSE UNSUPPORTED_VERSION (20)" "refuse=20 " "$out"
check_contains "refusal closes with 1000" "close=1000 " "$out"
evil badver evil-badver 20 1002 "envelope version is not 1"

# peer SCENARIO NAME: the scripted client daemon answers a public request of its own (sec_tool.py peer)
peer() { $TOOL peer "$SERVER_PORT" "$2" "$E2E_TOKEN" "$2.$DOMAIN:$SERVER_PORT" "$1"; }

echo "== §9.2 upgrade answered with a non-101 status"
out=$(peer upgrade-refused up-refused)
echo "   $out"
check_contains "the user gets the 403 and its body" '"body": "nope\n"' "$out"
check_contains "server ends its direction with DATA fin" '"server_fin": 1' "$out"
check_contains "no CLOSE (CANCEL) from the server" '"close": "-"' "$out"
check_contains "h2o ends the public connection after it (Connection: close)" '"connection_close": 1' "$out"

echo "== §9.4 1xx heads are not relayed to HTTP/1.1 users (h2o 2.2.5), the final head is"
out=$(peer info info-1xx)
check_contains "103 dropped, 200 relayed" '"statuses": ["200"]' "$out"
check_contains "body after the 1xx" '"body": "ok"' "$out"

echo "== §9.4 a response header value with CR/LF fails the stream (as the client does for requests)"
out=$(peer badheader bad-header)
check_contains "user gets 502" '"status": "502"' "$out"
check_contains "server sends CLOSE PROTOCOL_ERROR" '"close": 1,' "$out"
check_not_contains "nothing injected" "Injected" "$out"

echo "== §9.5 the client's CLOSE reason stays in the server log, never in the public body"
out=$(peer reason close-reason)
check_contains "CONNECT_ERROR -> 502" '"status": "502"' "$out"
check_not_contains "internal address not shown to the user" "10.9.8.7" "$out"
sleep 0.2
check_contains "reason logged by the server" "the client sent CLOSE CONNECT_ERROR: dial 10.9.8.7:8080" "$(cat "$T/server.log")"

echo "== §9.2 request headers: one authorization (Forward-Authorization wins), X-Forwarded-* replaced"
out=$(peer headers fwd-headers)
check_contains "the local service sees one Authorization, the forwarded one" '"authorization": ["Bearer inner"]' "$out"
check_contains "x-forwarded-proto replaced" '"x-forwarded-proto": ["http"]' "$out"
check_contains "x-forwarded-host replaced" "\"x-forwarded-host\": [\"fwd-headers.$DOMAIN:$SERVER_PORT\"]" "$out"
check_contains "x-forwarded-for appended" '"x-forwarded-for": ["198.51.100.1, 127.0.0.1"]' "$out"
check_contains "forwarded appended, host quoted (RFC 7239)" "\"forwarded\": [\"for=198.51.100.1, for=127.0.0.1;proto=http;host=\\\"fwd-headers.$DOMAIN:$SERVER_PORT\\\"\"]" "$out"

echo "== §4.2 failed logins: AUTH_FAILED starts the wait, RATE_LIMITED during it whatever the token"
stop_pid "$SERVER_PID"
start_server AUTH_FAIL_DELAY=3s || exit 1
coproc HOLD { $TOOL evil "$SERVER_PORT" racer "$E2E_TOKEN" hold; }
read -r -t 10 line <&"${HOLD[0]}"
check_eq "a connection upgraded before the wait" "upgraded" "$line"
for i in 1 2 3 4 5; do
    out=$($TOOL evil "$SERVER_PORT" guess "tok-wrong-$i" none)
    [[ "$out" == *"refuse=21 retry_after_ms=0 "* ]] || fail "free failure $i" "$out"
done
out=$($TOOL evil "$SERVER_PORT" guess tok-wrong-6 none)
check_contains "6th failure: AUTH_FAILED, retry_after_ms = the wait it starts" "refuse=21 retry_after_ms=3000 " "$out"
echo go >&"${HOLD[1]}"
read -r -t 10 line <&"${HOLD[0]}"
check_match "correct token during the wait: RATE_LIMITED (25), token not examined" "refuse=25 retry_after_ms=[1-9][0-9]{0,3} " "$line"
out=$($TOOL evil "$SERVER_PORT" racer "$E2E_TOKEN" none)
check_match "new upgrade during the wait: 429 with Retry-After (seconds)" "upgrade=HTTP/1.1_429_Too_Many_Requests retry_after=[1-3]$" "$out"
start_client late "$ECHO_PORT" RECONNECT_DELAY=0.2
for ((i = 0; i < 100; i++)); do grep -q "retrying in" "$T/client-late.log" && break; sleep 0.1; done
# RECONNECT_DELAY alone would give ~200 ms; Retry-After (1-3 s) sets the floor
check_match "the client daemon honours Retry-After" "retrying in [1-9][0-9]{3} ms" "$(grep -m1 'retrying in' "$T/client-late.log")"
wait_ready late / 15 && pass "the client registers once the wait is over"
exit 0
