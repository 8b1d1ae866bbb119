#!/usr/bin/env bash
# e2e: fast takeover of a dead name holder (NAME_TAKEOVER_CHECK, docs/OPERATIONS.md "Name takeover").
# A client that stopped answering without closing its connection (SIGSTOP here; a laptop that changed
# networks in real life) loses its name to a second client with the same name and token within a few
# seconds instead of PING_TIMEOUT (45 s): the server PINGs the holder when the HELLO arrives, refuses
# with a short retry_after, and hands the name over when the holder stayed silent for the check
# window. A LIVE holder is never taken over: the second client keeps being refused while the first
# answers the PINGs, and requests keep reaching the first client's service. A holder that sent
# GOAWAY (SIGTERM, draining) hands the name over at once and still finishes its download intact.
source "$(dirname "$0")/lib.sh"
require_binaries

NAME=tk
start_echo a || exit 1
PORT_A=$ECHO_PORT
start_echo b || exit 1
PORT_B=$ECHO_PORT
# MAX_REPLICAS=1: one daemon per name, the takeover special case (with replicas a same-token
# daemon would simply join; test_ha.sh)
start_server NAME_TAKEOVER_CHECK=3s PING_INTERVAL=15s PING_TIMEOUT=45s MAX_REPLICAS=1 || exit 1

# who: which local service answered a request for NAME ("a", "b" or the HTTP status)
who() {
    local out
    out=$(CURL_MAX_TIME=3 tcurl "$NAME" /who -w '\n%{http_code}' 2>/dev/null)
    case "$out" in
    *'"server": "a"'*) echo a ;;
    *'"server": "b"'*) echo b ;;
    *) echo "${out##*$'\n'}" ;;
    esac
}
STOPPED=""
resume_stopped() { [ -n "$STOPPED" ] && kill -CONT "$STOPPED" 2>/dev/null; STOPPED=""; }
trap 'rc=$?; resume_stopped; (exit $rc); e2e_cleanup' EXIT
# start_client logs into client-NAME.log: each client of the same name gets its own file (renamed at
# once; the process keeps writing to it)
# start_named IDX LOCAL_PORT [VAR=VALUE...]: client number IDX for NAME, log client-NAME-IDX.log
start_named() {
    local idx=$1
    shift
    start_client "$NAME" "$@"
    local i
    for ((i = 0; i < 50; i++)); do # the background child creates the file
        [ -e "$T/client-$NAME.log" ] && break
        sleep 0.02
    done
    mv "$T/client-$NAME.log" "$T/client-$NAME-$idx.log"
}

echo "== a live holder is not taken over"
start_named 1 "$PORT_A"
C1=$CLIENT_PID
wait_ready "$NAME" /who 15 || exit 1
check_eq "first client serves the name" a "$(who)"
# the second client retries quickly (RECONNECT_DELAY=200ms; the server's retry_after is the floor)
start_named 2 "$PORT_B" RECONNECT_DELAY=200ms
C2=$CLIENT_PID
sleep 8 # more than two check windows
refusals=$(grep -c "NAME_TAKEN" "$T/client-$NAME-2.log")
if [ "$refusals" -ge 2 ]; then pass "second client refused $refusals times while the holder answers PINGs"; else
    fail "second client keeps being refused" "$refusals refusals: $(tail -3 "$T/client-$NAME-2.log")"
fi
check_not_contains "no takeover of a live holder" "tunnel takeover" "$(cat "$T/server.log")"
check_contains "server PINGed the holder" "tunnel liveness check: name=$NAME" "$(cat "$T/server.log")"
check_eq "requests still reach the first client" a "$(who)"
kill -0 "$C1" 2>/dev/null && pass "first client still running" || fail "first client still running"
stop_pid "$C2"

echo "== a stopped holder loses its name within seconds"
kill -STOP "$C1"
STOPPED=$C1
t0=$(date +%s%N)
start_named 3 "$PORT_B" RECONNECT_DELAY=200ms
C3=$CLIENT_PID
got=""
for ((i = 0; i < 150; i++)); do # up to ~15 s (each probe is bounded by curl's 3 s)
    got=$(who)
    [ "$got" = b ] && break
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "requests reach the second client after the takeover" b "$got"
echo "MEASURED: name taken over from a SIGSTOP'd holder in $ms ms (NAME_TAKEOVER_CHECK=3s, PING_TIMEOUT=45s)"
if [ "$ms" -le 6000 ]; then pass "takeover within ~5 s ($ms ms)"; else fail "takeover within ~5 s" "$ms ms"; fi
log_s=$(cat "$T/server.log")
check_contains "server logged the takeover" "tunnel takeover: name=$NAME" "$log_s"
check_contains "server logged the old tunnel as lost" "reason=name taken over by" "$log_s"
check_contains "second client registered" "registered as $NAME" "$(cat "$T/client-$NAME-3.log")"
ok=0
for ((i = 0; i < 5; i++)); do [ "$(who)" = b ] && ok=$((ok + 1)); done
check_eq "5 more requests reach the new holder" 5 "$ok"

echo "== the resumed old client does not take the name back"
resume_stopped
sleep 5 # it notices its closed connection, redials, and is refused: the new holder answers PINGs
check_eq "requests still reach the new holder" b "$(who)"
kill -0 "$C3" 2>/dev/null && pass "new holder still running" || fail "new holder still running"
check_contains "old client refused with NAME_TAKEN after resuming" "NAME_TAKEN" "$(cat "$T/client-$NAME-1.log")"
check_eq "exactly one takeover" 1 "$(grep -c 'tunnel takeover:' "$T/server.log")"

echo "== a holder that sent GOAWAY (draining) hands its name over at once and finishes its download"
SIZE=$((2 * 1024 * 1024))
gen_file "$T/big.bin" "$SIZE" takeover
WANT=$(sha256sum <"$T/big.bin" | cut -d' ' -f1)
cat >"$T/slow.py" <<'PY'
import http.server, sys, time
data, rate, port_file = open(sys.argv[1], "rb").read(), int(sys.argv[2]), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for off in range(0, len(data), 65536):
            self.wfile.write(data[off:off + 65536])
            self.wfile.flush()
            time.sleep(65536 / rate)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(port_file, "w").write(str(s.server_address[1]))
s.serve_forever()
PY
spawn SLOW_PID "$T/slow.log" python3 "$T/slow.py" "$T/big.bin" $((1024 * 1024)) "$T/slow.port"
for ((i = 0; i < 50; i++)); do [ -s "$T/slow.port" ] && break; sleep 0.1; done
NAME=tk2
start_named 1 "$(cat "$T/slow.port")" DRAIN_TIMEOUT=20s
D1=$CLIENT_PID
wait_ready "$NAME" /who 15 || exit 1
(CURL_MAX_TIME=30 tcurl "$NAME" /big.bin -o "$T/dl" -w '%{http_code}' >"$T/dl.code" 2>"$T/dl.err"; echo $? >"$T/dl.rc") &
DL=$!
sleep 0.5
kill -TERM "$D1"
sleep 0.2
t0=$(date +%s%N)
start_named 2 "$PORT_B" RECONNECT_DELAY=200ms
got=""
for ((i = 0; i < 50; i++)); do
    got=$(who)
    [ "$got" = b ] && break
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "new client serves the name while the old one drains" b "$got"
echo "MEASURED: name handed over by a draining (GOAWAY) holder in $ms ms"
check_contains "takeover logged as GOAWAY" "the holder sent GOAWAY" "$(cat "$T/server.log")"
wait "$DL"
check_eq "download on the draining holder: curl ok" 0 "$(cat "$T/dl.rc")"
check_eq "download on the draining holder: sha256 intact" "$WANT" "$(sha256sum <"$T/dl" | cut -d' ' -f1)"
for ((i = 0; i < 50; i++)); do kill -0 "$D1" 2>/dev/null || break; sleep 0.1; done
kill -0 "$D1" 2>/dev/null && fail "draining client exited" || pass "draining client exited after its download"
check_eq "requests still reach the new holder" b "$(who)"

echo "== SIGTERM with nothing in flight exits at once"
# term_ms PID: SIGTERM; MS = milliseconds until it exited (10 s at most), RC = its exit status
term_ms() {
    local t0 i
    t0=$(date +%s%N)
    kill -TERM "$1"
    for ((i = 0; i < 2000; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.005
    done
    MS=$((($(date +%s%N) - t0) / 1000000))
    wait "$1"
    RC=$?
}
term_ms "$CLIENT_PID"
echo "MEASURED: idle registered client exited $MS ms after SIGTERM"
check_eq "idle registered client: exit status" 0 "$RC"
if [ "$MS" -le 500 ]; then pass "idle registered client exits within 500 ms ($MS ms)"; else fail "idle client exit" "$MS ms"; fi
term_ms "$C1"
echo "MEASURED: refused (unregistered) client exited $MS ms after SIGTERM"
check_eq "unregistered client: exit status" 0 "$RC"
if [ "$MS" -le 500 ]; then pass "unregistered client exits within 500 ms ($MS ms)"; else fail "unregistered client exit" "$MS ms"; fi
exit 0
