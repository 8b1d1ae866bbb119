#!/usr/bin/env bash
# e2e (issue 19): high availability on one machine, without a balancer.
#  - /healthz on the admin listener: 200 while serving, no credentials needed even with ADMIN_USER
#    (the rest of the admin API still needs them); 503 during a drain is in test_operate_drain.
#  - replicas: two daemons for one name with the same token, each in front of its own service
#    that answers with its own identity: both identities are seen; /api/clients and /metrics show
#    2 tunnels for the name; a third daemon with another (valid) token is refused NAME_TAKEN;
#    MAX_REPLICAS=2 refuses a third one with the same token; one replica stopping (SIGTERM) leaves
#    the name served by the other without a failed request.
#  - one daemon, SERVER_URL listing two servers: a tunnel to each (both serve the name), the
#    daemon's /metrics shows each tunnel's state; kill -9 of one server leaves the other serving
#    and the daemon up; the restarted server gets its tunnel back on its own.
#  - safe retry: kill -9 of one replica while requests wait for their responses: every GET, and
#    every POST with Idempotency-Key, is retried on the other replica (200); a POST without the key
#    on the killed replica is not (502); tunnelmux_requests_retried_total counts the retries.
#  - one URL whose host resolves to several addresses (a private /etc/hosts in a mount namespace
#    of the daemon, servers on 127.0.0.1-3, one port): a tunnel per address; an address added to
#    the hosts file gets a tunnel within RESOLVE_INTERVAL, a removed one is left (GOAWAY).
#  - SERVER_URL as a comma-separated list: a malformed element stops the client at start-up with
#    a one-line error naming the element (it used to be read as one URL and retried forever).
source "$(dirname "$0")/lib.sh"
require_binaries

echo "== /healthz"
start_server ADMIN_ADDR=127.0.0.1:0 ADMIN_USER=ops ADMIN_PASSWORD=secret-pw || exit 1
AP=$(admin_port) || exit 1
hz() { curl -s -o "$T/hz.body" -w '%{http_code}' --max-time 5 "$@"; }
check_eq "GET /healthz without credentials -> 200" 200 "$(hz "http://127.0.0.1:$AP/healthz")"
check_eq "healthz body" "ok" "$(cat "$T/hz.body")"
check_eq "HEAD /healthz -> 200" 200 "$(hz -I "http://127.0.0.1:$AP/healthz")"
check_eq "POST /healthz -> 405" 405 "$(hz -X POST "http://127.0.0.1:$AP/healthz")"
check_eq "other admin paths still need credentials" 401 "$(hz "http://127.0.0.1:$AP/metrics")"
check_eq "/healthz/x is not the health check (auth first)" 401 "$(hz "http://127.0.0.1:$AP/healthz/x")"
check_eq "with credentials /metrics -> 200" 200 "$(hz -u ops:secret-pw "http://127.0.0.1:$AP/metrics")"
# HEALTH_GRACE: 'starting' right after start, then 'ok'
HZ_PORT=$SERVER_PORT HZ_PID=$SERVER_PID
mv "$T/server.log" "$T/server-hz1.log"
AP2=$(free_port)
start_server ADMIN_ADDR="127.0.0.1:$AP2" HEALTH_GRACE=2s || exit 1
check_eq "HEALTH_GRACE: /healthz right after start -> 503" 503 "$(hz "http://127.0.0.1:$AP2/healthz")"
check_eq "HEALTH_GRACE: body" "starting" "$(cat "$T/hz.body")"
for ((i = 0; i < 50; i++)); do [ "$(hz "http://127.0.0.1:$AP2/healthz")" = 200 ] && break; sleep 0.1; done
check_eq "HEALTH_GRACE over -> 200" 200 "$(hz "http://127.0.0.1:$AP2/healthz")"
stop_pid "$SERVER_PID"
mv "$T/server.log" "$T/server-hz2.log"
SERVER_PORT=$HZ_PORT SERVER_PID=$HZ_PID

echo "== SERVER_URL list: malformed elements"
bad_list() { # LIST EXPECTED-SUBSTRING
    local out rc
    out=$(timeout 10 env SERVER_URL="$1" CLIENT_ID=x AUTH_TOKEN=t "$CLIENT_BIN" 2>&1)
    rc=$?
    check_eq "SERVER_URL='$1': exit 2" 2 "$rc"
    check_contains "SERVER_URL='$1': says $2" "$2" "$out"
}
bad_list "ws://127.0.0.1:$SERVER_PORT,ws//127.0.0.1:1" 'URL 2 of the list ("ws//127.0.0.1:1"): scheme must be ws:// or wss://'
bad_list "ws://127.0.0.1:$SERVER_PORT,,ws://127.0.0.1:1" "URL 2 of the list is empty"
bad_list "ws://127.0.0.1:$SERVER_PORT," "URL 2 of the list is empty"
bad_list "ws://127.0.0.1:$SERVER_PORT,ws://127.0.0.1:$SERVER_PORT/_tunnel" "repeats URL 1"
bad_list "ws://127.0.0.1:$SERVER_PORT ws://127.0.0.1:1" "control character or space"

echo "== one daemon, a tunnel to each of two servers"
stop_pid "$SERVER_PID"
start_echo one || exit 1
PORT_ONE=$ECHO_PORT
start_server || exit 1
S1_PORT=$SERVER_PORT S1_PID=$SERVER_PID
mv "$T/server.log" "$T/server-s1.log"
start_server || exit 1
S2_PORT=$SERVER_PORT S2_PID=$SERVER_PID
mv "$T/server.log" "$T/server-s2.log"
CMP=$(free_port)
start_client multi "$PORT_ONE" SERVER_URL="ws://127.0.0.1:$S1_PORT, ws://127.0.0.1:$S2_PORT" METRICS_ADDR="127.0.0.1:$CMP"
CM_PID=$CLIENT_PID
# via PORT: a request for the name through one given server
via() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 --resolve "multi.$DOMAIN:$1:127.0.0.1" "http://multi.$DOMAIN:$1/x"; }
for ((i = 0; i < 75; i++)); do [ "$(via "$S1_PORT")" = 200 ] && [ "$(via "$S2_PORT")" = 200 ] && break; sleep 0.2; done
check_eq "server 1 serves the name" 200 "$(via "$S1_PORT")"
check_eq "server 2 serves the name" 200 "$(via "$S2_PORT")"
cm=$(curl -s --max-time 5 "http://127.0.0.1:$CMP/metrics")
check_contains "daemon metrics: 2 tunnels up" "tunnelmux_daemon_tunnels_up 2" "$cm"
check_contains "daemon metrics: tunnel 1 up" "tunnelmux_daemon_tunnel_state{server=\"1\",url=\"127.0.0.1:$S1_PORT\",address=\"127.0.0.1\",state=\"up\"} 1" "$cm"
check_contains "daemon metrics: tunnel 2 up" "tunnelmux_daemon_tunnel_state{server=\"2\",url=\"127.0.0.1:$S2_PORT\",address=\"127.0.0.1\",state=\"up\"} 1" "$cm"
kill -9 "$S1_PID"
wait "$S1_PID" 2>/dev/null
fails=0
for ((i = 0; i < 20; i++)); do [ "$(via "$S2_PORT")" = 200 ] || fails=$((fails + 1)); done
check_eq "server 1 killed: 20 requests through server 2, none failed" 0 "$fails"
kill -0 "$CM_PID" 2>/dev/null && pass "daemon still running" || fail "daemon still running"
for ((i = 0; i < 50; i++)); do
    cm=$(curl -s --max-time 5 "http://127.0.0.1:$CMP/metrics")
    [[ "$cm" == *"tunnelmux_daemon_tunnels_up 1"* ]] && break
    sleep 0.1
done
check_contains "daemon metrics: 1 tunnel up" "tunnelmux_daemon_tunnels_up 1" "$cm"
check_contains "daemon metrics: still connected" "tunnelmux_daemon_connected 1" "$cm"
check_match "daemon metrics: tunnel 1 not up" "tunnelmux_daemon_tunnel_state\{server=\"1\",[^}]*state=\"up\"\} 0" "$cm"
# the same port again: the daemon's tunnel 1 redials on its own (RECONNECT_DELAY=1)
SERVER_PORT_WANTED=$S1_PORT start_server || exit 1
S1_PID=$SERVER_PID
for ((i = 0; i < 75; i++)); do [ "$(via "$S1_PORT")" = 200 ] && break; sleep 0.2; done
check_eq "restarted server 1 serves the name again" 200 "$(via "$S1_PORT")"
check_eq "server 2 still serves" 200 "$(via "$S2_PORT")"
stop_pid "$CM_PID"
stop_pid "$S1_PID"
stop_pid "$S2_PID"
mv "$T/server.log" "$T/server-s1b.log"

echo "== one host name, several addresses: a tunnel to each, re-resolved every RESOLVE_INTERVAL"
if unshare --mount true 2>/dev/null; then
    EP=$(free_port)
    declare -a EPID
    for k in 1 2 3; do
        SERVER_PORT_WANTED=$EP start_server LISTEN_ADDR="127.0.0.$k" || exit 1
        EPID[$k]=$SERVER_PID
        mv "$T/server.log" "$T/server-ep$k.log"
    done
    printf '127.0.0.1 edge.%s\n127.0.0.2 edge.%s\n' "$DOMAIN" "$DOMAIN" >"$T/hosts"
    # the daemon sees $T/hosts as /etc/hosts (its own mount namespace); rewriting the file in place
    # is a DNS change for it
    cat >"$T/client-ns.sh" <<SH
#!/bin/sh
mount --bind "$T/hosts" /etc/hosts && exec "$CLIENT_BIN"
SH
    chmod +x "$T/client-ns.sh"
    REAL_CLIENT_BIN=$CLIENT_BIN
    CLIENT_BIN=$T/client-ns-run.sh # start_client runs "$CLIENT_BIN" as one word
    printf '#!/bin/sh\nexec unshare --mount %s\n' "$T/client-ns.sh" >"$CLIENT_BIN"
    chmod +x "$CLIENT_BIN"
    start_client dns "$PORT_ONE" SERVER_URL="ws://edge.$DOMAIN:$EP" RESOLVE_INTERVAL=1s HA_CONNECTIONS=4
    DNS_PID=$CLIENT_PID
    CLIENT_BIN=$REAL_CLIENT_BIN
    viae() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 --resolve "dns.$DOMAIN:$EP:127.0.0.$1" "http://dns.$DOMAIN:$EP/x"; }
    for ((i = 0; i < 75; i++)); do [ "$(viae 1)" = 200 ] && [ "$(viae 2)" = 200 ] && break; sleep 0.2; done
    check_eq "address 1 of the name: tunnel, serves" 200 "$(viae 1)"
    check_eq "address 2 of the name: tunnel, serves" 200 "$(viae 2)"
    check_eq "address 3 not in DNS yet: no tunnel (404)" 404 "$(viae 3)"
    printf '127.0.0.1 edge.%s\n127.0.0.2 edge.%s\n127.0.0.3 edge.%s\n' "$DOMAIN" "$DOMAIN" "$DOMAIN" >"$T/hosts"
    for ((i = 0; i < 50; i++)); do [ "$(viae 3)" = 200 ] && break; sleep 0.2; done
    check_eq "address 3 added to DNS: tunnel within RESOLVE_INTERVAL, serves" 200 "$(viae 3)"
    printf '127.0.0.2 edge.%s\n127.0.0.3 edge.%s\n' "$DOMAIN" "$DOMAIN" >"$T/hosts"
    for ((i = 0; i < 50; i++)); do [ "$(viae 1)" = 502 ] && break; sleep 0.2; done
    check_eq "address 1 removed from DNS: its tunnel is left (502: known, not connected)" 502 "$(viae 1)"
    check_eq "address 2 still serves" 200 "$(viae 2)"
    check_eq "address 3 still serves" 200 "$(viae 3)"
    check_contains "daemon logged leaving the address" "no longer resolves to 127.0.0.1" "$(cat "$T/client-dns.log")"
    stop_pid "$DNS_PID"
    for k in 1 2 3; do stop_pid "${EPID[$k]}"; done
else
    echo "SKIP: no mount namespaces here (unshare --mount)"
fi

echo "== replicas"
start_echo a || exit 1
PORT_A=$ECHO_PORT
start_echo b || exit 1
PORT_B=$ECHO_PORT
TOK_OTHER=other-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s app\n%s app\n' "$E2E_TOKEN" "$TOK_OTHER" >"$T/tokens"
start_server AUTH_TOKEN= AUTH_TOKENS_FILE="$T/tokens" MAX_REPLICAS=2 || exit 1
AP=$(admin_port) || exit 1
# start_app TAG LOCAL_PORT [VAR=VALUE...]: a daemon for the name app, logging into client-app-TAG.log
# (start_client's file is renamed once the child created it; the process keeps writing to it)
start_app() {
    local tag=$1 i
    shift
    rm -f "$T/client-app.log"
    start_client app "$@"
    for ((i = 0; i < 100; i++)); do [ -e "$T/client-app.log" ] && break; sleep 0.02; done
    mv "$T/client-app.log" "$T/client-app-$tag.log"
}
start_app a "$PORT_A"
CA=$CLIENT_PID
wait_ready app /who 15 || exit 1
start_app b "$PORT_B"
CB=$CLIENT_PID
for ((i = 0; i < 100; i++)); do grep -q "name=app .*replicas=2" "$T/server.log" && break; sleep 0.1; done
check_contains "second daemon with the same token registered as a replica" "replicas=2" "$(cat "$T/server.log")"
# who N: N requests, counts per identity ("a", "b", or the status)
who_counts() {
    local i out
    for ((i = 0; i < $1; i++)); do
        out=$(CURL_MAX_TIME=5 tcurl app /who -w '\n%{http_code}' 2>/dev/null)
        case "$out" in
        *'"server": "a"'*) echo a ;;
        *'"server": "b"'*) echo b ;;
        *) echo "${out##*$'\n'}" ;;
        esac
    done | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}'
}
counts=$(who_counts 40)
echo "MEASURED: 40 sequential requests over 2 replicas: $counts"
check_match "replica a served" "a=[0-9]+" "$counts"
check_match "replica b served" "b=[0-9]+" "$counts"
check_not_contains "no failed request" "=" "$(echo "$counts" | tr ' ' '\n' | grep -vE '^(a|b)=' || true)"
api=$(curl -s --max-time 5 "http://127.0.0.1:$AP/api/clients")
check_match "api: the name has 2 replicas" '"name":"app"[^}]*"replicas":2' "$api"
check_match "api: both tunnels listed" '"tunnels":\[\{"address":"127.0.0.1:[0-9]+"[^]]*\},\{"address":"127.0.0.1:[0-9]+"' "$api"
check_match "api: a second replica is not counted as a reconnect" '"server":\{[^}]*"tunnels_accepted":2,"reconnects":0' "$api"
check_contains "metrics: tunnelmux_client_replicas" 'tunnelmux_client_replicas{client="app"} 2' \
    "$(curl -s --max-time 5 "http://127.0.0.1:$AP/metrics")"

echo "== another token cannot join the name; MAX_REPLICAS holds"
start_app other "$PORT_A" AUTH_TOKEN="$TOK_OTHER"
CO=$CLIENT_PID
start_app third "$PORT_A"
C3=$CLIENT_PID
for ((i = 0; i < 100; i++)); do
    [ "$(grep -c NAME_TAKEN "$T/client-app-other.log")" -ge 1 ] && [ "$(grep -c NAME_TAKEN "$T/client-app-third.log")" -ge 1 ] && break
    sleep 0.1
done
check_contains "daemon with another token: NAME_TAKEN" "NAME_TAKEN" "$(cat "$T/client-app-other.log")"
check_contains "server log says another credential" "with another credential" "$(cat "$T/server.log")"
check_contains "third daemon with the same token: NAME_TAKEN (MAX_REPLICAS=2)" "NAME_TAKEN" "$(cat "$T/client-app-third.log")"
check_contains "server log names MAX_REPLICAS" "MAX_REPLICAS=2 tunnels hold it" "$(cat "$T/server.log")"
check_not_contains "no takeover of live replicas" "tunnel takeover" "$(cat "$T/server.log")"
stop_pid "$CO"
stop_pid "$C3"
counts=$(who_counts 10)
check_not_contains "refused daemons changed nothing (no request failed)" "=" "$(echo "$counts" | tr ' ' '\n' | grep -vE '^(a|b)=' || true)"

# replicas_up N: waits until the server lists N tunnels for app
replicas_up() {
    local i
    for ((i = 0; i < 100; i++)); do
        [[ "$(curl -s --max-time 5 "http://127.0.0.1:$AP/api/clients")" == *'"replicas":'"$1"* ]] && return 0
        sleep 0.1
    done
    fail "app has $1 replicas" "$(curl -s --max-time 5 "http://127.0.0.1:$AP/api/clients" | head -c 300)"
    return 1
}
retried() { curl -s --max-time 5 "http://127.0.0.1:$AP/metrics" | awk '$1 == "tunnelmux_requests_retried_total" {print $2}'; }
# load KIND N: N concurrent requests to /slow (1.5 s) in the background, statuses in $T/load-KIND-*.code
load() {
    local kind=$1 n=$2 i
    LOAD_PIDS=()
    for ((i = 0; i < n; i++)); do
        case "$kind" in
        get) CURL_MAX_TIME=20 tcurl app "/slow?ms=1500&i=$i" -o /dev/null -w '%{http_code}' >"$T/load-$kind-$i.code" 2>/dev/null & ;;
        post) CURL_MAX_TIME=20 tcurl app "/slow?ms=1500&i=$i" -X POST -o /dev/null -w '%{http_code}' >"$T/load-$kind-$i.code" 2>/dev/null & ;;
        postkey) CURL_MAX_TIME=20 tcurl app "/slow?ms=1500&i=$i" -X POST -H "Idempotency-Key: k-$i" -o /dev/null -w '%{http_code}' \
            >"$T/load-$kind-$i.code" 2>/dev/null & ;;
        esac
        LOAD_PIDS+=($!)
    done
}
codes() { for f in "$T"/load-"$1"-*.code; do cat "$f"; echo; done | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}'; }

echo "== kill -9 of a replica with GETs waiting: safe retry"
r0=$(retried)
load get 12
sleep 0.7 # every request is on one of the replicas, waiting for /slow
kill -9 "$CB"
wait "${LOAD_PIDS[@]}"
r1=$(retried)
echo "MEASURED: 12 GETs in flight, replica b killed (-9): $(codes get); retries counted $((r1 - r0))"
check_eq "every GET answered 200" "200=12 " "$(codes get)"
if [ $((r1 - r0)) -ge 1 ]; then pass "retries counted ($((r1 - r0)))"; else fail "retries counted" "$r0 -> $r1"; fi
check_contains "server logged the retry" "retried on" "$(cat "$T/server.log")"
start_app b2 "$PORT_B"
CB=$CLIENT_PID
replicas_up 2 || exit 1

echo "== kill -9 of a replica with POSTs waiting: only Idempotency-Key ones are retried"
load post 6
P1=("${LOAD_PIDS[@]}")
load postkey 6
sleep 0.7
kill -9 "$CB"
wait "${P1[@]}" "${LOAD_PIDS[@]}"
echo "MEASURED: 6 POSTs + 6 POSTs with Idempotency-Key, replica b killed: post: $(codes post) postkey: $(codes postkey)"
check_eq "every POST with Idempotency-Key answered 200" "200=6 " "$(codes postkey)"
check_match "POSTs without the key on the killed replica: 502, not retried" "502=[1-6]" "$(codes post)"
start_app b3 "$PORT_B"
CB=$CLIENT_PID
replicas_up 2 || exit 1

echo "== one replica leaves (SIGTERM): the other serves"
kill -TERM "$CA"
for ((i = 0; i < 50; i++)); do kill -0 "$CA" 2>/dev/null || break; sleep 0.1; done
counts=$(who_counts 20)
echo "MEASURED: 20 requests after replica a left: $counts"
check_eq "only replica b serves, no failure" "b=20 " "$counts"
exit 0
