#!/usr/bin/env bash
# e2e (issue 19): high availability on one machine, without a balancer.
#  - /healthz on the admin listener: 200 while serving, no credentials needed even with ADMIN_USER
#    (the rest of the admin API still needs them); 503 during a drain is in test_operate_drain.
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
exit 0
