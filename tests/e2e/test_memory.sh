#!/usr/bin/env bash
# e2e: memory per tunnel and what /metrics says about it (issue 21) — zstd contexts exist while
# compressed traffic flows and are released on both daemons after the idle period, keepalive does not
# bring them back; a response still buffered for a slow reader counts as an active stream and its
# bytes as held; requests over MAX_STREAMS_PER_CLIENT are counted and logged once, not once each; a
# tunnel connection that never sends HELLO is logged when the deadline closes it.
source "$(dirname "$0")/lib.sh"
require_binaries

ADMIN_PORT=$(free_port)
CMETRICS_PORT=$(free_port)
start_echo alpha || exit 1
# STREAM_WINDOW 8M: the server takes a whole 6 MiB response while its reader reads nothing, and
# holds what the kernel socket buffer (at most 4 MiB) does not
start_server ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" STREAM_WINDOW=8M MAX_STREAMS_PER_CLIENT=2 || exit 1
start_client alpha "$ECHO_PORT" METRICS_ADDR="127.0.0.1:$CMETRICS_PORT"
wait_ready alpha / || exit 1

scrape() { curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics"; }
cscrape() { curl -sS --max-time 5 "http://127.0.0.1:$CMETRICS_PORT/metrics"; }
mget() { awk -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? 0 : v) }'; }
A='{client="alpha"}'

echo "== a tunnel connection that never sends HELLO is closed at the deadline, and logged"
python3 - "$SERVER_PORT" >"$T/nohello.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /_tunnel HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
s.settimeout(20)
data = b""
end = time.time() + 20
while time.time() < end:
    d = s.recv(4096)
    if not d:
        print("closed"); break
    data += d
PY
NOHELLO_PID=$!

echo "== zstd contexts: created by compressed traffic, released on both daemons when idle"
BIG=$(head -c 1200 /dev/zero | tr '\0' x)
code=$(tcurl alpha /bytes/20000 -o /dev/null -w '%{http_code}' -H "x-padding: $BIG")
check_eq "request with a 1.2 KiB header answered" 200 "$code"
check "server holds zstd contexts after compressed traffic" test "$(scrape | mget tunnelmux_zstd_contexts)" -ge 1
check "client daemon holds zstd contexts after compressed traffic" test "$(cscrape | mget tunnelmux_daemon_zstd_contexts)" -ge 1
# released after 15 s (+ up to 50 % jitter) without compressed messages; keepalive (every 15 s) is plain
released=0
for ((i = 0; i < 50; i++)); do
    s=$(scrape | mget tunnelmux_zstd_contexts)
    c=$(cscrape | mget tunnelmux_daemon_zstd_contexts)
    if [ "$s" = 0 ] && [ "$c" = 0 ]; then released=1; break; fi
    sleep 1
done
check_eq "server and client released their zstd contexts (server $s, client $c)" 1 "$released"
sleep 16 # one more keepalive round each way
check_eq "keepalive does not re-create server contexts" 0 "$(scrape | mget tunnelmux_zstd_contexts)"
check_eq "keepalive does not re-create client contexts" 0 "$(cscrape | mget tunnelmux_daemon_zstd_contexts)"
check_eq "per-client gauge" 0 "$(scrape | mget "tunnelmux_client_zstd_contexts$A")"
code=$(tcurl alpha /bytes/20000 -o "$T/after.bin" -w '%{http_code}' -H "x-padding: $BIG")
check_eq "compressed traffic after the release (new frame) works" 200 "$code"
check_eq "whole body after the release" 20000 "$(stat -c %s "$T/after.bin")"

wait "$NOHELLO_PID" 2>/dev/null
check_contains "connection without HELLO closed" "closed" "$(cat "$T/nohello.out")"
check_contains "HELLO deadline logged" "tunnel connection closed at the HELLO deadline" "$(cat "$T/server.log")"

echo "== a response buffered for a slow reader: an active stream, its bytes held"
# READERS N SIZE: N public readers of /bytes/SIZE that read nothing until their stdin closes
cat >"$T/readers.py" <<'PY'
import socket, sys
port, host, n, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
socks = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (size, host)).encode())
    socks.append(s)
print("sent", flush=True)
sys.stdin.read()
for s in socks:
    s.close()
PY
mkfifo "$T/hold"
python3 "$T/readers.py" "$SERVER_PORT" "alpha.$DOMAIN" 1 6291456 <"$T/hold" >"$T/reader.out" 2>&1 &
READER_PID=$!
exec 7>"$T/hold"
held=0
for ((i = 0; i < 50; i++)); do
    scrape >"$T/m"
    held=$(mget tunnelmux_response_bytes_held <"$T/m")
    [ "$held" -gt 0 ] && [ "$(mget "tunnelmux_client_response_bytes_held$A" <"$T/m")" -gt 0 ] && break
    sleep 0.2
done
check "response bytes held for the reader ($held)" test "$held" -gt 0
check_eq "held per client = total" "$held" "$(mget "tunnelmux_client_response_bytes_held$A" <"$T/m")"
check_eq "the buffered response counts as an active stream" 1 "$(mget "tunnelmux_client_active_streams$A" <"$T/m")"
active_json=$(curl -sS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/api/clients" |
    python3 -c 'import json,sys; print([c for c in json.load(sys.stdin)["clients"] if c["name"]=="alpha"][0]["streams_active"])')
check_eq "admin API agrees" 1 "$active_json"
exec 7>&-
wait "$READER_PID" 2>/dev/null
for ((i = 0; i < 50; i++)); do
    scrape >"$T/m"
    [ "$(mget tunnelmux_response_bytes_held <"$T/m")" = 0 ] && break
    sleep 0.2
done
check_eq "reader gone: nothing held" 0 "$(mget tunnelmux_response_bytes_held <"$T/m")"
check_eq "reader gone: no active stream" 0 "$(mget "tunnelmux_client_active_streams$A" <"$T/m")"

echo "== requests over MAX_STREAMS_PER_CLIENT: counted each, logged once"
mkfifo "$T/hold2"
python3 "$T/readers.py" "$SERVER_PORT" "alpha.$DOMAIN" 2 67108864 <"$T/hold2" >"$T/readers2.out" 2>&1 &
READERS_PID=$!
exec 8>"$T/hold2"
for ((i = 0; i < 50; i++)); do
    [ "$(scrape | mget "tunnelmux_client_active_streams$A")" = 2 ] && break
    sleep 0.2
done
before=$(scrape | mget tunnelmux_streams_refused_total)
codes=""
for i in 1 2 3 4 5; do codes+="$(tcurl alpha /x -o /dev/null -w '%{http_code}') "; done
check_eq "five requests over the limit refused" "503 503 503 503 503 " "$codes"
scrape >"$T/m"
check_eq "tunnelmux_streams_refused_total +5" 5 $(($(mget tunnelmux_streams_refused_total <"$T/m") - before))
check_eq "per-client refusals" 5 "$(mget "tunnelmux_client_streams_refused_total$A" <"$T/m")"
check_eq "one WARN line for five refusals" 1 "$(grep -c 'refused (503): MAX_STREAMS_PER_CLIENT' "$T/server.log")"
exec 8>&-
wait "$READERS_PID" 2>/dev/null
