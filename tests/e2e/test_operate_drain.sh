#!/usr/bin/env bash
# e2e (issue 4): graceful shutdown. SIGTERM on the server: GOAWAY to the clients, the port closes
# (a balancer sees it go), the download in flight completes intact (sha256), then exit 0. SIGTERM on
# a client: no new streams (new requests get 502 at once), the download in flight completes intact,
# exit 0. With a DRAIN_TIMEOUT shorter than the transfer, both exit 0 at the deadline and the public
# transfer is reported incomplete (curl exit 18), never silently truncated.
source "$(dirname "$0")/lib.sh"
require_binaries

SIZE=$((4 * 1024 * 1024))
RATE=$((1024 * 1024)) # the local service sends 1 MiB/s: a download takes ~4 s whatever the socket buffers hold
mkdir -p "$T/www"
gen_file "$T/www/big.bin" "$SIZE" drain
WANT=$(sha256sum <"$T/www/big.bin" | cut -d' ' -f1)

# a local service that sends FILE at RATE bytes/s (64 KiB pieces), Content-Length set
cat >"$T/slow.py" <<'PY'
import http.server, sys, time
path, rate, port_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        piece = 65536
        for off in range(0, len(data), piece):
            self.wfile.write(data[off:off + piece])
            self.wfile.flush()
            time.sleep(piece / rate)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(port_file, "w").write(str(s.server_address[1]))
s.serve_forever()
PY
spawn SLOW_PID "$T/slow.log" python3 "$T/slow.py" "$T/www/big.bin" "$RATE" "$T/slow.port"
for ((i = 0; i < 50; i++)); do [ -s "$T/slow.port" ] && break; sleep 0.1; done
LPORT=$(cat "$T/slow.port") || exit 1
# the tunnel is up once a tiny request works (the whole file would take 4 s)
ready() { wait_ready "$1" / 15; }

# download NAME OUT: background curl of the file through NAME; sets DL_PID; status in OUT.code/.rc
download() {
    (CURL_MAX_TIME=60 tcurl "$1" /big.bin -o "$2" -w '%{http_code}' >"$2.code" 2>"$2.err"; echo $? >"$2.rc") &
    DL_PID=$!
}
# wait_exit PID TIMEOUT_S: waits for PID (our child); sets RC to its exit status or "timeout"
wait_exit() {
    local i
    RC=timeout
    for ((i = 0; i < $2 * 10; i++)); do
        if ! kill -0 "$1" 2>/dev/null; then
            wait "$1"
            RC=$?
            return
        fi
        sleep 0.1
    done
}
sha() { sha256sum <"$1" | cut -d' ' -f1; }

echo "== server SIGTERM with a download in flight"
start_server DRAIN_TIMEOUT=20s || exit 1
start_client s1 "$LPORT"
ready s1 || exit 1
download s1 "$T/dl1"
sleep 1
AP=$(admin_port) || exit 1
check_eq "healthz while serving -> 200" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AP/healthz")"
t0=$(date +%s%N)
kill -TERM "$SERVER_PID"
sleep 0.5
# the download is still in flight (4 s at 1 MiB/s): the server drains, and says so to a balancer
check_eq "healthz while draining -> 503" 503 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AP/healthz")"
(exec 3<>"/dev/tcp/127.0.0.1/$SERVER_PORT") 2>/dev/null && fail "port closed while draining" || pass "port closed while draining"
wait_exit "$SERVER_PID" 25; rc=$RC
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "server exit status after drain" 0 "$rc"
wait "$DL_PID"
check_eq "download during server drain: curl ok" 0 "$(cat "$T/dl1.rc")"
check_eq "download during server drain: 200" 200 "$(cat "$T/dl1.code")"
check_eq "download during server drain: sha256 intact" "$WANT" "$(sha "$T/dl1")"
echo "MEASURED: server drained a ${SIZE}-byte download in flight and exited after $ms ms"
check_contains "server logged the drain" "drained in" "$(cat "$T/server.log")"
check_contains "client saw the GOAWAY" "server going away" "$(cat "$T/client-s1.log")"
kill -0 "$CLIENT_PID" 2>/dev/null && pass "client keeps running (redialling)" || fail "client keeps running"
stop_pid "$CLIENT_PID"

echo "== server SIGTERM with DRAIN_TIMEOUT shorter than the download"
mv "$T/server.log" "$T/server-1.log"
start_server DRAIN_TIMEOUT=1s || exit 1
start_client s2 "$LPORT"
ready s2 || exit 1
download s2 "$T/dl2"
sleep 1
t0=$(date +%s%N)
kill -TERM "$SERVER_PID"
wait_exit "$SERVER_PID" 10; rc=$RC
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "server exits 0 at the drain deadline" 0 "$rc"
if [ "$ms" -lt 3000 ]; then pass "server gave up after $ms ms (DRAIN_TIMEOUT=1s)"; else fail "drain deadline" "$ms ms"; fi
wait "$DL_PID"
check_match "cut download is reported incomplete (curl exit $(cat "$T/dl2.rc"))" "^(18|56|52)$" "$(cat "$T/dl2.rc")"
got=$(stat -c %s "$T/dl2" 2>/dev/null || echo 0)
if [ "$got" -lt "$SIZE" ]; then pass "partial body ($got bytes) not passed off as complete"; else fail "partial" "$got"; fi
check_contains "server logged the timed-out drain" "drain timed out" "$(cat "$T/server.log")"
stop_pid "$CLIENT_PID"

echo "== client SIGTERM with a download in flight"
mv "$T/server.log" "$T/server-2.log"
start_server || exit 1
start_client c1 "$LPORT" DRAIN_TIMEOUT=20s
C1=$CLIENT_PID
ready c1 || exit 1
download c1 "$T/dl3"
sleep 1
t0=$(date +%s%N)
kill -TERM "$C1"
sleep 0.3
t1=$(date +%s%N)
code=$(CURL_MAX_TIME=10 tcurl c1 / -o /dev/null -w '%{http_code}')
check_eq "new request to a draining client -> 502" 502 "$code"
ms1=$((($(date +%s%N) - t1) / 1000000))
if [ "$ms1" -lt 1000 ]; then pass "refused in $ms1 ms"; else fail "refused quickly" "$ms1 ms"; fi
wait_exit "$C1" 25; rc=$RC
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "client exit status after drain" 0 "$rc"
wait "$DL_PID"
check_eq "download during client drain: curl ok" 0 "$(cat "$T/dl3.rc")"
check_eq "download during client drain: sha256 intact" "$WANT" "$(sha "$T/dl3")"
echo "MEASURED: client drained a ${SIZE}-byte download in flight and exited after $ms ms"
check_contains "client logged the drain" "draining 1 in-flight stream" "$(cat "$T/client-c1.log")"

echo "== client SIGTERM with DRAIN_TIMEOUT shorter than the download"
start_client c2 "$LPORT" DRAIN_TIMEOUT=1s
C2=$CLIENT_PID
ready c2 || exit 1
download c2 "$T/dl4"
sleep 1
t0=$(date +%s%N)
kill -TERM "$C2"
wait_exit "$C2" 10; rc=$RC
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "client exits 0 at the drain deadline" 0 "$rc"
if [ "$ms" -lt 3000 ]; then pass "client gave up after $ms ms (DRAIN_TIMEOUT=1s)"; else fail "client drain deadline" "$ms ms"; fi
wait "$DL_PID"
check_match "cut download is reported incomplete (curl exit $(cat "$T/dl4.rc"))" "^(18|56|52)$" "$(cat "$T/dl4.rc")"
kill -0 "$SERVER_PID" 2>/dev/null && pass "server unaffected" || fail "server unaffected"
exit 0
