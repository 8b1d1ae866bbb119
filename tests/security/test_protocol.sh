#!/usr/bin/env bash
# security: the wire behaviours of docs/PROTOCOL.md that a third-party implementation relies on
# (docs/CONFORMANCE.md points here), observed from a hand-written peer (sec_tool.py):
# lingering close (§8: a peer still sending after its fatal message reads GOAWAY and the close
# code, never a reset), version refusal (§3.1, §4.2), zstd window limit (§3.2).
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
exit 0
