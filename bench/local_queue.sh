#!/usr/bin/env bash
# bench/local_queue.sh — LOCAL_MAX_CONNECTIONS and LOCAL_MAX_CONNECTING side by side (issue 16,
# docs/PERFORMANCE.md "Local connections"). One tunnelmux server with TLS (so browsers and nghttp
# speak HTTP/2), then for each CAPS entry MAX/CONNECTING (LOCAL_MAX_CONNECTIONS/LOCAL_MAX_CONNECTING,
# 0 = no limit) fresh clients and:
#   * python3 -m http.server (listen backlog 5) serving a 120-asset page: `nghttp -a` wall time
#     and the number of 200 answers (timeout NGHTTP_MAX s);
#   * nginx serving the same page: `nghttp -a` wall time;
#   * nginx, 1 KiB file: h2load -c50 -m10 (H2LOAD_N requests) and wrk -t2 -c50 (WRK_S s) req/s;
#   * an app server stand-in (bench/slow_app.py: threaded, backlog 1024, APP_DELAY_MS per request):
#     h2load -c50 -m10 (APP_N requests) req/s — what a cap costs a latency-bound service.
# Prints one table row per cap. Every load is bounded in count and time.
#
# Usage: BUILD_DIR=build CAPS="6/0 16/0 64/0 0/0 16/4 64/4 0/4" ROUNDS=1 bash bench/local_queue.sh
set -u
TM_BUILD_DIR=${BUILD_DIR:-${TM_BUILD_DIR:-build}}
TM_BUILD_DIR=$(cd "$TM_BUILD_DIR" && pwd)
export TM_BUILD_DIR
CAPS=${CAPS:-"6/0 16/0 64/0 0/0 16/4 64/4 0/4"}
NGHTTP_MAX=${NGHTTP_MAX:-70}
H2LOAD_N=${H2LOAD_N:-20000}
WRK_S=${WRK_S:-5}
APP_DELAY_MS=${APP_DELAY_MS:-20}
APP_N=${APP_N:-3000}
ROUNDS=${ROUNDS:-1}
E2E_LOG_LEVEL=${E2E_LOG_LEVEL:-warn}
source "$(dirname "$0")/../tests/e2e/lib.sh"
require_binaries

python3 "$E2E_DIR/asset_page.py" "$T/site" >/dev/null
head -c 1024 /dev/urandom >"$T/site/1k.bin"
PY_PORT=$(free_port)
spawn PY_PID "$T/py.log" python3 -m http.server --bind 127.0.0.1 --directory "$T/site" "$PY_PORT"
wait_port "$PY_PORT" 10 || { fail "python http.server"; exit 1; }
start_nginx "$T/site" || exit 1
APP_PORT=$(free_port)
spawn APP_PID "$T/app.log" python3 "$(dirname "$0")/slow_app.py" "$APP_PORT" "$APP_DELAY_MS"
wait_port "$APP_PORT" 10 || { fail "slow_app"; exit 1; }
make_cert "$T"
start_server TLS_CERT="$T/cert.pem" TLS_KEY="$T/key.pem" MAX_STREAMS_PER_CLIENT=1000 || exit 1
SCHEME=https
CURL_TLS=(--cacert "$T/cert.pem")

# nghttp_page NAME: "<seconds> <200 count>" of nghttp -a on the page through the tunnel
nghttp_page() {
    local t0 t1 n
    t0=$(date +%s.%N)
    timeout "$NGHTTP_MAX" nghttp -ans -H ":authority: $1.$DOMAIN:$SERVER_PORT" "https://127.0.0.1:$SERVER_PORT/index.html" \
        >"$T/nghttp.$1.out" 2>&1
    t1=$(date +%s.%N)
    n=$(grep -c ' 200 ' "$T/nghttp.$1.out")
    printf '%.2f %s' "$(echo "$t1 - $t0" | bc)" "$n"
}

printf '%-8s %-12s %-10s %-12s %-12s %-10s %-10s\n' cap py_nghttp_s py_200 nginx_nghttp h2load_rps wrk_rps app_rps
for entry in $CAPS; do
    cap=${entry%/*}
    opening=${entry#*/}
    [ "$opening" = "$entry" ] && opening=0
    for ((r = 0; r < ROUNDS; r++)); do
        start_client py "$PY_PORT" SERVER_URL="wss://127.0.0.1:$SERVER_PORT" TLS_CA_FILE="$T/cert.pem" LOCAL_MAX_CONNECTIONS="$cap" \
            LOCAL_MAX_CONNECTING="$opening" MAX_STREAMS=1000 LOCAL_QUEUE_MAX=1000
        PYC=$CLIENT_PID
        start_client ng "$NGINX_PORT" SERVER_URL="wss://127.0.0.1:$SERVER_PORT" TLS_CA_FILE="$T/cert.pem" LOCAL_MAX_CONNECTIONS="$cap" \
            LOCAL_MAX_CONNECTING="$opening" MAX_STREAMS=1000 LOCAL_QUEUE_MAX=1000
        NGC=$CLIENT_PID
        start_client app "$APP_PORT" SERVER_URL="wss://127.0.0.1:$SERVER_PORT" TLS_CA_FILE="$T/cert.pem" LOCAL_MAX_CONNECTIONS="$cap" \
            LOCAL_MAX_CONNECTING="$opening" MAX_STREAMS=1000 LOCAL_QUEUE_MAX=1000
        APC=$CLIENT_PID
        wait_ready py /done || exit 1
        wait_ready ng /done || exit 1
        wait_ready app / || exit 1
        read -r pys py200 <<<"$(nghttp_page py)"
        read -r ngs _ <<<"$(nghttp_page ng)"
        h2=$(h2load -n "$H2LOAD_N" -c50 -m10 -H ":authority: ng.$DOMAIN:$SERVER_PORT" "https://127.0.0.1:$SERVER_PORT/1k.bin" 2>&1 |
            sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p')
        wrk=$(timeout $((WRK_S + 20)) wrk -t2 -c50 -d"${WRK_S}s" -H "Host: ng.$DOMAIN:$SERVER_PORT" "https://127.0.0.1:$SERVER_PORT/1k.bin" 2>&1 |
            sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p')
        app=$(h2load -n "$APP_N" -c50 -m10 -H ":authority: app.$DOMAIN:$SERVER_PORT" "https://127.0.0.1:$SERVER_PORT/" 2>&1 |
            sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p')
        printf '%-8s %-12s %-10s %-12s %-12s %-10s %-10s\n' "$cap/$opening" "$pys" "$py200" "$ngs" "${h2:--}" "${wrk:--}" "${app:--}"
        stop_pid "$PYC"
        stop_pid "$NGC"
        stop_pid "$APC"
    done
done
pass "bench done"
