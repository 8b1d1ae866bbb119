#!/usr/bin/env bash
# demo.sh — THE run command of tunnelmux (README): installs the dependencies, builds, starts a tiny
# local web service, tunnelmux-server on 127.0.0.1:$DEMO_PORT (DOMAIN=localhost) and tunnelmux-client
# (CLIENT_ID=demo) pointed at the service, waits until a request through the tunnel works, prints the
# command to try and keeps running until Ctrl-C, which stops everything it started (by PID).
#
# Environment: DEMO_PORT (public port, default 8080), DEMO_LOCAL_PORT (local service, default 3000),
# DEMO_ADMIN_PORT (admin dashboard, default 9090),
# DEMO_NAME (default demo), SKIP_DEPS=1, SKIP_BUILD=1, BUILD_DIR (default <repo>/build),
# DEMO_TLS=1 (or the argument --tls): the public port speaks HTTPS with a self-signed certificate
# made with openssl in the demo's temp dir, so browsers use HTTP/2 through the tunnel (the client
# dials wss:// and trusts that certificate).
set -uo pipefail

TLS=${DEMO_TLS:-0}
for arg in "$@"; do
    case "$arg" in
    --tls) TLS=1 ;;
    -h | --help)
        sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "demo: unknown argument '$arg' (only --tls)" >&2
        exit 2
        ;;
    esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
PUBLIC_PORT=${DEMO_PORT:-8080}
LOCAL_PORT=${DEMO_LOCAL_PORT:-3000}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9090}
NAME=${DEMO_NAME:-demo}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tunnelmux-demo.XXXXXX")
PIDS=()

stop_all() {
    local p i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$p" 2>/dev/null
    done
    echo
    echo "demo: stopped (logs were in $WORK)"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "${SKIP_DEPS:-0}" != 1 ]; then
    "$ROOT/scripts/install-deps.sh" || exit 1
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "demo: building in $BUILD_DIR"
    { cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$WORK/build.log" 2>&1 &&
        cmake --build "$BUILD_DIR" -j "$(nproc)" --target tunnelmux-server tunnelmux-client >>"$WORK/build.log" 2>&1; } ||
        { tail -n 30 "$WORK/build.log"; echo "demo: build failed (full log: $WORK/build.log)"; exit 1; }
fi
for p in "$PUBLIC_PORT" "$LOCAL_PORT" "$ADMIN_PORT"; do
    if port_busy "$p"; then
        echo "demo: port $p is already in use; set DEMO_PORT / DEMO_LOCAL_PORT / DEMO_ADMIN_PORT" >&2
        exit 1
    fi
done

# the local service: python3 http.server on a generated page
mkdir -p "$WORK/site"
cat >"$WORK/site/index.html" <<HTML
<!doctype html>
<html><head><meta charset="utf-8"><title>tunnelmux demo</title></head>
<body>
<h1>Hello through tunnelmux</h1>
<p>This page is served by a local python3 http.server on 127.0.0.1:$LOCAL_PORT and reached through
tunnelmux-server on port $PUBLIC_PORT as <code>$NAME.localhost</code>.</p>
<p>Generated $(date -u +%Y-%m-%dT%H:%M:%SZ).</p>
</body></html>
HTML
python3 -m http.server "$LOCAL_PORT" --bind 127.0.0.1 --directory "$WORK/site" >"$WORK/local.log" 2>&1 </dev/null &
PIDS+=($!)

# client authentication (docs/SECURITY.md): one random shared token for this demo
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
SCHEME=http
TUNNEL_URL="ws://127.0.0.1:$PUBLIC_PORT"
SERVER_TLS=()
CLIENT_TLS=()
CURL_K=()
if [ "$TLS" = 1 ]; then
    # self-signed certificate for the demo names (browsers will ask to accept it once)
    mkdir -p "$WORK/tls"
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:*.localhost,DNS:localhost,IP:127.0.0.1" \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >"$WORK/tls/openssl.log" 2>&1; then
        cat "$WORK/tls/openssl.log"
        echo "demo: openssl could not make a certificate" >&2
        exit 1
    fi
    SCHEME=https
    TUNNEL_URL="wss://127.0.0.1:$PUBLIC_PORT"
    SERVER_TLS=(TLS_CERT="$WORK/tls/cert.pem" TLS_KEY="$WORK/tls/key.pem")
    CLIENT_TLS=(TLS_CA_FILE="$WORK/tls/cert.pem")
    CURL_K=(-k)
fi
env PORT="$PUBLIC_PORT" DOMAIN=localhost LISTEN_ADDR=127.0.0.1 ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" AUTH_TOKEN="$TOKEN" \
    ${SERVER_TLS[@]+"${SERVER_TLS[@]}"} "$BUILD_DIR/tunnelmux-server" >"$WORK/server.log" 2>&1 </dev/null &
PIDS+=($!)
for i in $(seq 1 50); do port_busy "$PUBLIC_PORT" && break; sleep 0.2; done

env SERVER_URL="$TUNNEL_URL" CLIENT_ID="$NAME" LOCAL_HOST=127.0.0.1 LOCAL_PORT="$LOCAL_PORT" AUTH_TOKEN="$TOKEN" \
    ${CLIENT_TLS[@]+"${CLIENT_TLS[@]}"} "$BUILD_DIR/tunnelmux-client" >"$WORK/client.log" 2>&1 </dev/null &
PIDS+=($!)

ok=0
for i in $(seq 1 100); do
    code=$(curl -s ${CURL_K[@]+"${CURL_K[@]}"} -o /dev/null -m 2 -w '%{http_code}' --resolve "$NAME.localhost:$PUBLIC_PORT:127.0.0.1" \
        "$SCHEME://$NAME.localhost:$PUBLIC_PORT/" 2>/dev/null)
    [ "$code" = 200 ] && { ok=1; break; }
    sleep 0.2
done
if [ $ok != 1 ]; then
    echo "demo: the tunnel did not come up (last status '$code')" >&2
    echo "--- server log"; tail -n 20 "$WORK/server.log"
    echo "--- client log"; tail -n 20 "$WORK/client.log"
    exit 1
fi

if [ "$TLS" = 1 ]; then
    PUBLIC_DESC="tunnelmux-server on 127.0.0.1:$PUBLIC_PORT (HTTPS, HTTP/2; self-signed $WORK/tls/cert.pem), DOMAIN=localhost"
    TRY="  curl -k --http2 https://$NAME.localhost:$PUBLIC_PORT/
  or open https://$NAME.localhost:$PUBLIC_PORT/ in a browser (accept the self-signed certificate)"
else
    PUBLIC_DESC="tunnelmux-server on 127.0.0.1:$PUBLIC_PORT, DOMAIN=localhost"
    TRY="  curl http://$NAME.localhost:$PUBLIC_PORT/"
fi
cat <<MSG

tunnelmux demo is running:
  local service   http://127.0.0.1:$LOCAL_PORT/ (python3 http.server)
  public server   $PUBLIC_DESC
  tunnel client   tunnelmux-client, CLIENT_ID=$NAME
  admin dashboard http://127.0.0.1:$ADMIN_PORT/ (Prometheus metrics at /metrics, JSON at /api/clients)
  logs            $WORK/{server,client,local}.log

Try:
$TRY

Press Ctrl-C to stop.
MSG
# stay until Ctrl-C (or until one of the processes dies)
while true; do
    for p in "${PIDS[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "demo: process $p exited; see logs in $WORK" >&2
            exit 1
        fi
    done
    sleep 1
done
