#!/usr/bin/env bash
# e2e (issue 19): scale-out behind a real HAProxy (Debian's haproxy 2.6) on loopback. Three
# tunnelmux-server processes on 127.0.0.1-127.0.0.3 (one port), HAProxy on one public port
# health-checking each server's GET /healthz, two client daemons for one name (same token:
# replicas), each with a tunnel to every server: SERVER_URL is one host name that resolves to the
# servers' addresses (a hosts file the daemons see as /etc/hosts in their own mount namespace), and
# each daemon is in front of its own local service that answers with its own identity. Bounded
# request loads (tests/e2e/ha_load.py) count every non-2xx:
#  - both replicas serve through every path (both identities seen, zero failures);
#  - kill -9 of one server mid-load: at most the requests in flight on it fail; a load started
#    after HAProxy's check interval sees none; the daemons keep serving through the others;
#  - kill -9 of one daemon mid-load: GETs see no error (the servers' safe retry), except those whose
#    response was already under way on it (aborted, counted from the servers' access log);
#  - rolling restart of every server with SIGTERM, one after the other, under load: zero failed
#    requests, and large downloads running across the restarts arrive intact (SHA-256);
#  - a fourth server started and added to the name's DNS gets tunnels from both daemons within
#    RESOLVE_INTERVAL, and HAProxy sends it traffic;
#  - a third daemon with another token cannot join the name.
# Assertions are on counts, never on timings. The tested haproxy.cfg is the one in docs/SCALING.md.
source "$(dirname "$0")/lib.sh"
require_binaries
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
if [ ! -x "$HAPROXY" ]; then
    echo "SKIP: haproxy not installed (scripts/install-deps.sh installs it)"
    pass "skipped: no haproxy"
    exit 0
fi
if ! unshare --mount true 2>/dev/null; then
    echo "SKIP: no mount namespaces here (unshare --mount, needed for the daemons' private DNS)"
    pass "skipped: no unshare --mount"
    exit 0
fi
NAME=app
HOST="$NAME.$DOMAIN"
LOAD="python3 $E2E_DIR/ha_load.py"

start_echo a || exit 1
PORT_A=$ECHO_PORT
start_echo b || exit 1
PORT_B=$ECHO_PORT

# server K listens on 127.0.0.K:EP, its admin listener on 127.0.0.1:AP[K]; pid SPID[K], log server-K-*.log
EP=$(free_port)
declare -a AP SPID
for k in 1 2 3 4; do AP[$k]=$(free_port); done
start_srv() { # K
    local k=$1 i
    spawn SERVER_PID "$T/server-$k-$(date +%s%N).log" env PORT="$EP" DOMAIN="$DOMAIN" LISTEN_ADDR="127.0.0.$k" \
        ADMIN_ADDR="127.0.0.1:${AP[$k]}" LOG_LEVEL=info AUTH_TOKEN="$E2E_TOKEN" DRAIN_TIMEOUT=30s HEALTH_GRACE=3s "$SERVER_BIN"
    SPID[$k]=$SERVER_PID
    for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.$k/$EP") 2>/dev/null && return 0; sleep 0.1; done
    fail "server $k listening on 127.0.0.$k:$EP"
    return 1
}
for k in 1 2 3; do start_srv $k || exit 1; done
SERVER_PORT=$EP # for lib.sh (start_client's default SERVER_URL, overridden below)
# the servers' DNS as the daemons see it (rewritten in place: a DNS change for them)
set_dns() { local k; for k in "$@"; do echo "127.0.0.$k edge.$DOMAIN"; done >"$T/hosts"; }
set_dns 1 2 3
printf '#!/bin/sh\nexec unshare --mount sh -c %s\n' \
    "'mount --bind \"$T/hosts\" /etc/hosts && exec \"$CLIENT_BIN\"'" >"$T/client-ns.sh"
chmod +x "$T/client-ns.sh"
CLIENT_BIN=$T/client-ns.sh
URLS="ws://edge.$DOMAIN:$EP"

HP=$(free_port)
HSTAT=$(free_port)
# the configuration of docs/SCALING.md (TLS at the servers' side left out: cleartext on loopback)
cat >"$T/haproxy.cfg" <<CFG
global
    maxconn 4096
defaults
    mode http
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-keep-alive 5s
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response response-timeout 503
    default-server inter 500ms fall 1 rise 2
frontend public
    bind 127.0.0.1:$HP
    default_backend tunnelmux
frontend stats
    bind 127.0.0.1:$HSTAT
    http-request return status 200 content-type text/plain lf-string "%[nbsrv(tunnelmux)]\n"
backend tunnelmux
    balance roundrobin
    # a 503 or an empty answer is retried elsewhere only for requests that may be sent twice
    http-request disable-l7-retry if !{ method GET HEAD OPTIONS } !{ req.hdr(idempotency-key) -m found }
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
    server s1 127.0.0.1:$EP check addr 127.0.0.1 port ${AP[1]}
    server s2 127.0.0.2:$EP check addr 127.0.0.1 port ${AP[2]}
    server s3 127.0.0.3:$EP check addr 127.0.0.1 port ${AP[3]}
    server s4 127.0.0.4:$EP check addr 127.0.0.1 port ${AP[4]}   # added later (down until then)
CFG
"$HAPROXY" -c -f "$T/haproxy.cfg" >"$T/haproxy-check.log" 2>&1 && pass "haproxy -c accepts the configuration" ||
    { fail "haproxy -c" "$(cat "$T/haproxy-check.log")"; exit 1; }
spawn HA_PID "$T/haproxy.log" "$HAPROXY" -db -f "$T/haproxy.cfg"
wait_port "$HP" 10 || { fail "haproxy listening" "$(tail -5 "$T/haproxy.log")"; exit 1; }
servers_up() { curl -s --max-time 2 "http://127.0.0.1:$HSTAT/" 2>/dev/null; }
wait_servers_up() { # N: HAProxy sees N servers up
    local i
    for ((i = 0; i < 150; i++)); do [ "$(servers_up)" = "$1" ] && return 0; sleep 0.1; done
    fail "haproxy sees $1 servers up" "got '$(servers_up)'"
    return 1
}

start_daemon() { # TAG LOCAL_PORT [VAR=VALUE...]: sets DPID; log client-app-TAG.log
    local tag=$1 i
    shift
    rm -f "$T/client-$NAME.log"
    start_client "$NAME" "$@" SERVER_URL="$URLS" RESOLVE_INTERVAL=1s
    for ((i = 0; i < 100; i++)); do [ -e "$T/client-$NAME.log" ] && break; sleep 0.02; done
    mv "$T/client-$NAME.log" "$T/client-$NAME-$tag.log"
    DPID=$CLIENT_PID
}
# replicas_on K N: server K lists N tunnels for the name (waits up to 15 s)
replicas_on() {
    local i
    for ((i = 0; i < 150; i++)); do
        [[ "$(curl -s --max-time 2 "http://127.0.0.1:${AP[$1]}/api/clients")" == *'"replicas":'"$2"* ]] && return 0
        sleep 0.1
    done
    fail "server $1 has $2 replicas of $NAME" "$(curl -s --max-time 2 "http://127.0.0.1:${AP[$1]}/api/clients" | head -c 200)"
    return 1
}
start_daemon a "$PORT_A"
DA=$DPID
start_daemon b "$PORT_B"
DB=$DPID
for k in 1 2 3; do replicas_on $k 2 || exit 1; done
pass "both daemons hold a tunnel to each of the 3 servers"
wait_servers_up 3 || exit 1
# jf FILE KEY: a number from ha_load.py's JSON line
jf() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); k=sys.argv[2].split("."); v=d
for p in k: v=v.get(p, 0) if isinstance(v, dict) else 0
print(v if v is not None else "null")' "$1" "$2"; }

echo "== steady load: both replicas serve through every server"
$LOAD --port "$HP" --host "$HOST" --requests 600 --concurrency 6 --max-seconds 60 >"$T/l1.json"
echo "MEASURED: steady: $(cat "$T/l1.json")"
check_eq "steady: 600 requests sent" 600 "$(jf "$T/l1.json" sent)"
check_eq "steady: no failed request" 0 "$(jf "$T/l1.json" failed)"
check "steady: replica a served" test "$(jf "$T/l1.json" identities.a)" -gt 0
check "steady: replica b served" test "$(jf "$T/l1.json" identities.b)" -gt 0

echo "== kill -9 of one server mid-load"
$LOAD --port "$HP" --host "$HOST" --requests 1500 --concurrency 6 --max-seconds 60 >"$T/l2.json" &
LP=$!
sleep 1
kill -9 "${SPID[3]}"
wait "$LP"
echo "MEASURED: server 3 killed mid-load: $(cat "$T/l2.json")"
check "server killed: at most the 6 requests in flight failed ($(jf "$T/l2.json" failed))" test "$(jf "$T/l2.json" failed)" -le 6
wait_servers_up 2 || exit 1
$LOAD --port "$HP" --host "$HOST" --requests 300 --concurrency 6 --max-seconds 60 >"$T/l3.json"
echo "MEASURED: after HAProxy's check marked it down: $(cat "$T/l3.json")"
check_eq "after the check interval: no failed request" 0 "$(jf "$T/l3.json" failed)"
kill -0 "$DA" 2>/dev/null && kill -0 "$DB" 2>/dev/null && pass "both daemons still running" || fail "daemons running"
start_srv 3 || exit 1
replicas_on 3 2 || exit 1
wait_servers_up 3 || exit 1
pass "restarted server 3 got both daemons' tunnels back and HAProxy's traffic"

echo "== kill -9 of one daemon mid-load (GETs: safe retry)"
# random 200..400 ms answers: the 8 users do not fall into step, so when the daemon dies some of its
# requests are always still waiting for their head (retried) rather than all between head and body
$LOAD --port "$HP" --host "$HOST" --path "/slow?ms=200-400" --requests 400 --concurrency 8 --max-seconds 60 >"$T/l4.json" &
LP=$!
sleep 1.5
kill -9 "$DB"
wait "$LP"
echo "MEASURED: daemon b killed mid-load: $(cat "$T/l4.json")"
# a response already under way when the daemon died cannot be retried (it is aborted, never cut
# silently): the servers log those with status 200 and a short body. Every other GET must succeed.
cut=$(cat "$T"/server-*.log | awk '/path="\/slow\?ms=200-400" status=200/ { for (i = 1; i <= NF; i++) if ($i ~ /^bytes_out=/) { split($i, v, "="); if (v[2] + 0 < 400) n++ } } END { print n + 0 }')
echo "MEASURED: responses already under way on daemon b when it died (aborted, not retryable): $cut"
check_eq "daemon killed: no failed GET except the $cut responses already under way" "$cut" "$(jf "$T/l4.json" failed)"
retries=0
for k in 1 2 3; do
    r=$(curl -s --max-time 2 "http://127.0.0.1:${AP[$k]}/metrics" | awk '$1 == "tunnelmux_requests_retried_total" {print $2}')
    retries=$((retries + ${r:-0}))
done
echo "MEASURED: safe retries on the 3 servers: $retries"
check "the servers retried the requests that were on daemon b ($retries)" test "$retries" -ge 1
start_daemon b2 "$PORT_B"
DB=$DPID
for k in 1 2 3; do replicas_on $k 2 || exit 1; done

echo "== a server added to the DNS the daemons read gets their tunnels and HAProxy's traffic"
start_srv 4 || exit 1
set_dns 1 2 3 4
replicas_on 4 2 || exit 1
pass "server 4 got a tunnel from both daemons (RESOLVE_INTERVAL=1s)"
wait_servers_up 4 || exit 1
$LOAD --port "$HP" --host "$HOST" --requests 400 --concurrency 6 --max-seconds 60 >"$T/l6.json"
echo "MEASURED: with server 4 added: $(cat "$T/l6.json")"
check_eq "with server 4 added: no failed request" 0 "$(jf "$T/l6.json" failed)"
n4=$(cat "$T"/server-4-*.log | grep -c "access client=$NAME ")
check "HAProxy sent server 4 traffic for the name ($n4 requests)" test "$n4" -gt 0

echo "== a daemon with another token cannot join the name"
# the servers use AUTH_TOKEN (one shared token): another token fails authentication outright;
# test_ha.sh covers a second valid token (NAME_TAKEN)
start_daemon evil "$PORT_A" AUTH_TOKEN=not-the-token MAX_RETRIES=0
wait "$DPID" 2>/dev/null
check_contains "daemon with another token refused" "AUTH_FAILED" "$(cat "$T/client-$NAME-evil.log")"
for k in 1 2 3 4; do replicas_on $k 2 || exit 1; done
pass "still exactly 2 replicas on every server"

echo "== rolling SIGTERM restart of every server under load, large downloads across it"
SIZE=$((48 * 1024 * 1024))
WANT=$(curl -s "http://127.0.0.1:$PORT_A/bytes/$SIZE" | sha256sum | cut -d' ' -f1)
rm -f "$T/stop"
$LOAD --port "$HP" --host "$HOST" --requests 100000 --concurrency 6 --max-seconds 240 --stop-file "$T/stop" >"$T/l5.json" &
LP=$!
DL=()
for i in 1 2 3; do
    (curl -sS --max-time 200 --limit-rate 4M -H "Host: $HOST" "http://127.0.0.1:$HP/bytes/$SIZE" -o "$T/dl$i" -w '%{http_code}' \
        >"$T/dl$i.code" 2>"$T/dl$i.err"; echo $? >"$T/dl$i.rc") &
    DL+=($!)
done
sleep 1
for k in 1 2 3 4; do
    kill -TERM "${SPID[$k]}"
    for ((i = 0; i < 400; i++)); do kill -0 "${SPID[$k]}" 2>/dev/null || break; sleep 0.1; done
    kill -0 "${SPID[$k]}" 2>/dev/null && fail "server $k exited after its drain" || pass "server $k drained and exited"
    start_srv "$k" || exit 1
    replicas_on "$k" 2 || exit 1
    wait_servers_up 4 || exit 1
done
touch "$T/stop"
wait "$LP"
wait "${DL[@]}"
echo "MEASURED: rolling restart of 4 servers: $(cat "$T/l5.json")"
check_eq "rolling restart: zero failed requests" 0 "$(jf "$T/l5.json" failed)"
check "rolling restart: the load ran ($(jf "$T/l5.json" sent) requests)" test "$(jf "$T/l5.json" sent)" -gt 100
for i in 1 2 3; do
    check_eq "download $i across the restarts: 200" 200 "$(cat "$T/dl$i.code")"
    check_eq "download $i across the restarts: curl exit 0" 0 "$(cat "$T/dl$i.rc")"
    check_eq "download $i across the restarts: SHA-256 intact" "$WANT" "$(sha256sum <"$T/dl$i" | cut -d' ' -f1)"
done
exit 0
