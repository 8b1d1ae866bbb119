#!/usr/bin/env bash
# security: resource abuse (docs/SECURITY.md §5-§6). HTTP/2 Rapid Reset flood cut off within 1 s
# with RSS flat; HPACK expansion bounded; hostile client daemons (malformed frames, bad version,
# unknown stream, zstd bomb, oversized message) are dropped with the documented GOAWAY / close code
# while the other tunnels keep serving; 1,000 slow readers leave the server's RSS bounded.
source "$(dirname "$0")/../e2e/lib.sh"
require_binaries
TOOL="/usr/bin/python3 $(dirname "$0")/sec_tool.py"
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }

start_echo app || exit 1
APP_ECHO=$ECHO_PORT
start_echo other || exit 1
start_server MAX_MESSAGE_SIZE=1M || exit 1
start_client app "$APP_ECHO"
start_client other "$ECHO_PORT"
wait_ready app || exit 1
wait_ready other || exit 1

echo "== HTTP/2 Rapid Reset: HEADERS+RST_STREAM x 20000 on one connection (H2_RESET_BUDGET=100/10 s)"
before=$(rss_kb)
out=$($TOOL flood "$SERVER_PORT" "app.$DOMAIN:$SERVER_PORT" 20000)
echo "   $out"
ms=$(sed -E 's/.*closed_after_ms=([0-9a-z]+).*/\1/' <<<"$out")
if [[ "$ms" =~ ^[0-9]+$ ]] && [ "$ms" -lt 1000 ]; then pass "flood cut off after ${ms} ms (< 1 s)"; else fail "flood cut off within 1 s" "$out"; fi
check_contains "log: over H2_RESET_BUDGET" "over H2_RESET_BUDGET (100 cancelled requests per 10000 ms; Rapid Reset)" "$(cat "$T/server.log")"
sleep 0.5
after=$(rss_kb)
echo "   server RSS ${before} kB -> ${after} kB"
if [ $((after - before)) -lt 20480 ]; then pass "RSS flat across the flood (+$(((after - before) / 1024)) MiB)"; else fail "RSS flat" "$before -> $after kB"; fi
check_eq "bystander on the same name served" 200 "$(tcurl app / -o /dev/null -w '%{http_code}')"
check_eq "bystander over h2 served" 200 "$(tcurl app / --http2-prior-knowledge -o /dev/null -w '%{http_code}')"

echo "== HPACK expansion: one 4 KiB dynamic-table entry referenced 4000 times (~16 MB decoded)"
out=$($TOOL hpack "$SERVER_PORT" "app.$DOMAIN:$SERVER_PORT" 4000 4000)
echo "   $out"
check_match "bomb answered 431 (or reset/GOAWAY by h2o), never tunnelled" "status=431|frames=(RST_STREAM|GOAWAY)" "$out"
check_contains "431 logged" "request for app refused: 431 (4001 headers" "$(cat "$T/server.log")"
check_eq "server alive after the HPACK bomb" 200 "$(tcurl app / -o /dev/null -w '%{http_code}')"

echo "== hostile client daemons (valid token, then an attack); others unaffected"
head -c 64M /dev/zero | zstd -q -3 --zstd=wlog=17 -c >"$T/bomb.zst"
evil() { # evil MODE NAME EXPECT-GOAWAY EXPECT-CLOSE LOG-NEEDLE
    local out
    out=$($TOOL evil "$SERVER_PORT" "$2" "$E2E_TOKEN" "$1" "$T/bomb.zst")
    echo "   $1: $out"
    check_contains "$1: registered first" "welcome=1" "$out"
    check_contains "$1: GOAWAY code $3" "goaway=$3 " "$out"
    check_contains "$1: WebSocket close $4" "close=$4 " "$out"
    sleep 0.2
    check_contains "$1: server log names the fault" "$5" "$(grep "name=$2 " "$T/server.log" | grep 'tunnel lost')"
    check_eq "$1: other tunnels unaffected" 200 "$(tcurl other / -o /dev/null -w '%{http_code}')"
}
evil garbage evil-garbage 1 1002 "reason=malformed frame: invalid protobuf"
evil badver evil-badver 20 1002 "reason=unsupported protocol version: envelope version is not 1"
evil unknown evil-unknown 1 1002 "reason=frame for unknown stream: DATA for unknown stream 99"
evil truncated evil-trunc 5 1002 "reason=frame too large: record runs past the end of the message"
evil bomb evil-bomb 8 1009 "reason=decompressed message too large"
evil bigmsg evil-big 5 1009 "reason=message too large"
grep 'tunnel lost: name=evil' "$T/server.log" | sed 's/^/   /'
check_eq "app still served after the hostile clients" 200 "$(tcurl app / -o /dev/null -w '%{http_code}')"

echo "== 1000 slow readers of 1 MB responses"
before=$(rss_kb)
coproc SLOW { $TOOL slow "$SERVER_PORT" "app.$DOMAIN:$SERVER_PORT" 1000 /bytes/1000000; }
read -r -t 60 line <&"${SLOW[0]}"
check_eq "1000 slow readers connected" "opened=1000" "$line"
sleep 3
during=$(rss_kb)
echo "   server RSS ${before} kB -> ${during} kB with 1000 slow readers"
if [ "$during" -lt 262144 ]; then pass "RSS bounded with 1000 slow readers ($((during / 1024)) MiB < 256 MiB)"; else fail "RSS bounded" "$during kB"; fi
check_eq "other name served while app is saturated" 200 "$(tcurl other / -o /dev/null -w '%{http_code}')"
eval "exec ${SLOW[1]}>&-"
wait "$SLOW_PID" 2>/dev/null
sleep 1
check_eq "app recovers once the slow readers left" 200 "$(CURL_MAX_TIME=10 tcurl app / -o /dev/null -w '%{http_code}')"
exit 0
