#!/usr/bin/env bash
# security: the public side (docs/SECURITY.md §3-§5). Basic auth before any stream opens (and the
# Forward-Authorization escape), per-client rate limits counted per request/stream with 429 +
# Retry-After and accurate within 10% at 10x overload, header count/bytes limits (431), request
# smuggling and CRLF injection through HTTP/1.1, HTTP/2 and forward-X headers. Every case also checks
# that the local service saw exactly what it should and that the other names were not affected.
source "$(dirname "$0")/../e2e/lib.sh"
require_binaries
TOOL="/usr/bin/python3 $(dirname "$0")/sec_tool.py"

printf 'shop shop-user:s3cret-pw\n' >"$T/basic"
start_echo shop || exit 1
SHOP_ECHO=$ECHO_PORT
start_echo open || exit 1
OPEN_ECHO=$ECHO_PORT
start_echo rl || exit 1
RL_ECHO=$ECHO_PORT
start_server BASIC_AUTH_FILE="$T/basic" RATE_LIMIT_RPS=50 RATE_LIMIT_BURST=50 MAX_HEADER_COUNT=40 MAX_HEADER_BYTES=16k || exit 1
start_client shop "$SHOP_ECHO"
start_client open "$OPEN_ECHO"
start_client rl "$RL_ECHO"
wait_ready open || exit 1
wait_ready rl || exit 1
streams_before=$(grep -c '"GET\|"POST' "$T/echo-shop.log")

echo "== basic auth (BASIC_AUTH_FILE: shop only)"
code=$(tcurl shop / -o "$T/b" -D "$T/h" -w '%{http_code}')
check_eq "no credentials -> 401" 401 "$code"
check_contains "WWW-Authenticate names the host" 'www-authenticate: Basic realm="shop.tm.test"' "$(tr -d '\r' <"$T/h" | tr A-Z a-z | sed 's/basic realm="shop.tm.test"/Basic realm="shop.tm.test"/')"
check_eq "wrong password -> 401" 401 "$(tcurl shop / -u shop-user:wrong -o /dev/null -w '%{http_code}')"
check_eq "malformed Authorization -> 401" 401 "$(tcurl shop / -H 'Authorization: Basic !!!' -o /dev/null -w '%{http_code}')"
check_eq "the local service saw none of the refused requests" "$streams_before" "$(grep -c '"GET\|"POST' "$T/echo-shop.log")"
code=$(tcurl shop /in -u shop-user:s3cret-pw -H 'Forward-Authorization: Bearer local-token' -o "$T/b" -w '%{http_code}')
check_eq "right credentials -> 200" 200 "$code"
auths=$(/usr/bin/python3 -c 'import json,sys; print([v for k,v in json.load(open(sys.argv[1]))["headers"] if k.lower()=="authorization"])' "$T/b")
check_eq "Forward-Authorization reaches the service as Authorization; ours is consumed" "['Bearer local-token']" "$auths"
check_eq "other names need no credentials" 200 "$(tcurl open / -o /dev/null -w '%{http_code}')"
check_not_contains "password never logged" "s3cret-pw" "$(cat "$T"/server.log "$T"/client-*.log)"

echo "== password guessing is throttled per address (AUTH_FAIL_DELAY: 5 free per minute, then 1 s, doubling)"
# two wrong answers above; three more are free, the next one starts a 1 s wait
seen_before=$(grep -c '"GET\|"POST' "$T/echo-shop.log")
for i in 1 2 3 4; do
    check_eq "wrong guess $i of 4 -> 401" 401 "$(tcurl shop / -u "shop-user:guess$i" -o /dev/null -w '%{http_code}')"
done
code=$(tcurl shop / -u shop-user:s3cret-pw -D "$T/h" -o "$T/b" -w '%{http_code}')
check_eq "right credentials during the wait -> 429 (a right guess is not confirmed)" 429 "$code"
check_contains "429 with Retry-After" "retry-after: 1" "$(tr -d '\r' <"$T/h" | tr A-Z a-z)"
check_eq "another address is not affected" 200 \
    "$(tcurl shop / --interface 127.0.0.2 -u shop-user:s3cret-pw -o /dev/null -w '%{http_code}')"
check_eq "names without basic auth are not affected" 200 "$(tcurl open / -o /dev/null -w '%{http_code}')"
sleep 1.2
check_eq "after the wait, right credentials -> 200" 200 "$(tcurl shop / -u shop-user:s3cret-pw -o /dev/null -w '%{http_code}')"
check_eq "the next wrong guess -> 401 ..." 401 "$(tcurl shop / -u shop-user:guess5 -o /dev/null -w '%{http_code}')"
code=$(tcurl shop / -u shop-user:s3cret-pw -D "$T/h" -o /dev/null -w '%{http_code}')
check_eq "... and a 2 s wait (doubling)" 429 "$code"
check_contains "Retry-After 2" "retry-after: 2" "$(tr -d '\r' <"$T/h" | tr A-Z a-z)"
check_contains "the wait is logged with the address" "repeated wrong basic-auth credentials from 127.0.0.1" "$(cat "$T/server.log")"
check_eq "the local service saw only the two admitted requests" 2 "$(($(grep -c '"GET\|"POST' "$T/echo-shop.log") - seen_before))"
sleep 2.2 # leave 127.0.0.1 free to try again for the cases below

echo "== header limits (MAX_HEADER_COUNT=40, MAX_HEADER_BYTES=16k)"
hs=()
for i in $(seq 1 45); do hs+=(-H "x-h$i: v"); done
check_eq "45 headers -> 431" 431 "$(tcurl open / "${hs[@]}" -o /dev/null -w '%{http_code}')"
big=$(head -c 17000 /dev/zero | tr '\0' a)
check_eq "17 kB header -> 431" 431 "$(tcurl open / -H "x-big: $big" -o /dev/null -w '%{http_code}')"
check_eq "h2: 17 kB header -> 431" 431 "$(tcurl open / --http2-prior-knowledge -H "x-big: $big" -o /dev/null -w '%{http_code}')"
check_contains "431 logged with the limits" "refused: 431" "$(cat "$T/server.log")"
check_eq "a normal request right after is fine" 200 "$(tcurl open / -o /dev/null -w '%{http_code}')"

echo "== smuggling through HTTP/1.1 (raw requests; the local service must never see /smuggled)"
rawcase() { # rawcase DESC EXPECTED-STATUSES BYTES...
    local desc=$1 exp=$2
    shift 2
    printf "$@" >"$T/raw"
    local out
    out=$($TOOL raw "$SERVER_PORT" "open.$DOMAIN:$SERVER_PORT" "$T/raw")
    check_eq "$desc" "statuses=$exp" "$out"
}
rawcase "CL+TE together -> 400" 400 'POST /a HTTP/1.1\r\nHost: @HOST@\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: @HOST@\r\n\r\n'
rawcase "duplicate differing Content-Length -> 400" 400 'POST /a HTTP/1.1\r\nHost: @HOST@\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nHost: @HOST@\r\n\r\n'
rawcase "obs-fold -> 400" 400 'GET /a HTTP/1.1\r\nHost: @HOST@\r\nX-A: one\r\n two\r\n\r\n'
rawcase "empty header name -> 400" 400 'GET /a HTTP/1.1\r\nHost: @HOST@\r\n: empty\r\n\r\n'
rawcase "huge chunk size -> 400" 400 'POST /a HTTP/1.1\r\nHost: @HOST@\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nx\r\n0\r\n\r\n'
rawcase "bare LF line ends: one request, one answer" 200 'GET /lf HTTP/1.1\nHost: @HOST@\nConnection: close\n\n'
rawcase "a well-formed chunked body is accepted" 200 'POST /a HTTP/1.1\r\nHost: @HOST@\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
sleep 0.3
check_eq "no smuggled request reached the local service" 0 "$(grep -ac smuggled "$T/echo-open.log")"
check_contains "400 logged with the reason" "400 (ambiguous HTTP/1.1 framing: both Transfer-Encoding and Content-Length); connection closed" "$(cat "$T/server.log")"

echo "== CRLF injection (h1 value folding impossible; h2 and forward-X values with CR/LF/NUL)"
out=$($TOOL h2req "$SERVER_PORT" "open.$DOMAIN:$SERVER_PORT" /crlf '[["x-evil", "a\r\nx-injected: 1"]]')
check_match "h2 header value with CRLF: refused by h2o or dropped" "status=(200|400|reset:1)|goaway=1" "$out"
out=$($TOOL h2req "$SERVER_PORT" "open.$DOMAIN:$SERVER_PORT" /crlf2 '[["forward-x-evil", "a\r\nx-injected: 1"]]')
check_match "h2 forward-X value with CRLF: refused or dropped" "status=(200|400|reset:1)|goaway=1" "$out"
out=$($TOOL h2req "$SERVER_PORT" "open.$DOMAIN:$SERVER_PORT" /crlf3 '[["forward-host", "evil.example"], ["forward-transfer-encoding", "chunked"]]')
check_contains "forward-host / forward-transfer-encoding refused, request served" "status=200" "$out"
sleep 0.3
check_eq "no injected header reached the local service" 0 "$(grep -ac x-injected "$T/echo-open.log")"
code=$(tcurl open /fwd -H 'Forward-X-Ok: fine' -o "$T/b" -w '%{http_code}')
check_contains "a clean forward-X still works" '"x-ok", "fine"' "$(cat "$T/b")"

echo "== rate limit per client name (RATE_LIMIT_RPS=50, burst 50), 10x overload for 4 s"
out=$($TOOL rate "$SERVER_PORT" "rl.$DOMAIN:$SERVER_PORT" 500 4 8)
echo "   $out"
ok=$(sed -E 's/.*s200=([0-9]+).*/\1/' <<<"$out")
el=$(sed -E 's/.*elapsed_ms=([0-9]+).*/\1/' <<<"$out")
expect=$(((50 * el / 1000) + 50))
lo=$((expect * 90 / 100))
hi=$((expect * 110 / 100))
if [ "$ok" -ge "$lo" ] && [ "$ok" -le "$hi" ]; then pass "accepted $ok within 10% of $expect (50/s x ${el} ms + burst)"; else fail "rate accuracy" "accepted $ok, expected $lo..$hi"; fi
check_contains "every 429 carries Retry-After" "retry_after_missing=0" "$out"
check_eq "another name is not limited meanwhile" 200 "$(tcurl open / -o /dev/null -w '%{http_code}')"
sleep 1.2 # refill ~50
out=$($TOOL h2burst "$SERVER_PORT" "rl.$DOMAIN:$SERVER_PORT" 90)
echo "   h2 burst: $out"
n200=$(grep -oE '200=[0-9]+' <<<"$out" | cut -d= -f2)
n429=$(grep -oE '429=[0-9]+' <<<"$out" | cut -d= -f2)
if [ "${n200:-0}" -ge 45 ] && [ "${n200:-0}" -le 70 ] && [ $((${n200:-0} + ${n429:-0})) -eq 90 ]; then
    pass "counted per stream on one h2 connection: ${n200} x 200, ${n429} x 429"
else
    fail "per-stream counting" "$out"
fi
exit 0
