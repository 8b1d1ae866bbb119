#!/usr/bin/env bash
# e2e: backpressure end to end (issue 3 §4, PROTOCOL.md §6.2) — stream credit is returned only when
# bytes left a process's hands, so a slow reader stops the whole chain, and only its own stream:
#  1. a 1 GiB download read by the public user at 1 MiB/s: the local service is throttled to the
#     reader's pace (its writes grow like the reader's, not like loopback speed) and the RSS of the
#     server and the client grows by at most 64 MiB;
#  2. an HTTP/1.1 upload forwarded to a local service that reads at ~8 MiB/s: the body streams
#     under credit (src/server/upload.h), so the uploader is throttled to the local service's pace
#     and the RSS of the server and the client grows by at most 64 MiB;
#  3. twenty slow public readers on one tunnel: a download beside them still runs at full speed.
source "$(dirname "$0")/lib.sh"
require_binaries

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
MIB=1048576

# ------------------------------------------------------------------ 1. slow public reader
# A local service that writes a 1 GiB response as fast as the socket takes it and logs how much
# the kernel accepted (python's send() bypasses /proc/PID/io, so it counts itself).
FAST_PF="$T/fast.port"
spawn FAST_PID "$T/fast-local.log" python3 -c '
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0)); ls.listen(8)
open(sys.argv[1], "w").write(str(ls.getsockname()[1]))
chunk = bytes(range(256)) * 256
while True:
    c, _ = ls.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d: break
        head += d
    total = 1 << 30 if b" /big " in head.split(b"\r\n", 1)[0] + b" " else 2
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
    sent = 0
    try:
        while sent < total:
            n = c.send(chunk[: min(len(chunk), total - sent)] if total > 2 else b"ok")
            sent += n
            if sent % 1048576 < n: print("sent", sent, flush=True)
    except OSError:
        pass
    print("sent", sent, flush=True)
    c.close()
' "$FAST_PF"
for ((i = 0; i < 50; i++)); do [ -s "$FAST_PF" ] && break; sleep 0.1; done
start_server || exit 1
start_client dl "$(cat "$FAST_PF")" LOCAL_SCHEMA=http
DL_CLIENT=$CLIENT_PID
wait_ready dl / || exit 1

# bg_curl NAME PATH ARGS...: curl in the background with $! = curl itself (tcurl is a function)
bg_curl() { exec curl -sS --max-time 60 --resolve "$1.$DOMAIN:$SERVER_PORT:127.0.0.1" "${@:3}" "$(url "$1" "$2")"; }
sent_mib() { echo $(($(grep -a '^sent ' "$T/fast-local.log" | tail -1 | awk '{print $2}') / MIB)); }

srv0=$(rss_kib "$SERVER_PID")
cli0=$(rss_kib "$DL_CLIENT")
(bg_curl dl /big --limit-rate 1M -o "$T/slow-reader.out") 2>/dev/null &
CURL_PID=$!
PIDS+=("$CURL_PID")
sleep 8
w8=$(sent_mib)
sleep 6
w14=$(sent_mib)
srv1=$(rss_kib "$SERVER_PID")
cli1=$(rss_kib "$DL_CLIENT")
got=$(($(stat -c %s "$T/slow-reader.out" 2>/dev/null || echo 0) / MIB))
kill "$CURL_PID" 2>/dev/null
wait "$CURL_PID" 2>/dev/null
rm -f "$T/slow-reader.out"

late=$((w14 - w8))
log "reader got ${got} MiB in 14 s; local service sent ${w14} MiB (${late} MiB in the last 6 s); server RSS ${srv0}->${srv1} KiB, client ${cli0}->${cli1} KiB"
check "the slow reader received data (${got} MiB)" test "$got" -ge 8
# without backpressure the service sends at loopback speed (GiB in seconds); with it, the reader's
# 14 MiB plus what the windows and socket buffers hold
check "local service throttled to the reader (sent ${w14} MiB in 14 s, < 96)" test "$w14" -lt 96
check "steady state follows the reader (${late} MiB in 6 s at 1 MiB/s, < 24)" test "$late" -lt 24
check "server RSS growth $(((srv1 - srv0) / 1024)) MiB <= 64" test $((srv1 - srv0)) -le $((64 * 1024))
check "client RSS growth $(((cli1 - cli0) / 1024)) MiB <= 64" test $((cli1 - cli0)) -le $((64 * 1024))

# the tunnel still serves after the aborted download
check_eq "tunnel serves after the slow reader left" 200 "$(tcurl dl / -o /dev/null -w '%{http_code}')"

# ------------------------------------------------------------------ 2. slow local service (upload)
SLOW_PF="$T/slow.port"
spawn SLOW_PID "$T/slow-local.log" python3 -c '
import socket, sys, time
rate = 8 * 1048576
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0)); ls.listen(8)
open(sys.argv[1], "w").write(str(ls.getsockname()[1]))
while True:
    c, _ = ls.accept()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d: break
        head += d
    got = len(head.split(b"\r\n\r\n", 1)[1]) if b"\r\n\r\n" in head else 0
    t0 = time.time()
    while True:
        d = c.recv(65536)
        if not d: break
        got += len(d)
        print("got", got, flush=True)
        ahead = got / rate - (time.time() - t0)
        if ahead > 0: time.sleep(ahead)
    c.close()
' "$SLOW_PF"
for ((i = 0; i < 50; i++)); do [ -s "$SLOW_PF" ] && break; sleep 0.1; done
SLOW_PORT=$(cat "$SLOW_PF" 2>/dev/null)
start_client up "$SLOW_PORT" LOCAL_SCHEMA=http
UP_CLIENT=$CLIENT_PID
for ((i = 0; i < 50; i++)); do grep -q "registered as up" "$T/client-up.log" 2>/dev/null && break; sleep 0.1; done

gen_file "$T/up.bin" 256M tunnelmux-e2e-backpressure
cli0=$(rss_kib "$UP_CLIENT")
srv0=$(rss_kib "$SERVER_PID")
(bg_curl up /upload -T "$T/up.bin" -o /dev/null) 2>/dev/null &
CURL_PID=$!
PIDS+=("$CURL_PID")
peak=$cli0
speak=$srv0
t_start=$(date +%s%N)
for ((i = 0; i < 24; i++)); do # 12 s on an idle machine, longer on a busy one
    sleep 0.5
    r=$(rss_kib "$UP_CLIENT")
    [ "$r" -gt "$peak" ] && peak=$r
    r=$(rss_kib "$SERVER_PID")
    [ "$r" -gt "$speak" ] && speak=$r
done
got=$(tail -1 "$T/slow-local.log" | awk '{print $2}')
elapsed_ms=$((($(date +%s%N) - t_start) / 1000000))
# the uploader is paced: 256 MiB at 8 MiB/s takes 32 s, so curl is still sending (without
# backpressure the server and client would have swallowed the file in a second or two)
uploader_paced=0
kill -0 "$CURL_PID" 2>/dev/null && uploader_paced=1
kill "$CURL_PID" 2>/dev/null
wait "$CURL_PID" 2>/dev/null
rm -f "$T/up.bin"
got_mib=$((${got:-0} / MIB))
log "slow local service received ${got_mib} MiB; client RSS ${cli0} KiB, peak ${peak} KiB; server RSS ${srv0} KiB, peak ${speak} KiB"
check "the upload reached the slow local service (${got_mib} MiB)" test "$got_mib" -gt 8
# the local service read at most 8 MiB/s over the time actually measured (plus a second of slack):
# compared with the wall clock of this loop, not with 12 s, so a busy machine (ctest -j2) cannot fail it
pace_cap_mib=$((8 * elapsed_ms / 1000 + 8))
check "the local service set the pace (${got_mib} MiB in ${elapsed_ms} ms at 8 MiB/s, <= ${pace_cap_mib})" test "$got_mib" -le "$pace_cap_mib"
check "the uploader was still sending after ${elapsed_ms} ms (paced by the local service)" test "$uploader_paced" = 1
check "client RSS growth $(((peak - cli0) / 1024)) MiB <= 64 while the local service reads slowly" test $((peak - cli0)) -le $((64 * 1024))
check "server RSS growth $(((speak - srv0) / 1024)) MiB <= 64 while the local service reads slowly" test $((speak - srv0)) -le $((64 * 1024))

# ------------------------------------------------------------------ 3. slow readers never stall the others
# PROTOCOL.md §6.4: twenty public readers at 100 KB/s each hold a stream window's worth of the
# tunnel (1 MiB, more than the 16 MiB connection window between them, since connection credit
# comes back on receipt, §6.2); a 64 MiB download started meanwhile on the same tunnel still runs
# at loopback speed and arrives whole. (When connection credit came back only as readers read,
# the slow ones took all of it and the fast download crawled at their pace.)
mkdir -p "$T/www"
gen_file "$T/www/slow.bin" 64M slow
gen_file "$T/www/fast.bin" 64M fast
echo ok >"$T/www/ok.txt"
start_nginx "$T/www" || exit 1
start_client many "$NGINX_PORT" LOCAL_SCHEMA=http
wait_ready many /ok.txt || exit 1
SLOW=()
for ((i = 0; i < 20; i++)); do
    (bg_curl many /slow.bin --limit-rate 100k -o /dev/null) 2>/dev/null &
    SLOW+=($!)
    PIDS+=($!)
done
sleep 4
t0=$(date +%s%N)
got=$(CURL_MAX_TIME=60 tcurl many /fast.bin | sha256sum | cut -d' ' -f1)
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
for p in "${SLOW[@]}"; do kill "$p" 2>/dev/null; done
wait "${SLOW[@]}" 2>/dev/null
log "64 MiB beside 20 slow readers: ${ms} ms"
check_eq "the fast download arrived whole beside 20 slow readers" "$(sha256sum <"$T/www/fast.bin" | cut -d' ' -f1)" "$got"
check "the fast download took ${ms} ms beside 20 slow readers (< 15000)" test "$ms" -lt 15000
