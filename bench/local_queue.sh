#!/usr/bin/env bash
# bench/local_queue.sh — LOCAL_MAX_CONNECTIONS side by side (issue 16, docs/PERFORMANCE.md §local
# connections). One tunnelmux server with TLS (so browsers and nghttp speak HTTP/2), then for each
# cap value in CAPS a fresh client and:
#   * python3 -m http.server (listen backlog 5) serving a 120-asset page: `nghttp -a` wall time
#     and the number of 200 answers (timeout NGHTTP_MAX s);
#   * nginx serving the same page: `nghttp -a` wall time;
#   * nginx, 1 KiB file: h2load -c50 -m10 (H2LOAD_N requests) and wrk -t2 -c50 (WRK_S s) req/s.
# Prints one table row per cap. Every load is bounded in count and time.
#
# Usage: BUILD_DIR=build CAPS="0 4 6 8 16 32 64" bash bench/local_queue.sh
set -u
TM_BUILD_DIR=${BUILD_DIR:-${TM_BUILD_DIR:-build}}
TM_BUILD_DIR=$(cd "$TM_BUILD_DIR" && pwd)
export TM_BUILD_DIR
CAPS=${CAPS:-"0 4 6 8 16 32 64"}
NGHTTP_MAX=${NGHTTP_MAX:-70}
H2LOAD_N=${H2LOAD_N:-20000}
WRK_S=${WRK_S:-5}
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

printf '%-6s %-12s %-10s %-12s %-12s %-10s\n' cap py_nghttp_s py_200 nginx_nghttp h2load_rps wrk_rps
for cap in $CAPS; do
    for ((r = 0; r < ROUNDS; r++)); do
        start_client py "$PY_PORT" SERVER_URL="wss://127.0.0.1:$SERVER_PORT" TLS_CA_FILE="$T/cert.pem" LOCAL_MAX_CONNECTIONS="$cap" \
            MAX_STREAMS=1000 LOCAL_QUEUE_MAX=1000
        PYC=$CLIENT_PID
        start_client ng "$NGINX_PORT" SERVER_URL="wss://127.0.0.1:$SERVER_PORT" TLS_CA_FILE="$T/cert.pem" LOCAL_MAX_CONNECTIONS="$cap" \
            MAX_STREAMS=1000 LOCAL_QUEUE_MAX=1000
        NGC=$CLIENT_PID
        wait_ready py /done || exit 1
        wait_ready ng /done || exit 1
        read -r pys py200 <<<"$(nghttp_page py)"
        read -r ngs _ <<<"$(nghttp_page ng)"
        h2=$(h2load -n "$H2LOAD_N" -c50 -m10 -H ":authority: ng.$DOMAIN:$SERVER_PORT" "https://127.0.0.1:$SERVER_PORT/1k.bin" 2>&1 |
            sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p')
        wrk=$(timeout $((WRK_S + 20)) wrk -t2 -c50 -d"${WRK_S}s" -H "Host: ng.$DOMAIN:$SERVER_PORT" "https://127.0.0.1:$SERVER_PORT/1k.bin" 2>&1 |
            sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p')
        printf '%-6s %-12s %-10s %-12s %-12s %-10s\n' "$cap" "$pys" "$py200" "$ngs" "${h2:--}" "${wrk:--}"
        stop_pid "$PYC"
        stop_pid "$NGC"
    done
done
pass "bench done"
