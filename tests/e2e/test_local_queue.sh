#!/usr/bin/env bash
# e2e: the local connection budget (issue 16, docs/OPERATIONS.md "Local connections").
#   * python3 -m http.server (listen backlog 5) serving a 120-asset page through HTTPS/h2:
#     nghttp -a gets every asset with 200 (time printed, and nginx's for comparison), headless
#     Chromium runs every script and completes the 2 MB fetch (times printed, direct and tunnelled);
#   * a local service that accepts but never answers: 504 after READ_TIMEOUT, also for a request
#     that waited in the queue, while another tunnel answers meanwhile;
#   * nothing listening: 502 at once; a connect that hangs (full backlog): 502 after
#     LOCAL_CONNECT_TIMEOUT;
#   * queue overflow: 503 + Retry-After, one WARN per burst, counted in /metrics;
#   * a queued stream whose user goes away leaves the queue; a queued POST is not read ahead of
#     its credit and arrives whole; WebSockets do not use up the budget.
# Times are printed, never asserted, except "at once" (well below the timeouts configured).
source "$(dirname "$0")/lib.sh"
require_binaries

PY=/usr/bin/python3 # Debian's, with python3-websockets
python3 "$E2E_DIR/asset_page.py" "$T/site" >/dev/null || { fail "asset page generated"; exit 1; }
PAGE_ASSETS=121 # index.html + 40 stylesheets + 80 scripts

PYS_PORT=$(free_port)
spawn PYS_PID "$T/pyhttp.log" python3 -m http.server --bind 127.0.0.1 --directory "$T/site" "$PYS_PORT"
wait_port "$PYS_PORT" 10 || { fail "python http.server listening"; exit 1; }
start_nginx "$T/site" || exit 1
make_cert "$T" || fail "openssl certificate"
start_server TLS_CERT="$T/cert.pem" TLS_KEY="$T/key.pem" || exit 1
SCHEME=https
CURL_TLS=(--cacert "$T/cert.pem")
WSS=(SERVER_URL="wss://127.0.0.1:$SERVER_PORT" TLS_CA_FILE="$T/cert.pem")

# metric NAME PORT: the value of an unlabelled (or fully written) series from a client's /metrics
metric() {
    curl -sS --max-time 5 "http://127.0.0.1:$2/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

echo "== python http.server (backlog 5), 120 assets over h2 (default LOCAL_MAX_CONNECTIONS)"
PYM_PORT=$(free_port)
start_client py "$PYS_PORT" "${WSS[@]}" METRICS_ADDR="127.0.0.1:$PYM_PORT"
PY_CLIENT=$CLIENT_PID
start_client ng "$NGINX_PORT" "${WSS[@]}"
wait_ready py /done || exit 1
wait_ready ng /done || exit 1

# nghttp_page NAME: nghttp -a on the page; sets NG_S (seconds), NG_200 (answers 200), NG_RC
nghttp_page() {
    local t0=$SECONDS
    local s0 s1
    s0=$(date +%s%N)
    timeout 90 nghttp -ans -H ":authority: $1.$DOMAIN:$SERVER_PORT" "https://127.0.0.1:$SERVER_PORT/index.html" >"$T/nghttp.$1.out" 2>&1
    NG_RC=$?
    s1=$(date +%s%N)
    NG_S=$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
    NG_200=$(awk '$5 == 200 && $7 ~ /^\// {n++} END {print n + 0}' "$T/nghttp.$1.out")
}
nghttp_page py
check_eq "nghttp -a via python http.server: exit status" 0 "$NG_RC"
check_eq "nghttp -a via python http.server: every asset 200" "$PAGE_ASSETS" "$NG_200"
PY_NG_S=$NG_S
nghttp_page ng
check_eq "nghttp -a via nginx: every asset 200" "$PAGE_ASSETS" "$NG_200"
echo "  info nghttp -a, 121 requests over h2: python http.server ${PY_NG_S} s, nginx ${NG_S} s"
check "connect timeouts: none against python http.server" test "$(metric tunnelmux_daemon_local_connect_timeouts_total "$PYM_PORT")" = 0
peak=$(metric tunnelmux_daemon_local_queue_peak "$PYM_PORT")
limit=$(metric tunnelmux_daemon_local_connections_limit "$PYM_PORT")
echo "  info queue peak $peak with LOCAL_MAX_CONNECTIONS=$limit; fresh local connects $(metric tunnelmux_daemon_local_connects_total "$PYM_PORT")"
check "the burst was queued (peak > 0)" test "${peak:-0}" -gt 0
check_match "wait histogram counts every request" '^[0-9]+$' "$(metric tunnelmux_daemon_local_queue_wait_seconds_count "$PYM_PORT")"

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "SKIP: chromium is not installed (scripts/install-deps.sh installs Debian's chromium)"
else
    # chrome_page LABEL URL: loads URL headless; sets CH_S and CH_RESULT (the page's result line)
    chrome_page() {
        local s0 s1
        rm -rf "$T/chromium-$1"
        s0=$(date +%s%N)
        timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$T/chromium-$1" \
            --host-resolver-rules="MAP *.$DOMAIN 127.0.0.1" --ignore-certificate-errors --virtual-time-budget=60000 \
            --dump-dom "$2" >"$T/chromium-$1.dom" 2>"$T/chromium-$1.err"
        s1=$(date +%s%N)
        CH_S=$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
        CH_RESULT=$(sed -nE 's/.*<div id="result">([^<]*)<.*/\1/p' "$T/chromium-$1.dom")
        rm -rf "$T/chromium-$1"
    }
    chrome_page direct "http://127.0.0.1:$PYS_PORT/index.html"
    check_eq "chromium direct: every script ran, 2 MB fetched" "ran=80 bytes=2000000" "$CH_RESULT"
    DIRECT_S=$CH_S
    chrome_page tunnel "$(url py /index.html)"
    check_eq "chromium through the tunnel (h2): every script ran, 2 MB fetched" "ran=80 bytes=2000000" "$CH_RESULT"
    check_contains "chromium used HTTP/2 through the tunnel" "proto=HTTP/2" "$(grep 'client=py' "$T/server.log" | grep -F 'path="/done?ran=80&bytes=2000000"')"
    echo "  info chromium page load (incl. browser start): direct ${DIRECT_S} s, through the tunnel ${CH_S} s"
fi

echo "== a local service that accepts and never answers (LOCAL_MAX_CONNECTIONS=1, READ_TIMEOUT=3s)"
rm -f "$T/silent.port"
spawn SILENT_PID "$T/silent.log" python3 "$E2E_DIR/local_stall.py" silent "$T/silent.port"
for ((i = 0; i < 50; i++)); do [ -s "$T/silent.port" ] && break; sleep 0.1; done
SILENT_PORT=$(cat "$T/silent.port")
HM_PORT=$(free_port)
start_client hung "$SILENT_PORT" "${WSS[@]}" LOCAL_MAX_CONNECTIONS=1 LOCAL_QUEUE_MAX=1 READ_TIMEOUT=3s LOG_LEVEL=debug \
    METRICS_ADDR="127.0.0.1:$HM_PORT"
for ((i = 0; i < 50; i++)); do grep -q 'registered as hung' "$T/client-hung.log" && break; sleep 0.1; done
tcurl hung /first -o "$T/first.body" -w '%{http_code}' >"$T/first.code" 2>/dev/null &
P1=$!
for ((i = 0; i < 50; i++)); do [ "$(metric 'tunnelmux_daemon_local_connections{state="in_use"}' "$HM_PORT")" = 1 ] && break; sleep 0.1; done
tcurl hung /second -o "$T/second.body" -w '%{http_code}' >"$T/second.code" 2>/dev/null &
P2=$!
for ((i = 0; i < 50; i++)); do [ "$(metric tunnelmux_daemon_local_queue_length "$HM_PORT")" = 1 ] && break; sleep 0.1; done
check_eq "second request queued behind the first" 1 "$(metric tunnelmux_daemon_local_queue_length "$HM_PORT")"
# queue full (LOCAL_QUEUE_MAX=1): two more are refused at once with 503 + Retry-After
out=$(tcurl hung /third -D "$T/third.head" -o "$T/third.body" -w '%{http_code}')
check_eq "queue overflow -> 503" 503 "$out"
check_match "503 carries Retry-After" '^retry-after: [0-9]+' "$(tr -d '\r' <"$T/third.head" | grep -i '^retry-after:' | tr 'A-Z' 'a-z')"
check_contains "503 body names the cause" "busy" "$(cat "$T/third.body")"
out=$(tcurl hung /fourth -o /dev/null -w '%{http_code}')
check_eq "second overflow -> 503" 503 "$out"
# meanwhile another tunnel answers
out=$(tcurl py /done -o /dev/null -w '%{http_code}')
check_eq "another tunnel answers while this one is stuck" 200 "$out"
wait "$P1" "$P2"
check_eq "hung local service -> 504 after READ_TIMEOUT" 504 "$(cat "$T/first.code")"
check_eq "queued request -> 504 after READ_TIMEOUT (the wait counts)" 504 "$(cat "$T/second.code")"
check_match "its queue wait is logged" 'stream [0-9]+: local connection slot after [0-9]+ ms in the queue' "$(cat "$T/client-hung.log")"
check_eq "refusals counted in /metrics" 2 "$(metric tunnelmux_daemon_local_queue_refused_total "$HM_PORT")"
for ((i = 0; i < 30; i++)); do grep -q 'queue drained' "$T/client-hung.log" && break; sleep 0.1; done
check_eq "one WARN at the start of the burst" 1 "$(grep -c 'refusing requests with 503' "$T/client-hung.log")"
check_contains "one WARN at the end with the count" "2 requests were refused" "$(grep 'queue drained' "$T/client-hung.log")"

echo "== cancel of a queued stream"
tcurl hung /hold -o /dev/null 2>/dev/null &
P1=$!
for ((i = 0; i < 50; i++)); do [ "$(metric 'tunnelmux_daemon_local_connections{state="in_use"}' "$HM_PORT")" = 1 ] && break; sleep 0.1; done
CURL_MAX_TIME=1 tcurl hung /cancelled -o /dev/null 2>/dev/null
for ((i = 0; i < 50; i++)); do [ "$(metric tunnelmux_daemon_local_queue_length "$HM_PORT")" = 0 ] && break; sleep 0.1; done
check_eq "user gone: its stream left the queue" 0 "$(metric tunnelmux_daemon_local_queue_length "$HM_PORT")"
check_eq "the first request still holds the connection" 1 "$(metric 'tunnelmux_daemon_local_connections{state="in_use"}' "$HM_PORT")"
check_contains "client saw the server's CLOSE for the queued stream" "CANCEL" "$(grep 'closed (CANCEL' "$T/client-hung.log")"
wait "$P1"

echo "== nothing listening, and a connect that hangs"
DEAD_PORT=$(free_port)
start_client dead "$DEAD_PORT" "${WSS[@]}" LOCAL_CONNECT_TIMEOUT=30s READ_TIMEOUT=60s
for ((i = 0; i < 50; i++)); do grep -q 'registered as dead' "$T/client-dead.log" && break; sleep 0.1; done
s0=$SECONDS
out=$(tcurl dead /x -o "$T/dead.body" -w '%{http_code}')
check_eq "nothing listening -> 502" 502 "$out"
check "nothing listening -> 502 at once (not after a timeout)" test $((SECONDS - s0)) -lt 10
check_contains "502 says it could not be reached" "could not be reached" "$(cat "$T/dead.body")"
rm -f "$T/na.port"
spawn NA_PID "$T/noaccept.log" python3 "$E2E_DIR/local_stall.py" noaccept "$T/na.port"
for ((i = 0; i < 50; i++)); do [ -s "$T/na.port" ] && break; sleep 0.1; done
NAM_PORT=$(free_port)
start_client full "$(cat "$T/na.port")" "${WSS[@]}" LOCAL_CONNECT_TIMEOUT=1s READ_TIMEOUT=60s METRICS_ADDR="127.0.0.1:$NAM_PORT"
for ((i = 0; i < 50; i++)); do grep -q 'registered as full' "$T/client-full.log" && break; sleep 0.1; done
s0=$SECONDS
out=$(tcurl full /x -o "$T/full.body" -w '%{http_code}')
check_eq "connect that hangs -> 502" 502 "$out"
check "connect that hangs -> 502 after LOCAL_CONNECT_TIMEOUT, not READ_TIMEOUT" test $((SECONDS - s0)) -lt 30
# the client's CLOSE reason goes to the server's log, not to the public body (PROTOCOL.md §9.5)
check_contains "the 502's reason names LOCAL_CONNECT_TIMEOUT (server log)" "LOCAL_CONNECT_TIMEOUT" \
    "$(grep 'request for full failed: the client sent CLOSE CONNECT_ERROR' "$T/server.log")"
check_eq "connect timeout counted" 1 "$(metric tunnelmux_daemon_local_connect_timeouts_total "$NAM_PORT")"

echo "== a queued POST waits without being read ahead of its credit, then arrives whole"
start_echo app || exit 1
EM_PORT=$(free_port)
start_client echo "$ECHO_PORT" "${WSS[@]}" LOCAL_MAX_CONNECTIONS=1 STREAM_WINDOW=256k METRICS_ADDR="127.0.0.1:$EM_PORT"
wait_ready echo / || exit 1
# a download read slowly by its user holds the only local connection (backpressure) for 4 s
tcurl echo /bytes/100000000 --limit-rate 200k --max-time 4 -o /dev/null 2>/dev/null &
P1=$!
for ((i = 0; i < 50; i++)); do [ "$(metric 'tunnelmux_daemon_local_connections{state="in_use"}' "$EM_PORT")" = 1 ] && break; sleep 0.1; done
gen_file "$T/post.bin" 8000000 queued-post
tcurl echo /post --data-binary "@$T/post.bin" -o "$T/post.json" -w '%{http_code}' >"$T/post.code" &
P2=$!
for ((i = 0; i < 50; i++)); do [ "$(metric tunnelmux_daemon_local_queue_length "$EM_PORT")" = 1 ] && break; sleep 0.1; done
sleep 1
in0=$(curl -sS "http://127.0.0.1:$EM_PORT/metrics" | sed -nE 's/^tunnelmux_daemon_tunnel_bytes_total\{direction="in"\} ([0-9]+)/\1/p')
check_eq "POST is queued" 1 "$(metric tunnelmux_daemon_local_queue_length "$EM_PORT")"
check "queued POST: the client received at most its credit (256 KiB + framing), not 8 MB (got $in0 bytes)" test "${in0:-99999999}" -lt 600000
wait "$P1" "$P2"
check_eq "queued POST answered" 200 "$(cat "$T/post.code")"
check_eq "queued POST body arrived whole" "$(sha256sum <"$T/post.bin" | cut -d' ' -f1)" "$(jq -r .body_sha256 "$T/post.json" 2>/dev/null)"
# the server sees the wait too: the client reports it in the response head (PROTOCOL.md §9.4)
post_line=$(grep 'client=echo ' "$T/server.log" | grep 'method=POST path=/post ' | tail -1)
qms=$(sed -nE 's/.* queue_wait_ms=([0-9]+).*/\1/p' <<<"$post_line")
echo "  info server access line of the queued POST: $post_line"
check "server access log: the queued POST's queue_wait_ms is over 500 (it waited behind a 4 s download)" test "${qms:-0}" -gt 500
check_match "server access log: the download that took the free connection waited 0 ms" ' queue_wait_ms=0( |$)' \
    "$(grep 'client=echo ' "$T/server.log" | grep 'path=/bytes/100000000 ' | tail -1)"
ADMIN_URL="http://127.0.0.1:$(admin_port)"
api=$(curl -sS --max-time 5 "$ADMIN_URL/api/clients")
check_eq "dashboard API: the client's local queue shows the waited request" 1 \
    "$(jq -r '.clients[] | select(.name == "echo") | .local_queue.waited' <<<"$api")"
check "dashboard API: longest wait over 500 ms" test "$(jq -r '.clients[] | select(.name == "echo") | .local_queue.wait_ms_max' <<<"$api")" -gt 500
check_match "dashboard API: recent requests carry their queue wait" '^[0-9]+$' \
    "$(jq -r '[.recent[] | select(.client == "echo" and .method == "POST")][0].queue_wait_ms' <<<"$api")"
check_eq "server /metrics: requests that waited, per client" 1 \
    "$(curl -sS --max-time 5 "$ADMIN_URL/metrics" | awk '$1 == "tunnelmux_client_local_queue_waited_total{client=\"echo\"}" {print $2}')"

echo "== a request that waits for a connection longer than READ_TIMEOUT -> 504"
E2M_PORT=$(free_port)
start_client echo2 "$ECHO_PORT" "${WSS[@]}" LOCAL_MAX_CONNECTIONS=1 READ_TIMEOUT=2s METRICS_ADDR="127.0.0.1:$E2M_PORT"
wait_ready echo2 / || exit 1
tcurl echo2 /bytes/100000000 --limit-rate 200k --max-time 6 -o /dev/null 2>/dev/null &
P1=$!
for ((i = 0; i < 50; i++)); do [ "$(metric 'tunnelmux_daemon_local_connections{state="in_use"}' "$E2M_PORT")" = 1 ] && break; sleep 0.1; done
out=$(tcurl echo2 /waits -o "$T/waits.body" -w '%{http_code}')
check_eq "queued longer than READ_TIMEOUT -> 504" 504 "$out"
check_contains "the 504's reason says no local connection became free (server log)" "no local connection" \
    "$(grep 'request for echo2 failed: the client sent CLOSE TIMEOUT' "$T/server.log")"
check_match "wait histogram: a wait above 1 s recorded" '^[1-9]' \
    "$(curl -sS "http://127.0.0.1:$E2M_PORT/metrics" | awk '$1 == "tunnelmux_daemon_local_queue_wait_seconds_sum" {print $2}')"
wait "$P1"

echo "== SIGTERM while a request waits in the queue: it is still served (drain)"
DM_PORT=$(free_port)
start_client drain "$ECHO_PORT" "${WSS[@]}" LOCAL_MAX_CONNECTIONS=1 METRICS_ADDR="127.0.0.1:$DM_PORT"
DRAIN_CLIENT=$CLIENT_PID
wait_ready drain / || exit 1
tcurl drain '/slow?ms=1500' -o /dev/null -w '%{http_code}' >"$T/drain1.code" 2>/dev/null &
P1=$!
for ((i = 0; i < 50; i++)); do [ "$(metric 'tunnelmux_daemon_local_connections{state="in_use"}' "$DM_PORT")" = 1 ] && break; sleep 0.1; done
tcurl drain /queued-at-sigterm -o /dev/null -w '%{http_code}' >"$T/drain2.code" 2>/dev/null &
P2=$!
for ((i = 0; i < 50; i++)); do [ "$(metric tunnelmux_daemon_local_queue_length "$DM_PORT")" = 1 ] && break; sleep 0.1; done
kill -TERM "$DRAIN_CLIENT"
wait "$P1" "$P2"
check_eq "request in flight at SIGTERM answered" 200 "$(cat "$T/drain1.code")"
check_eq "request queued at SIGTERM answered" 200 "$(cat "$T/drain2.code")"
wait "$DRAIN_CLIENT"
check_eq "client drained and exited 0" 0 "$?"

echo "== WebSockets do not use up LOCAL_MAX_CONNECTIONS=1"
spawn SVC_PID "$T/ws_service.log" $PY "$E2E_DIR/ws_service.py" --port-file "$T/ws.ports"
for ((i = 0; i < 100; i++)); do [ -s "$T/ws.ports" ] && break; sleep 0.1; done
read -r WS_PORT _ <"$T/ws.ports" || { fail "ws_service started"; exit 1; }
WM_PORT=$(free_port)
start_client ws "$WS_PORT" "${WSS[@]}" LOCAL_MAX_CONNECTIONS=1 METRICS_ADDR="127.0.0.1:$WM_PORT"
wait_ready ws /count || exit 1
WSP=()
for i in 1 2 3; do
    timeout 60 $PY "$E2E_DIR/ws_user.py" idle --port "$SERVER_PORT" --domain "$DOMAIN" --name ws --tls --cafile "$T/cert.pem" \
        --seconds 4 >"$T/wsidle.$i.out" 2>&1 &
    WSP+=($!)
done
for ((i = 0; i < 100; i++)); do [ "$(metric 'tunnelmux_daemon_local_connections{state="upgraded"}' "$WM_PORT")" = 3 ] && break; sleep 0.1; done
check_eq "three WebSockets open through a budget of one" 3 "$(metric 'tunnelmux_daemon_local_connections{state="upgraded"}' "$WM_PORT")"
out=$(tcurl ws /count -o "$T/count.json" -w '%{http_code}')
check_eq "plain request answered while they are open" 200 "$out"
check_eq "local service sees 3 open WebSockets" 3 "$(jq -r .open "$T/count.json" 2>/dev/null)"
ok=0
for p in "${WSP[@]}"; do wait "$p" && ok=$((ok + 1)); done
check_eq "the WebSockets still work afterwards" 3 "$ok"
for ((i = 0; i < 50; i++)); do [ "$(metric 'tunnelmux_daemon_local_connections{state="upgraded"}' "$WM_PORT")" = 0 ] && break; sleep 0.1; done
check_eq "upgraded gauge back to 0" 0 "$(metric 'tunnelmux_daemon_local_connections{state="upgraded"}' "$WM_PORT")"
exit 0
