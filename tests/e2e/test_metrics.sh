#!/usr/bin/env bash
# e2e: observability (issue 7) — /metrics counter deltas after known traffic (exact), the JSON API
# with two clients, admin auth (wrong/missing credentials rejected, POST guard), the admin
# endpoints not reachable through the public port, start-up refusals for an exposed admin listener
# without credentials, disconnect + reconnect counting, NAME_TAKEN refusals, the client daemon's
# own /metrics, JSON access-log lines and no secrets in any log.
source "$(dirname "$0")/lib.sh"
require_binaries

ADMIN_USER_V=ops
ADMIN_PASS_V='s3cret-Adm1n-pw'
ADMIN_PORT=$(free_port)
CMETRICS_PORT=$(free_port)
TOKEN=$E2E_TOKEN # the shared client token lib.sh gives start_server: it must never appear in a log

start_echo alpha || exit 1
ECHO_A=$ECHO_PORT
start_echo beta || exit 1
ECHO_B=$ECHO_PORT
# MAX_REPLICAS=1: a second daemon for a name is refused NAME_TAKEN (counted below), not a replica
start_server ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" ADMIN_USER="$ADMIN_USER_V" ADMIN_PASSWORD="$ADMIN_PASS_V" LOG_FORMAT=json \
    MAX_REPLICAS=1 || exit 1
start_client alpha "$ECHO_A" METRICS_ADDR="127.0.0.1:$CMETRICS_PORT" AUTH_TOKEN="$TOKEN"
start_client beta "$ECHO_B" AUTH_TOKEN="$TOKEN"
wait_ready alpha / || exit 1
wait_ready beta / || exit 1

ADMIN="http://127.0.0.1:$ADMIN_PORT"
acurl() { curl -sS --max-time 10 -u "$ADMIN_USER_V:$ADMIN_PASS_V" "$@"; }
scrape() { acurl "$ADMIN/metrics" >"$1"; }
# mval FILE SERIES: the value of one exact series line (e.g. 'tunnelmux_client_requests_total{client="alpha",code="2xx"}'), 0 if absent
mval() { awk -v k="$2" '$1 == k { v = $2 } END { print (v == "" ? 0 : v) }' "$1"; }
delta() { echo $(($(mval "$2" "$3") - $(mval "$1" "$3"))); }

echo "== /metrics deltas after known traffic"
sleep 0.3 # the readiness probes' access records are in
scrape "$T/m0"
check_contains "exposition has HELP/TYPE" "# TYPE tunnelmux_client_requests_total counter" "$(cat "$T/m0")"
gen_file "$T/up.bin" 300 up
expected_out_a=0
expected_in_a=0
# tc NAME PATH [ARGS]: request through the tunnel, adds size_download/size_upload to the totals of alpha
tc() {
    local name=$1 path=$2 r
    shift 2
    r=$(tcurl "$name" "$path" -o /dev/null -w '%{size_download} %{size_upload}' "$@")
    if [ "$name" = alpha ]; then
        expected_out_a=$((expected_out_a + ${r% *}))
        expected_in_a=$((expected_in_a + ${r#* }))
    fi
}
for i in 1 2 3 4 5; do tc alpha /bytes/1000; done
for i in 1 2 3; do tc alpha /post --data-binary "@$T/up.bin"; done
for i in 1 2; do tc alpha /status/404; done
tc alpha /status/503
for i in 1 2 3 4; do tc beta /status/201; done
for i in 1 2; do tcurl nosuch /x -o /dev/null; done
# access records land when h2o disposes the request: poll (bounded) until the last one is in, then verify exactness
for ((i = 0; i < 30; i++)); do
    scrape "$T/m1"
    [ "$(delta "$T/m0" "$T/m1" 'tunnelmux_unrouted_requests_total')" -ge 2 ] &&
        [ "$(delta "$T/m0" "$T/m1" 'tunnelmux_client_requests_total{client="beta",code="2xx"}')" -ge 4 ] && break
    sleep 0.1
done
sleep 0.5
scrape "$T/m1"
A='client="alpha"'
check_eq "alpha 2xx +8" 8 "$(delta "$T/m0" "$T/m1" "tunnelmux_client_requests_total{$A,code=\"2xx\"}")"
check_eq "alpha 4xx +2" 2 "$(delta "$T/m0" "$T/m1" "tunnelmux_client_requests_total{$A,code=\"4xx\"}")"
check_eq "alpha 5xx +1" 1 "$(delta "$T/m0" "$T/m1" "tunnelmux_client_requests_total{$A,code=\"5xx\"}")"
check_eq "beta 2xx +4" 4 "$(delta "$T/m0" "$T/m1" 'tunnelmux_client_requests_total{client="beta",code="2xx"}')"
check_eq "beta 4xx +0" 0 "$(delta "$T/m0" "$T/m1" 'tunnelmux_client_requests_total{client="beta",code="4xx"}')"
check_eq "total 2xx +12" 12 "$(delta "$T/m0" "$T/m1" 'tunnelmux_requests_total{code="2xx"}')"
check_eq "total 4xx +4 (2 alpha + 2 unrouted 404)" 4 "$(delta "$T/m0" "$T/m1" 'tunnelmux_requests_total{code="4xx"}')"
check_eq "unrouted +2" 2 "$(delta "$T/m0" "$T/m1" 'tunnelmux_unrouted_requests_total')"
check_eq "alpha request bytes in +900" 900 "$expected_in_a"
check_eq "alpha request bytes in (metric)" "$expected_in_a" "$(delta "$T/m0" "$T/m1" "tunnelmux_client_request_bytes_total{$A,direction=\"in\"}")"
check_eq "alpha response bytes out = sum of downloads ($expected_out_a)" "$expected_out_a" \
    "$(delta "$T/m0" "$T/m1" "tunnelmux_client_request_bytes_total{$A,direction=\"out\"}")"
check_eq "alpha duration histogram count +11" 11 "$(delta "$T/m0" "$T/m1" "tunnelmux_client_request_duration_seconds_count{$A}")"
check_eq "alpha histogram +Inf bucket +11" 11 "$(delta "$T/m0" "$T/m1" "tunnelmux_client_request_duration_seconds_bucket{$A,le=\"+Inf\"}")"
check_eq "alpha streams +11" 11 "$(delta "$T/m0" "$T/m1" "tunnelmux_client_streams_total{$A}")"
check_eq "connected clients" 2 "$(mval "$T/m1" tunnelmux_connected_clients)"
check_eq "alpha connected" 1 "$(mval "$T/m1" "tunnelmux_client_connected{$A}")"
check_eq "alpha active streams" 0 "$(mval "$T/m1" "tunnelmux_client_active_streams{$A}")"
tb=$(delta "$T/m0" "$T/m1" "tunnelmux_client_tunnel_bytes_total{$A,direction=\"out\"}")
check "alpha tunnel bytes out grew by more than one upload ($tb; zstd compresses the repeats)" test "$tb" -gt 300
check "flow-blocked series present" grep -q "^tunnelmux_client_flow_blocked_seconds_total{$A} " "$T/m1"
sleep 1
scrape "$T/m2"
check_eq "no further change without traffic" "$(mval "$T/m1" "tunnelmux_client_requests_total{$A,code=\"2xx\"}")" \
    "$(mval "$T/m2" "tunnelmux_client_requests_total{$A,code=\"2xx\"}")"

echo "== JSON API with two clients"
acurl "$ADMIN/api/clients" -o "$T/api.json"
check "API answer is JSON" jq -e . "$T/api.json"
check_eq "two clients listed" "alpha,beta" "$(jq -r '[.clients[].name] | sort | join(",")' "$T/api.json")"
check_eq "server connected_clients" 2 "$(jq -r .server.connected_clients "$T/api.json")"
check_match "alpha address" '^127\.0\.0\.1:[0-9]+$' "$(jq -r '.clients[] | select(.name == "alpha") | .address' "$T/api.json")"
check_match "alpha connected_since (ISO 8601)" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' \
    "$(jq -r '.clients[] | select(.name == "alpha") | .connected_since' "$T/api.json")"
check_eq "alpha requests_total matches /metrics" \
    "$(($(mval "$T/m2" "tunnelmux_client_requests_total{$A,code=\"2xx\"}") + $(mval "$T/m2" "tunnelmux_client_requests_total{$A,code=\"4xx\"}") + $(mval "$T/m2" "tunnelmux_client_requests_total{$A,code=\"5xx\"}")))" \
    "$(jq -r '.clients[] | select(.name == "alpha") | .requests_total' "$T/api.json")"
check_eq "beta 2xx in API" "$(mval "$T/m2" 'tunnelmux_client_requests_total{client="beta",code="2xx"}')" \
    "$(jq -r '.clients[] | select(.name == "beta") | .requests_by_class["2xx"]' "$T/api.json")"
check_eq "alpha has rates, streams, rtt fields" "true" \
    "$(jq -r '.clients[] | select(.name == "alpha") | (has("rates") and has("streams_active") and has("rtt_ms") and has("rtt_min_ms") and has("rtt_smoothed_ms") and has("flow_blocked_ms") and (.stall_ms | has("credit") and has("peer") and has("socket")) and (.worst_streams | type == "array"))' "$T/api.json")"
check_eq "recent requests include the 503" "/status/503" "$(jq -r '[.recent[] | select(.status == 503)][0].path' "$T/api.json")"
# a path with bytes that are not UTF-8 (raw 0xff): the API stays valid JSON, the byte shown as '?'
python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(b"GET /raw\xff\xfe HTTP/1.1\r\nHost: alpha.'"$DOMAIN"':" + sys.argv[1].encode() + b"\r\nConnection: close\r\n\r\n"); s.recv(65536); s.close()' "$SERVER_PORT"
sleep 0.3
check_eq "non-UTF-8 path sanitised in the API" "/raw??" "$(acurl "$ADMIN/api/clients" | jq -r '[.recent[] | select(.path | startswith("/raw"))][0].path')"

echo "== admin authentication"
check_eq "no credentials -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$ADMIN/metrics")"
check_contains "401 asks for basic auth" 'Basic realm="tunnelmux admin"' "$(curl -s -D - -o /dev/null "$ADMIN/api/clients" | tr -d '\r')"
check_eq "wrong password -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -u "$ADMIN_USER_V:wrong" "$ADMIN/api/clients")"
check_eq "wrong user -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -u "root:$ADMIN_PASS_V" "$ADMIN/api/clients")"
check_eq "password prefix -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -u "$ADMIN_USER_V:${ADMIN_PASS_V%?}" "$ADMIN/")"
check_eq "dashboard with credentials -> 200" 200 "$(acurl -o /dev/null -w '%{http_code}' "$ADMIN/")"
check_contains "dashboard sends a CSP" "content-security-policy: default-src 'self'" "$(acurl -D - -o /dev/null "$ADMIN/" | tr -d '\r')"
check_eq "wrong credentials cannot disconnect" 401 \
    "$(curl -s -o /dev/null -w '%{http_code}' -u "$ADMIN_USER_V:wrong" -X POST -H 'X-TM-Admin: 1' "$ADMIN/api/clients/beta/disconnect")"
check_eq "POST without X-TM-Admin -> 403" 403 "$(acurl -o /dev/null -w '%{http_code}' -X POST "$ADMIN/api/clients/beta/disconnect")"
check_eq "GET disconnect -> 405" 405 "$(acurl -o /dev/null -w '%{http_code}' "$ADMIN/api/clients/beta/disconnect")"
check_eq "unknown client -> 404" 404 "$(acurl -o /dev/null -w '%{http_code}' -X POST -H 'X-TM-Admin: 1' "$ADMIN/api/clients/nobody/disconnect")"

echo "== admin not reachable through the public port"
pub=$(curl -s --max-time 5 "http://127.0.0.1:$SERVER_PORT/metrics" -u "$ADMIN_USER_V:$ADMIN_PASS_V")
check_not_contains "public port /metrics (bare IP) is not the exposition" "tunnelmux_connected_clients" "$pub"
pub=$(curl -s --max-time 5 -H "Host: 127.0.0.1:$ADMIN_PORT" "http://127.0.0.1:$SERVER_PORT/api/clients" -u "$ADMIN_USER_V:$ADMIN_PASS_V")
check_not_contains "public port with the admin Host header is not the API" '"clients"' "$pub"
pub=$(tcurl alpha /metrics -u "$ADMIN_USER_V:$ADMIN_PASS_V")
check_contains "NAME.DOMAIN/metrics goes to the client's service" '"path": "/metrics"' "$pub"
check_not_contains "... and not to the exposition" "tunnelmux_connected_clients" "$pub"

echo "== client daemon metrics (--metrics-addr)"
cm=$(curl -s --max-time 5 "http://127.0.0.1:$CMETRICS_PORT/metrics")
check_contains "daemon exposition" "tunnelmux_daemon_connected 1" "$cm"
req_before=$(awk '$1 == "tunnelmux_daemon_requests_total" {print $2}' <<<"$cm")
for i in 1 2 3; do tcurl alpha /status/202 -o /dev/null; done
cm=$(curl -s --max-time 5 "http://127.0.0.1:$CMETRICS_PORT/metrics")
check_eq "daemon requests +3" 3 "$(($(awk '$1 == "tunnelmux_daemon_requests_total" {print $2}' <<<"$cm") - req_before))"
check_match "daemon 2xx responses counted" 'tunnelmux_daemon_responses_total\{code="2xx"\} [1-9]' "$cm"
check_eq "daemon other paths 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CMETRICS_PORT/")"

echo "== refusals and reconnects"
scrape "$T/m3"
start_client alpha "$ECHO_A" MAX_RETRIES=0
DUP_PID=$CLIENT_PID
for ((i = 0; i < 50; i++)); do
    kill -0 "$DUP_PID" 2>/dev/null || break
    sleep 0.1
done
scrape "$T/m4"
check_eq "NAME_TAKEN refusal counted" 1 "$(delta "$T/m3" "$T/m4" 'tunnelmux_refusals_total{reason="NAME_TAKEN"}')"
code=$(acurl -o "$T/disc.json" -w '%{http_code}' -X POST -H 'X-TM-Admin: 1' "$ADMIN/api/clients/beta/disconnect")
check_eq "disconnect beta -> 200" 200 "$code"
check_eq "disconnect answer names the client" beta "$(jq -r .disconnected "$T/disc.json")"
for ((i = 0; i < 60; i++)); do
    scrape "$T/m5"
    [ "$(mval "$T/m5" 'tunnelmux_client_reconnects_total{client="beta"}')" -ge 1 ] && break
    sleep 0.1
done
check_eq "beta reconnected once (RECONNECT_DELAY=1)" 1 "$(mval "$T/m5" 'tunnelmux_client_reconnects_total{client="beta"}')"
check_eq "server reconnects +1" 1 "$(delta "$T/m3" "$T/m5" 'tunnelmux_reconnects_total')"
check_eq "beta counters survive the reconnect" "$(mval "$T/m3" 'tunnelmux_client_requests_total{client="beta",code="2xx"}')" \
    "$(mval "$T/m5" 'tunnelmux_client_requests_total{client="beta",code="2xx"}')"

echo "== logs"
check "every server log line is JSON" jq -e . "$T/server.log"
acc=$(jq -c 'select(.ev == "access" and .path == "/status/503")' "$T/server.log" | head -1)
check_eq "access line fields" "alpha GET 503 0 1" "$(jq -r '"\(.client) \(.method) \(.status) \(.bytes_in) \(.stream != "0")" | sub("true";"1")' <<<"$acc")"
check_match "access line has duration and bytes_out" '"bytes_out":"[0-9]+".*"duration_ms":"[0-9.]+"' "$acc"
check_eq "one access line per public request (unrouted too)" 2 "$(jq -r 'select(.ev == "access" and .client == "-" and .path == "/x") | .status' "$T/server.log" | wc -l)"
check_contains "registration logged" '"msg":"tunnel registered: name=beta' "$(cat "$T/server.log")"
check_contains "refusal logged with reason" 'reason=NAME_TAKEN' "$(cat "$T/server.log")"
check_contains "lost tunnel logged with reason" 'tunnel lost: name=beta' "$(cat "$T/server.log")"
check_contains "wrong admin credentials logged" 'admin: wrong credentials from 127.0.0.1' "$(cat "$T/server.log")"
# four wrong answers above: one more is free, the next starts a 1 s wait (AUTH_FAIL_DELAY)
curl -s -o /dev/null -u "$ADMIN_USER_V:guess1" "$ADMIN/api/clients"
check_eq "the 6th wrong admin password -> 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -u "$ADMIN_USER_V:guess2" "$ADMIN/api/clients")"
check_eq "right admin credentials during the wait -> 429" 429 "$(curl -s -o /dev/null -w '%{http_code}' -u "$ADMIN_USER_V:$ADMIN_PASS_V" "$ADMIN/api/clients")"
sleep 1.2
check_eq "after the wait -> 200" 200 "$(curl -s -o /dev/null -w '%{http_code}' -u "$ADMIN_USER_V:$ADMIN_PASS_V" "$ADMIN/api/clients")"
check_eq "the 429 is counted" "tunnelmux_basic_auth_throttled_total 1" "$(acurl "$ADMIN/metrics" | grep '^tunnelmux_basic_auth_throttled_total')"
b64=$(printf '%s' "$ADMIN_USER_V:$ADMIN_PASS_V" | base64)
for f in "$T/server.log" "$T"/client-*.log; do
    check_not_contains "no admin password in $(basename "$f")" "$ADMIN_PASS_V" "$(cat "$f")"
    check_not_contains "no Authorization value in $(basename "$f")" "$b64" "$(cat "$f")"
    check_not_contains "no auth token in $(basename "$f")" "$TOKEN" "$(cat "$f")"
done

echo "== ADMIN_TLS: the admin listener over TLS with the public certificate"
make_cert "$T"
TA_PORT=$(free_port)
spawn TA_PID "$T/server-admintls.log" env PORT="$(free_port)" DOMAIN="$DOMAIN" LISTEN_ADDR=127.0.0.1 ADMIN_ADDR="127.0.0.1:$TA_PORT" \
    ADMIN_TLS=1 TLS_CERT="$T/cert.pem" TLS_KEY="$T/key.pem" ADMIN_USER=ops ADMIN_PASSWORD=tls-pw AUTH_TOKEN="$E2E_TOKEN" "$SERVER_BIN"
if wait_port "$TA_PORT" 10; then
    check_eq "metrics over https" 200 \
        "$(curl -s --max-time 5 --cacert "$T/cert.pem" -u ops:tls-pw -o /dev/null -w '%{http_code}' "https://127.0.0.1:$TA_PORT/metrics")"
    check_eq "... over h2 too" "2 200" \
        "$(curl -s --max-time 5 --http2 --cacert "$T/cert.pem" -u ops:tls-pw -o /dev/null -w '%{http_version} %{http_code}' "https://127.0.0.1:$TA_PORT/api/clients")"
    check_eq "no cleartext answer" 000 "$(curl -s --max-time 3 -u ops:tls-pw -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TA_PORT/metrics")"
    check_contains "logged as TLS" "admin listener: 127.0.0.1:$TA_PORT (TLS) (basic auth)" "$(cat "$T/server-admintls.log")"
else
    fail "TLS admin listener up" "$(tail -3 "$T/server-admintls.log")"
fi
stop_pid "$TA_PID"

echo "== start-up checks"
# bad ADMIN_* settings stop the server at once with a clear message (exit 2)
startup() { # startup LOGNAME VAR=VALUE...: runs the server expecting a start-up error; prints "rc: message"
    local lf="$T/startup-$1.log"
    shift
    timeout 5 env PORT="$(free_port)" DOMAIN="$DOMAIN" LISTEN_ADDR=127.0.0.1 AUTH_TOKEN="$E2E_TOKEN" "$@" "$SERVER_BIN" >"$lf" 2>&1
    echo "$?: $(tail -1 "$lf")"
}
out=$(startup exposed ADMIN_ADDR=0.0.0.0:$(free_port))
check_match "0.0.0.0 without credentials refused" '^2: .*ADMIN_ADDR: .* is not a loopback address' "$out"
out=$(startup exposed6 "ADMIN_ADDR=[::]:$(free_port)")
check_match ":: without credentials refused" '^2: .*not a loopback address' "$out"
out=$(startup useronly ADMIN_ADDR=127.0.0.1:$(free_port) ADMIN_USER=x)
check_match "ADMIN_TLS without a certificate refused" '^2: .*ADMIN_TLS: needs TLS_CERT and TLS_KEY' \
    "$(startup admintls ADMIN_ADDR=127.0.0.1:$(free_port) ADMIN_TLS=1)"
check_match "user without password refused" '^2: .*ADMIN_PASSWORD: must be set together with ADMIN_USER' "$out"
out=$(startup badaddr ADMIN_ADDR=localhost)
check_match "malformed ADMIN_ADDR refused" '^2: .*ADMIN_ADDR: localhost is not IP:PORT' "$out"
out=$(startup busy ADMIN_ADDR=127.0.0.1:$ADMIN_PORT)
check_match "admin port in use refused" '^2: .*ADMIN_ADDR: cannot listen' "$out"
