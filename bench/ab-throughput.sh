#!/usr/bin/env bash
# ab-throughput.sh — two builds of tunnelmux side by side on this machine, interleaved: a 100 MiB
# download (curl, time and the two daemons' CPU seconds) and wrk 1 KiB requests (req/s), each ROUNDS
# times, medians printed. For changes that might cost speed (heap settings, allocation strategy):
# both builds run against the same nginx backend, with the same settings, one after the other in
# every round, so drift of a shared machine hits both alike.
#
#   bench/ab-throughput.sh BUILD_A BUILD_B     (directories holding tunnelmux-server and -client)
#   ROUNDS (default 5)  WRK_DUR seconds (default 5)  WRK_CONN (default 50)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
A=${1:?usage: ab-throughput.sh BUILD_A BUILD_B}
B=${2:?usage: ab-throughput.sh BUILD_A BUILD_B}
ROUNDS=${ROUNDS:-5}
WRK_DUR=${WRK_DUR:-5}
WRK_CONN=${WRK_CONN:-50}
for d in "$A" "$B"; do
    [ -x "$d/tunnelmux-server" ] && [ -x "$d/tunnelmux-client" ] || { echo "ab: no binaries in $d" >&2; exit 1; }
done
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "ab: needs wrk and nginx" >&2; exit 1; }

T=$(mktemp -d /tmp/ab-throughput.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "ab: nothing listens on $1" >&2
    return 1
}
cpu_s() { # utime + stime of PIDs, seconds
    local p t=0
    for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
    awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}

mkdir -p "$T/www" "$T/nginx/logs" "$T/nginx/tmp"
head -c $((100 << 20)) /dev/urandom >"$T/www/100m.bin"
head -c 1024 /dev/urandom >"$T/www/1k.bin"
NPORT=$(port)
userline=""
[ "$(id -u)" = 0 ] && userline="user root;"
sed -e "s#@USERLINE@#$userline#" -e "s#@PORT@#$NPORT#g" -e "s#@ROOT@#$T/www#g" -e "s#@DIR@#$T/nginx#g" \
    -e 's#access_log .*;#access_log off;#' "$ROOT/tests/e2e/nginx.conf.in" >"$T/nginx/nginx.conf"
nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$NPORT"

TOKEN=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
declare -A SP CP SV CL
for side in A B; do
    dir=${!side}
    SP[$side]=$(port)
    env PORT="${SP[$side]}" DOMAIN=example.com LISTEN_ADDR=127.0.0.1 ADMIN_ADDR=127.0.0.1:0 LOG_LEVEL=warn AUTH_TOKEN="$TOKEN" \
        RATE_LIMIT_RPS=0 "$dir/tunnelmux-server" >"$T/server-$side.log" 2>&1 &
    SV[$side]=$!
    PIDS+=("${SV[$side]}")
    wait_port "${SP[$side]}"
    env SERVER_URL="ws://127.0.0.1:${SP[$side]}" CLIENT_ID=myapp LOCAL_HOST=127.0.0.1 LOCAL_PORT="$NPORT" LOG_LEVEL=warn \
        AUTH_TOKEN="$TOKEN" "$dir/tunnelmux-client" >"$T/client-$side.log" 2>&1 &
    CL[$side]=$!
    PIDS+=("${CL[$side]}")
    for ((i = 0; i < 100; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Host: myapp.example.com' \
            "http://127.0.0.1:${SP[$side]}/1k.bin")" = 200 ] && break
        sleep 0.2
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for ((r = 1; r <= ROUNDS; r++)); do
    for side in A B; do
        c0=$(cpu_s "${SV[$side]}" "${CL[$side]}")
        t=$(curl -s -o /dev/null -w '%{time_total}' --max-time 60 -H 'Host: myapp.example.com' "http://127.0.0.1:${SP[$side]}/100m.bin")
        c1=$(cpu_s "${SV[$side]}" "${CL[$side]}")
        echo "$t" >>"$T/dl-$side"
        awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f\n", b - a }' >>"$T/dlcpu-$side"
        c0=$(cpu_s "${SV[$side]}" "${CL[$side]}")
        wrk -t2 -c"$WRK_CONN" -d"${WRK_DUR}s" -H 'Host: myapp.example.com' "http://127.0.0.1:${SP[$side]}/1k.bin" >"$T/wrk-$side-$r.txt"
        c1=$(cpu_s "${SV[$side]}" "${CL[$side]}")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$T/wrk-$side-$r.txt")
        echo "$rps" >>"$T/rps-$side"
        awk -v a="$c0" -v b="$c1" -v d="$WRK_DUR" -v n="$rps" 'BEGIN { printf "%.1f\n", (b - a) / (n * d) * 1e6 }' >>"$T/rpscpu-$side"
    done
done
printf '%-4s %-40s %16s %18s %12s %22s %10s\n' side build "100 MiB (s)" "100 MiB cpu (s)" "1 KiB req/s" "cpu/req (us, both)" "RSS MiB"
for side in A B; do
    rss=$(($(awk '/^VmRSS:/ { print $2 }' "/proc/${SV[$side]}/status") + $(awk '/^VmRSS:/ { print $2 }' "/proc/${CL[$side]}/status")))
    printf '%-4s %-40s %16s %18s %12s %22s %10s\n' "$side" "${!side}" "$(median <"$T/dl-$side")" "$(median <"$T/dlcpu-$side")" \
        "$(median <"$T/rps-$side")" "$(median <"$T/rpscpu-$side")" "$((rss / 1024))"
done
echo "(medians of $ROUNDS interleaved rounds; RSS = server + client at the end)"
for side in A B; do
    echo "$side per round: 100 MiB s: $(tr '\n' ' ' <"$T/dl-$side")| req/s: $(tr '\n' ' ' <"$T/rps-$side")"
done
