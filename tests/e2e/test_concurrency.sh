#!/usr/bin/env bash
# e2e: 100 concurrent requests over one tunnel (each answer matches its own request: path and body
# digest), slow requests overlap instead of queueing, and two clients on two names never see each
# other's traffic.
source "$(dirname "$0")/lib.sh"
require_binaries

start_echo alpha || exit 1
ALPHA_PORT=$ECHO_PORT
start_echo beta || exit 1
BETA_PORT=$ECHO_PORT
start_server || exit 1
start_client alpha "$ALPHA_PORT"
ALPHA_CLIENT=$CLIENT_PID
start_client beta "$BETA_PORT"
wait_ready alpha / || exit 1
wait_ready beta / || exit 1

N=100
mkdir -p "$T/c"

echo "== $N concurrent POSTs with distinct bodies on one tunnel"
pids=()
for ((i = 0; i < N; i++)); do
    head -c $((1000 + i * 997)) /dev/urandom >"$T/c/in.$i"
    CURL_MAX_TIME=60 tcurl alpha "/c/$i?n=$i" --data-binary "@$T/c/in.$i" -o "$T/c/out.$i" -w '%{http_code}' \
        >"$T/c/code.$i" 2>"$T/c/err.$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
ok=0
bad=()
for ((i = 0; i < N; i++)); do
    want=$(sha256sum <"$T/c/in.$i" | cut -d' ' -f1)
    if [ "$(cat "$T/c/code.$i")" = 200 ] && [ "$(jq -r .path "$T/c/out.$i" 2>/dev/null)" = "/c/$i?n=$i" ] &&
        [ "$(jq -r .body_sha256 "$T/c/out.$i" 2>/dev/null)" = "$want" ] &&
        [ "$(jq -r .server "$T/c/out.$i" 2>/dev/null)" = alpha ]; then
        ok=$((ok + 1))
    else
        bad+=("$i:$(cat "$T/c/code.$i")")
    fi
done
check_eq "$N concurrent requests each got their own answer" "$N" "$ok${bad[*]:+ (bad: ${bad[*]:0:10})}"

echo "== $N concurrent slow requests overlap"
t0=$(date +%s%N)
pids=()
for ((i = 0; i < N; i++)); do
    CURL_MAX_TIME=60 tcurl alpha "/slow?ms=1000&i=$i" -o /dev/null -w '%{http_code}' >"$T/c/slow.$i" 2>/dev/null &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
ms=$((($(date +%s%N) - t0) / 1000000))
check_eq "$N slow requests all 200" "$N" "$(cat "$T"/c/slow.* | grep -o 200 | wc -l)"
if [ "$ms" -lt 20000 ]; then pass "$N x 1 s requests overlapped (${ms} ms total)"; else fail "slow requests overlap" "${ms} ms"; fi

echo "== h2c: $N streams multiplexed on one public connection (nghttp)"
args=()
for ((i = 0; i < N; i++)); do args+=("http://127.0.0.1:$SERVER_PORT/h2/$i"); done
timeout 60 nghttp -H ":authority: alpha.$DOMAIN:$SERVER_PORT" "${args[@]}" >"$T/c/h2.out" 2>>"$T/curl.err"
ok=0
for ((i = 0; i < N; i++)); do grep -q "\"path\": \"/h2/$i\"" "$T/c/h2.out" && ok=$((ok + 1)); done
check_eq "$N h2 streams answered correctly" "$N" "$ok"

echo "== two clients, two names, mixed load"
pids=()
for ((i = 0; i < 40; i++)); do
    tcurl alpha "/mix/alpha/$i" -o "$T/c/ma.$i" 2>/dev/null &
    pids+=($!)
    tcurl beta "/mix/beta/$i" -o "$T/c/mb.$i" 2>/dev/null &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
a=0
b=0
for ((i = 0; i < 40; i++)); do
    [ "$(jq -r '.server + .path' "$T/c/ma.$i" 2>/dev/null)" = "alpha/mix/alpha/$i" ] && a=$((a + 1))
    [ "$(jq -r '.server + .path' "$T/c/mb.$i" 2>/dev/null)" = "beta/mix/beta/$i" ] && b=$((b + 1))
done
check_eq "alpha answers all from alpha's service" 40 "$a"
check_eq "beta answers all from beta's service" 40 "$b"
check_eq "beta's service never saw alpha's paths" 0 "$(grep -c '/alpha/\|/c/\|/slow\|/h2/' "$T/echo-beta.log")"
check_eq "alpha's service never saw beta's paths" 0 "$(grep -c '/beta/' "$T/echo-alpha.log")"

echo "== losing one client does not disturb the other"
stop_pid "$ALPHA_CLIENT"
code=$(tcurl beta /after -o /dev/null -w '%{http_code}')
check_eq "beta still served after alpha left" 200 "$code"
code=$(tcurl alpha /after -o /dev/null -w '%{http_code}')
check_eq "alpha now 502 (registered earlier, disconnected)" 502 "$code"
exit 0
