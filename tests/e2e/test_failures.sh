#!/usr/bin/env bash
# e2e: failure mapping (PROTOCOL.md §9.5): unknown name / foreign host -> 404, name seen earlier but
# disconnected -> 502, local service refused -> 502, client killed before the response -> 502,
# killed mid-response or a local response that breaks off -> the public transfer is incomplete
# (curl exit 18 for h1, 92/56 for h2), never a clean short body; no response head within
# READ_TIMEOUT -> 504; /_tunnel without a WebSocket upgrade -> 426/400.
source "$(dirname "$0")/lib.sh"
require_binaries

start_echo app || exit 1
start_server READ_TIMEOUT=4 || exit 1
start_client app "$ECHO_PORT"
wait_ready app / || exit 1

# status NAME PATH [CURL ARGS]: prints the status code, body in $T/body
status() {
    local n=$1 p=$2
    shift 2
    tcurl "$n" "$p" -o "$T/body" -w '%{http_code}' "$@" 2>>"$T/curl.err"
}

echo "== routing failures"
check_eq "unknown name -> 404" 404 "$(status ghost /)"
check_contains "404 body names the tunnel" "ghost" "$(cat "$T/body")"
code=$(curl -sS --max-time 10 -o "$T/body" -w '%{http_code}' -H "Host: app.other.example" "http://127.0.0.1:$SERVER_PORT/")
check_eq "host not under DOMAIN -> 404" 404 "$code"
code=$(curl -sS --max-time 10 -o "$T/body" -w '%{http_code}' -H "Host: $DOMAIN:$SERVER_PORT" "http://127.0.0.1:$SERVER_PORT/")
check_eq "bare DOMAIN -> 404" 404 "$code"
code=$(curl -sS --max-time 10 -o "$T/body" -w '%{http_code}' -H "Host: a.b.$DOMAIN" "http://127.0.0.1:$SERVER_PORT/")
check_eq "two labels under DOMAIN -> 404" 404 "$code"
code=$(curl -sS --max-time 10 -o "$T/body" -w '%{http_code}' -H "Host: APP.${DOMAIN^^}.:$SERVER_PORT" "http://127.0.0.1:$SERVER_PORT/m")
check_eq "host is case-insensitive, trailing dot removed" 200 "$code"
check_eq "h2c unknown name -> 404" 404 "$(status ghost / --http2-prior-knowledge)"

echo "== /_tunnel endpoint"
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SERVER_PORT/_tunnel")
check_eq "/_tunnel without Upgrade -> 426" 426 "$code"
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "Connection: Upgrade" -H "Upgrade: websocket" \
    "http://127.0.0.1:$SERVER_PORT/_tunnel")
check_eq "/_tunnel upgrade without key/version -> 400" 400 "$code"

echo "== local service refused"
DEAD_PORT=$(free_port)
start_client refused "$DEAD_PORT"
for ((i = 0; i < 50; i++)); do
    code=$(status refused /)
    [ "$code" = 502 ] && break
    sleep 0.2
done
check_eq "local refused -> 502" 502 "$code"
check_contains "502 body says refused/connect" "tunnelmux" "$(cat "$T/body")"
check_eq "h2c: local refused -> 502" 502 "$(status refused / --http2-prior-knowledge)"

echo "== read timeout"
t0=$SECONDS
check_eq "no response head within READ_TIMEOUT -> 504" 504 "$(CURL_MAX_TIME=20 status app '/slow?ms=9000')"
dt=$((SECONDS - t0))
if [ $dt -le 9 ]; then pass "504 after ~READ_TIMEOUT (${dt} s)"; else fail "504 timing" "${dt} s"; fi

echo "== broken local responses"
for v in "" "?chunked=1"; do
    tcurl app "/abort$v" -o /dev/null 2>/dev/null
    code=$?
    check_match "h1: local breaks off ($v) -> curl exit 18/56 (got $code)" "^(18|56)$" "$code"
    tcurl app "/abort$v" --http2-prior-knowledge -o /dev/null 2>/dev/null
    code=$?
    check_match "h2: local breaks off ($v) -> curl exit 92/56/18 (got $code)" "^(92|56|18)$" "$code"
done
check_eq "tunnel still serves after aborts" 200 "$(status app /m)"

echo "== client killed mid-response"
for proto in h1 h2; do
    pa=()
    [ $proto = h2 ] && pa=(--http2-prior-knowledge)
    start_client "mid$proto" "$ECHO_PORT"
    wait_ready "mid$proto" / || continue
    victim=$CLIENT_PID
    tcurl "mid$proto" /bytes/500000000 "${pa[@]}" --limit-rate 2M -o "$T/partial.$proto" 2>/dev/null &
    cpid=$!
    sleep 1.5
    kill -KILL "$victim"
    wait "$cpid"
    code=$?
    check_match "$proto: client killed mid-response -> incomplete (curl exit $code)" "^(18|56|92)$" "$code"
    got=$(stat -c %s "$T/partial.$proto" 2>/dev/null || echo 0)
    if [ "$got" -lt 500000000 ]; then pass "$proto: partial body ($got bytes) not reported complete"; else fail "$proto partial" "$got"; fi
done

echo "== client killed before the response"
start_client before "$ECHO_PORT"
wait_ready before / || true
victim=$CLIENT_PID
tcurl before '/slow?ms=3000' -o "$T/body.before" -w '%{http_code}' >"$T/code.before" 2>/dev/null &
cpid=$!
sleep 1
kill -KILL "$victim"
wait "$cpid"
check_eq "client killed before response head -> 502" 502 "$(cat "$T/code.before")"
check_eq "name seen earlier, now disconnected -> 502" 502 "$(status before /)"

echo "== server still healthy"
check_eq "other tunnel unaffected" 200 "$(status app /m)"
kill -0 "$SERVER_PID" 2>/dev/null && pass "server alive" || fail "server alive"
exit 0
