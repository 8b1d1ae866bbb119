#!/usr/bin/env bash
# e2e: a public user that stops reading a response is cut after WRITE_TIMEOUT (one to two periods
# of it, judged by the bytes its connection acknowledges): its connection is reset, the mux stream
# cancelled, and the NAME's stream slot freed, whether h2o still had a send in flight or already
# the final one. A reader that keeps reading, however slowly, is never cut.
source "$(dirname "$0")/lib.sh"
require_binaries

mkdir -p "$T/www"
gen_file "$T/www/big.bin" 64M big
gen_file "$T/www/mid.bin" 12M mid
echo ok >"$T/www/ok.txt"
start_nginx "$T/www" || exit 1
# one stream slot: a stalled reader holds it until the watchdog frees it; a 16 MiB window lets
# a whole 12 MiB response reach the server past the socket buffers (its last send is the final one)
start_server WRITE_TIMEOUT=3s MAX_STREAMS_PER_CLIENT=1 STREAM_WINDOW=16m || exit 1
start_client app "$NGINX_PORT"
wait_ready app /ok.txt || exit 1

echo "== stalled readers are cut"
# wait_file FILE: until FILE exists (at most 20 s)
wait_file() {
    local i
    for ((i = 0; i < 200; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done
    return 1
}
STALL_READY="$T/mid.ready" python3 "$E2E_DIR/stall_reader.py" stall "$SERVER_PORT" "app.$DOMAIN" /mid.bin 20000 14 \
    >"$T/stall-mid.out" 2>&1 &
PM=$!
PIDS+=($PM)
wait_file "$T/mid.ready" || fail "the mid-size reader got its first bytes"
# the whole 12 MiB response reaches the server past the stalled reader's socket buffers, and its
# stream slot is free again (a small request through the one slot proves it; it frees it at once)
for ((i = 0; i < 100; i++)); do
    [ "$(CURL_MAX_TIME=2 tcurl app /ok.txt -o /dev/null -w '%{http_code}' 2>/dev/null)" = 200 ] && break
    sleep 0.1
done
STALL_READY="$T/big.ready" python3 "$E2E_DIR/stall_reader.py" stall "$SERVER_PORT" "app.$DOMAIN" /big.bin 200000 14 \
    >"$T/stall-big.out" 2>&1 &
PB=$!
PIDS+=($PB)
wait_file "$T/big.ready" || fail "the big download's reader got its first bytes"
t0=$(date +%s%N) # its reader stalls from now on; 64 MiB cannot fit past it: the stream holds the slot
code=$(tcurl app /ok.txt -D "$T/busy.head" -o /dev/null -w '%{http_code}' 2>/dev/null)
check_eq "the slot is held while the download's reader stalls -> 503" 503 "$code"
check_match "the 503 of a full tunnel carries Retry-After" '^retry-after: [0-9]+' "$(tr -d '\r' <"$T/busy.head" | grep -i '^retry-after:' | tr 'A-Z' 'a-z')"
ok=""
for ((i = 0; i < 100; i++)); do # the watchdog cuts it within 3..6 s
    code=$(CURL_MAX_TIME=2 tcurl app /ok.txt -o /dev/null -w '%{http_code}' 2>/dev/null)
    [ "$code" = 200 ] && { ok=1; break; }
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
log "slot free again after ${ms} ms"
check "the stream slot is free again once the stalled reader is cut" test -n "$ok"
check "... within 2 x WRITE_TIMEOUT and a margin (${ms} ms < 10000)" test "$ms" -lt 10000
wait "$PB" "$PM"
check_eq "the stalled download's connection was reset (never a clean short end)" reset "$(cat "$T/stall-big.out")"
check_eq "a stall after the final send is cut too" reset "$(cat "$T/stall-mid.out")"
check_eq "two stalls logged" 2 "$(grep -c 'took no bytes of a response for WRITE_TIMEOUT' "$T/server.log")"
ADMIN_PORT=$(admin_port)
check_eq "two stalls counted" "tunnelmux_public_write_stalls_total 2" \
    "$(curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" | grep '^tunnelmux_public_write_stalls_total')"

echo "== a slow reader is not cut"
# 100 KB/s for 10 s (3.3 WRITE_TIMEOUTs) with a 64 KiB receive buffer: its window reopens about
# every second (a receiver advertises room again only once a good part of its buffer is free: with
# 256 KiB the acknowledgements came ~3 s apart at this rate, see OPERATIONS.md "Timeouts")
out=$(python3 "$E2E_DIR/stall_reader.py" slow "$SERVER_PORT" "app.$DOMAIN" /big.bin 100000 10 "$T/slow.part")
check_match "the slow reader was still receiving after 10 s" '^alive [0-9]+$' "$out"
size=$(stat -c %s "$T/slow.part")
check "it kept receiving (${size} bytes > 700000)" test "$size" -gt 700000
check_eq "no stall logged for it" 2 "$(grep -c 'took no bytes of a response for WRITE_TIMEOUT' "$T/server.log")"
cmp -n "$size" "$T/slow.part" "$T/www/big.bin" >/dev/null
check "what it received is the file's start" test $? = 0
code=$(tcurl app /mid.bin -o "$T/mid.got" -w '%{http_code}' 2>/dev/null)
check_eq "the tunnel serves whole responses afterwards" 200 "$code"
check "... byte for byte" cmp -s "$T/mid.got" "$T/www/mid.bin"
