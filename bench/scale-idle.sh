#!/usr/bin/env bash
# scale-idle.sh — what a tunnel costs the server, and whether RSS follows load (issue 21).
#
# Part 1, idle tunnels: for COMPRESSION=on and off, a fresh tunnelmux-server, then N tunnels opened
# from one process by bench/idle_tunnels.py (speaks the protocol like tunnelmux-client: zstd offered,
# keepalive answered, compressed messages decoded). Server RSS is sampled before the tunnels, after
# registration + SETTLE s, then one request per tunnel with a 1 KiB header (compressed both ways
# when zstd is on: the contexts exist), and again IDLE_WAIT s later (contexts released). Prints RSS
# per tunnel and the live zstd context count from /metrics at each point.
#
# Part 2, burst and release: tunnelmux-server + tunnelmux-client (MAX_STREAMS raised to BURST) in
# front of tests/e2e/echo_server.py; BURST public readers each request BURST_SIZE bytes and read
# nothing (what a slow-reader crowd pins), then go away. Prints both daemons' RSS before, at the
# peak, and every 5 s for RELEASE_WAIT s after the readers closed, and whether each came back within
# 64 MiB of its pre-burst value (the issue's target).
#
#   N            tunnels (default 1000)           SETTLE        s after registration (default 40)
#   IDLE_WAIT    s after the requests (default 30) BURST         slow readers (default 1000; 0 skips part 2)
#   BURST_SIZE   bytes per response (default 16 MiB: more than the kernel socket buffer, 4 MiB,
#                takes, so the server holds a stream window of it per reader)
#   RELEASE_WAIT s watched after the burst (default 30)
#   BUILD_DIR    binaries (default <repo>/build)   PARTS         "idle burst" (default both)
# Needs N + 100 file descriptors (raised to the hard limit here). Loopback only; every wait bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
N=${N:-1000}
SETTLE=${SETTLE:-40}
IDLE_WAIT=${IDLE_WAIT:-30}
BURST=${BURST:-1000}
BURST_SIZE=${BURST_SIZE:-16777216}
RELEASE_WAIT=${RELEASE_WAIT:-30}
PARTS=${PARTS:-idle burst}
SERVER_BIN=$BUILD_DIR/tunnelmux-server
CLIENT_BIN=$BUILD_DIR/tunnelmux-client
for b in "$SERVER_BIN" "$CLIENT_BIN"; do
    [ -x "$b" ] || { echo "scale-idle: $b missing (build first)" >&2; exit 1; }
done

need=$((N > BURST ? N : BURST))
need=$((need * 2 + 200))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    echo "scale-idle: needs $need file descriptors, ulimit -n is $(ulimit -n) (raise the hard limit)" >&2
    exit 1
fi

T=$(mktemp -d /tmp/scale-idle.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
TOKEN=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "scale-idle: nothing listens on $1" >&2
    return 1
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
cmetric() { curl -s --max-time 5 "http://127.0.0.1:$CMETRICS/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }

start_server() { # start_server LOGNAME VAR=VALUE...: sets SPORT, ADMIN, SPID
    local name=$1
    shift
    SPORT=$(port)
    ADMIN=$(port)
    env PORT="$SPORT" DOMAIN=example.com LISTEN_ADDR=127.0.0.1 ADMIN_ADDR="127.0.0.1:$ADMIN" LOG_LEVEL=warn \
        AUTH_TOKEN="$TOKEN" MAX_CLIENTS=$((N + 100)) RATE_LIMIT_RPS=0 "$@" "$SERVER_BIN" >"$T/$name.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    wait_port "$SPORT"
    wait_port "$ADMIN"
}

# one request per tunnel with a 1 KiB header (compressible), 32 at a time
poke_all() {
    python3 - "$SPORT" "$1" "$N" <<'PY'
import socket, sys
from concurrent.futures import ThreadPoolExecutor
port, prefix, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
pad = "tunnelmux idle bench " * 48
def one(i):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("GET / HTTP/1.1\r\nHost: %s%d.example.com\r\nx-padding: %s\r\nConnection: close\r\n\r\n" % (prefix, i, pad)).encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data.split(b" ", 2)[1] if data.startswith(b"HTTP/1.1 ") else b"-"
with ThreadPoolExecutor(32) as ex:
    codes = list(ex.map(one, range(n)))
print("requests: %d answered 200 of %d" % (sum(1 for c in codes if c == b"200"), n))
PY
}

idle_part() {
    local mode
    echo "== idle tunnels: N=$N, server RSS per tunnel (KiB)"
    printf '%-12s %10s %12s %12s %14s %12s %14s %12s\n' COMPRESSION "base MiB" "+${SETTLE}s MiB" "KiB/tunnel" \
        "after req MiB" "zstd ctx" "+${IDLE_WAIT}s MiB" "KiB/tunnel"
    for mode in on off; do
        start_server "server-idle-$mode" COMPRESSION="$mode"
        sleep 1
        local base hold=$((SETTLE + IDLE_WAIT + 60))
        base=$(rss_kib "$SPID")
        python3 "$ROOT/bench/idle_tunnels.py" "$SPORT" "$TOKEN" "t" "$N" "$hold" --answer-big --ready-file "$T/ready-$mode" \
            >"$T/idle-$mode.out" 2>"$T/idle-$mode.err" &
        local cpid=$!
        PIDS+=("$cpid")
        local i
        for ((i = 0; i < 600; i++)); do
            [ -s "$T/ready-$mode" ] && break
            sleep 0.1
        done
        [ -s "$T/ready-$mode" ] || { echo "scale-idle: tunnels did not register: $(tail -3 "$T/idle-$mode.err")" >&2; exit 1; }
        local registered
        registered=$(sed -n 's/registered=//p' "$T/ready-$mode")
        sleep "$SETTLE"
        local settled ctx0 poked ctx1 idle
        settled=$(rss_kib "$SPID")
        ctx0=$(metric tunnelmux_zstd_contexts)
        poke_all t >"$T/poke-$mode.out"
        sleep 2
        poked=$(rss_kib "$SPID")
        ctx1=$(metric tunnelmux_zstd_contexts)
        sleep "$IDLE_WAIT"
        idle=$(rss_kib "$SPID")
        local ctx2
        ctx2=$(metric tunnelmux_zstd_contexts)
        printf '%-12s %10s %12s %12s %14s %12s %14s %12s\n' "$mode" "$(mib "$base")" "$(mib "$settled")" \
            $(((settled - base) / registered)) "$(mib "$poked")" "$ctx0/$ctx1/$ctx2" "$(mib "$idle")" $(((idle - base) / registered))
        echo "   ($registered registered; $(cat "$T/poke-$mode.out"); zstd ctx = at +${SETTLE}s / 2 s after the requests / +${IDLE_WAIT}s)"
        kill "$cpid" 2>/dev/null || true
        wait "$cpid" 2>/dev/null || true
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    done
}

burst_part() {
    echo "== burst and release: $BURST readers x $BURST_SIZE bytes, unread, then gone"
    local pf="$T/echo.port"
    python3 "$ROOT/tests/e2e/echo_server.py" --name echo --port-file "$pf" >"$T/echo.log" 2>&1 &
    PIDS+=($!)
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$pf" ] && break
        sleep 0.1
    done
    local eport
    eport=$(cat "$pf")
    start_server server-burst MAX_STREAMS_PER_CLIENT=$((BURST + 10))
    CMETRICS=$(port)
    env SERVER_URL="ws://127.0.0.1:$SPORT" CLIENT_ID=burst LOCAL_HOST=127.0.0.1 LOCAL_PORT="$eport" LOG_LEVEL=warn \
        AUTH_TOKEN="$TOKEN" MAX_STREAMS=$((BURST + 10)) METRICS_ADDR="127.0.0.1:$CMETRICS" "$CLIENT_BIN" >"$T/client-burst.log" 2>&1 &
    local cpid=$!
    PIDS+=("$cpid")
    for ((i = 0; i < 100; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --resolve "burst.example.com:$SPORT:127.0.0.1" \
            "http://burst.example.com:$SPORT/bytes/100000")" = 200 ] && break
        sleep 0.2
    done
    sleep 2
    local s0 c0
    s0=$(rss_kib "$SPID")
    c0=$(rss_kib "$cpid")
    # the readers: request, read the head's first bytes only, hold until stdin closes
    mkfifo "$T/hold"
    cat >"$T/readers.py" <<'PY'
import socket, sys
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET /bytes/%d HTTP/1.1\r\nHost: burst.example.com\r\n\r\n" % size).encode())
    socks.append(s)
print("opened=%d" % len(socks), flush=True)
sys.stdin.read()
for s in socks:
    s.close()
PY
    python3 "$T/readers.py" "$SPORT" "$BURST" "$BURST_SIZE" <"$T/hold" >"$T/readers.out" &
    local rpid=$!
    exec 7>"$T/hold"
    local speak=0 cpeak=0 held=0 v
    local -a hist=()
    for ((i = 0; i < 120; i++)); do # until the held bytes grew < 1 % in 5 s (at least 10 s, at most 60 s)
        sleep 0.5
        v=$(rss_kib "$SPID")
        ((v > speak)) && speak=$v
        v=$(rss_kib "$cpid")
        ((v > cpeak)) && cpeak=$v
        held=$(metric tunnelmux_response_bytes_held)
        held=${held:-0}
        hist+=("$held")
        if ((i >= 20 && held <= hist[i - 10] + hist[i - 10] / 100)); then break; fi
    done
    local active
    active=$(metric 'tunnelmux_client_active_streams{client="burst"}')
    echo "   pre-burst RSS: server $(mib "$s0") MiB, client $(mib "$c0") MiB"
    echo "   burst: $(cat "$T/readers.out"), response bytes held $((held / 1048576)) MiB, client active streams ${active:-?}"
    echo "   peak RSS:      server $(mib "$speak") MiB, client $(mib "$cpeak") MiB"
    exec 7>&- # the readers close their sockets
    wait "$rpid" 2>/dev/null || true
    local t0=$SECONDS sv cv
    for ((i = 5; i <= RELEASE_WAIT; i += 5)); do
        sleep $((t0 + i - SECONDS > 0 ? t0 + i - SECONDS : 0))
        sv=$(rss_kib "$SPID")
        cv=$(rss_kib "$cpid")
        echo "   +${i}s after:    server $(mib "$sv") MiB, client $(mib "$cv") MiB (zstd contexts: server $(metric tunnelmux_zstd_contexts), client $(cmetric tunnelmux_daemon_zstd_contexts))"
    done
    local sok=no cok=no
    (((sv - s0) < 65536)) && sok=yes
    (((cv - c0) < 65536)) && cok=yes
    echo "   within 64 MiB of pre-burst after ${RELEASE_WAIT}s: server $sok ($(mib $((sv - s0))) MiB), client $cok ($(mib $((cv - c0))) MiB)"
    echo "   server: $(metric tunnelmux_response_bytes_held) bytes held, $(metric tunnelmux_zstd_contexts) zstd contexts"
}

for part in $PARTS; do
    case $part in
    idle) idle_part ;;
    burst) [ "$BURST" -gt 0 ] && burst_part ;;
    *) echo "scale-idle: unknown part $part" >&2 ;;
    esac
done
