#!/usr/bin/env bash
# wan-cpu.sh — what a download over a long link costs in CPU, per process, on the direct path and
# through the tunnel: the figure that bounds issue 20's throughput ratios on a small machine.
#
#   direct  curl ──link──▶ nginx
#   tunnel  curl ─▶ tunnelmux-server ══ws over the link══ tunnelmux-client ─▶ nginx
#
# The link is ../shared/bench/delay_relay.py (as in wan.sh). For each path it runs ROUNDS downloads
# of DL_MB MiB, alternating the paths, and reads the CPU time (user + system, /proc/PID/stat) every
# process of the path used during each download (curl's own from its rusage). It prints MiB/s and
# CPU seconds per GiB for each process, then the ceiling the machine's cores put on each path:
# NCPU / (CPU seconds per GiB of the whole path) GiB/s — a path whose processes together need more
# CPU per byte than the cores give cannot go faster, whatever its windows. CPU per byte changes far
# less with the machine's load than MiB/s does, so the ratio of the ceilings is a load-independent
# bound on the tunnel/direct throughput ratio (the processes of a path pipeline, so the ceiling is
# reached only when none of them waits on another; it is a bound, not a prediction).
#
#   BUILD_DIR (default <repo>/build)  DELAY_MS (25: RTT 50 ms)  CAP_MIB (16)  DL_MB (256)  ROUNDS (3)
#   MODE=upload: DL_MB MiB uploads (curl -T, nginx stores the body) instead of downloads
#   MODE=latency: SMALL_N (100) sequential 1 KiB requests per path, alone and while DL_MB downloads
#   run back to back on the same path: p50/p90/p99 ms, and the downloads' MiB/s meanwhile
#   RATE_MBIT (0): the link's rate (delay_relay.py paces to it)
#   SRV_ENV / CLI_ENV: extra VAR=VALUE settings for the daemons   BASE_PORT (18600)
#   SRV_ENV_B / CLI_ENV_B: when set, a second tunnel with these settings ("tunnel_b") is measured in
#   the same rounds, so two settings compare side by side on the same noisy machine; SRV_B / CLI_B:
#   other binaries for it (two builds side by side)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_DIR=${SHARED_DIR:-$ROOT/../shared}
RELAY=$SHARED_DIR/bench/delay_relay.py
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
DELAY_MS=${DELAY_MS:-25}
CAP_MIB=${CAP_MIB:-16}
DL_MB=${DL_MB:-256}
MODE=${MODE:-download}
RATE_MBIT=${RATE_MBIT:-0}
SMALL_N=${SMALL_N:-100}
ROUNDS=${ROUNDS:-3}
BASE=${BASE_PORT:-18600}
NCPU=$(nproc)
SRV=$BUILD_DIR/tunnelmux-server
CLI=$BUILD_DIR/tunnelmux-client
SRV_B=${SRV_B:-$SRV}
CLI_B=${CLI_B:-$CLI}
[ -f "$RELAY" ] || { echo "wan-cpu: $RELAY not found (set SHARED_DIR)" >&2; exit 1; }
[ -x "$SRV" ] && [ -x "$CLI" ] || { echo "wan-cpu: build first ($SRV, $CLI)" >&2; exit 1; }
for tool in nginx curl python3 awk; do
    command -v "$tool" >/dev/null || { echo "wan-cpu: $tool is required" >&2; exit 1; }
done

RUN=$(mktemp -d /tmp/tunnelmux-wancpu.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$RUN"
}
trap cleanup EXIT
bg() { local log=$1; shift; "$@" >"$log" 2>&1 & PIDS+=($!); }
wait_port() { local i; for i in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
wait_http() { local i; for i in $(seq 1 100); do curl -s -o /dev/null -m 2 "$@" && return 0; sleep 0.1; done; return 1; }
# cpu_ns PID...: nanoseconds of CPU (user + system) the processes used, their threads summed, the
# ones that ended too (/proc/PID/stat counts in clock ticks: run downloads long enough)
TICK_NS=$((1000000000 / $(getconf CLK_TCK)))
cpu_ns() {
    local p
    for p in "$@"; do cat /proc/"$p"/stat 2>/dev/null || true; done | awk -v t="$TICK_NS" '{ s += ($14 + $15) * t } END { printf "%.0f\n", s }'
}

NG=$BASE
mkdir -p "$RUN/www" "$RUN/ng/logs"
head -c $((DL_MB << 20)) /dev/urandom >"$RUN/www/dl.bin"
head -c 1024 /dev/urandom >"$RUN/www/1k.bin"
cat >"$RUN/ng/nginx.conf" <<EOF
worker_processes 1; error_log $RUN/ng/logs/error.log warn; pid $RUN/ng/nginx.pid; $( [ "$(id -u)" = 0 ] && echo "user root;")
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nodelay on;
  client_body_temp_path $RUN/ng/body; proxy_temp_path $RUN/ng/p; fastcgi_temp_path $RUN/ng/f;
  uwsgi_temp_path $RUN/ng/u; scgi_temp_path $RUN/ng/s;
  server { listen 127.0.0.1:$NG; root $RUN/www; client_max_body_size 0; client_body_buffer_size 1m;
    location = /upload { client_body_in_file_only clean; proxy_pass_request_body off;
      proxy_set_header Content-Length ""; proxy_pass http://127.0.0.1:$((NG + 9))/ok; } }
  server { listen 127.0.0.1:$((NG + 9)); location / { return 200 "ok\n"; } } }
EOF
bg "$RUN/nginx.log" nginx -p "$RUN/ng" -c "$RUN/ng/nginx.conf" -g 'daemon off;'
wait_http "http://127.0.0.1:$NG/dl.bin" -r 0-0 || { cat "$RUN/ng/logs/error.log" >&2; exit 1; }
NGINX_PIDS=$(pgrep -f "nginx: worker process" -P "$(cat "$RUN/ng/nginx.pid")" | tr '\n' ' ')

L_DIRECT=$((BASE + 1))
bg "$RUN/relay-direct.log" python3 "$RELAY" "$L_DIRECT" "127.0.0.1:$NG" "$DELAY_MS" "$CAP_MIB" "$RATE_MBIT"
RELAY_DIRECT=${PIDS[-1]}
wait_port "$L_DIRECT"

# start_tunnel KEY PORT_BASE "SRV VAR=VALUE..." "CLI VAR=VALUE..." [SRV_BIN CLI_BIN]: server, relay,
# client of one tunnel
declare -A TPORT TSERVER TRELAY TCLIENT
start_tunnel() {
    local key=$1 tp=$2 l=$(($2 + 1))
    # shellcheck disable=SC2086 # the settings are words
    bg "$RUN/server-$key.log" env PORT=$tp LISTEN_ADDR=127.0.0.1 DOMAIN=wan.test AUTH_TOKEN=wan-cpu ADMIN_ADDR=off \
        LOG_LEVEL=warn RATE_LIMIT_RPS=0 $3 "${5:-$SRV}"
    TSERVER[$key]=${PIDS[-1]}
    wait_port "$tp"
    bg "$RUN/relay-$key.log" python3 "$RELAY" "$l" "127.0.0.1:$tp" "$DELAY_MS" "$CAP_MIB" "$RATE_MBIT"
    TRELAY[$key]=${PIDS[-1]}
    wait_port "$l"
    # shellcheck disable=SC2086
    bg "$RUN/client-$key.log" env SERVER_URL="ws://127.0.0.1:$l" CLIENT_ID=edge LOCAL_HOST=127.0.0.1 LOCAL_PORT=$NG \
        AUTH_TOKEN=wan-cpu LOG_LEVEL=warn $4 "${6:-$CLI}"
    TCLIENT[$key]=${PIDS[-1]}
    TPORT[$key]=$tp
    wait_http -H "Host: edge.wan.test" "http://127.0.0.1:$tp/dl.bin" -r 0-0 ||
        { cat "$RUN/server-$key.log" "$RUN/client-$key.log" >&2; exit 1; }
}
PATHS="direct tunnel"
start_tunnel tunnel $((BASE + 2)) "${SRV_ENV:-}" "${CLI_ENV:-}"
if [ -n "${SRV_ENV_B:-}${CLI_ENV_B:-}" ] || [ "$SRV_B" != "$SRV" ] || [ "$CLI_B" != "$CLI" ]; then
    # a second tunnel with other settings or binaries, measured in turn
    start_tunnel tunnel_b $((BASE + 4)) "${SRV_ENV_B:-}" "${CLI_ENV_B:-}" "$SRV_B" "$CLI_B"
    PATHS="direct tunnel tunnel_b"
fi

# one PATH: prints "MiB/s curl_s relay_s nginx_s server_s client_s" (CPU seconds of this download)
one() {
    local path=$1 url host=() procs r0 n0 s0 c0 r1 n1 s1 c1 out
    local srv=0 cli=0
    if [ "$path" = direct ]; then
        url="http://127.0.0.1:$L_DIRECT/dl.bin"
        procs=$RELAY_DIRECT
    else
        url="http://127.0.0.1:${TPORT[$path]}/dl.bin"
        host=(-H "Host: edge.wan.test")
        procs=${TRELAY[$path]}
        srv=${TSERVER[$path]}
        cli=${TCLIENT[$path]}
    fi
    r0=$(cpu_ns "$procs"); n0=$(cpu_ns $NGINX_PIDS); s0=$(cpu_ns "$srv"); c0=$(cpu_ns "$cli")
    # curl's own CPU from its rusage (it is the user's cost in both paths)
    if [ "$MODE" = upload ]; then
        out=$( { /usr/bin/env time -f '%U %S' curl -s "${host[@]}" -H 'Expect:' -T "$RUN/www/dl.bin" -o /dev/null \
            -w '%{size_upload} %{time_total}\n' "${url%/dl.bin}/upload"; } 2>&1)
    else
        out=$( { /usr/bin/env time -f '%U %S' curl -s "${host[@]}" -o /dev/null -w '%{size_download} %{time_total}\n' "$url"; } 2>&1)
    fi
    r1=$(cpu_ns "$procs"); n1=$(cpu_ns $NGINX_PIDS); s1=$(cpu_ns "$srv"); c1=$(cpu_ns "$cli")
    awk -v o="$out" -v t=1e9 -v r=$((r1 - r0)) -v n=$((n1 - n0)) -v s=$((s1 - s0)) -v c=$((c1 - c0)) 'BEGIN {
        split(o, a, /[ \n]+/); # size time user sys
        printf "%.1f %.3f %.3f %.3f %.3f %.3f %d\n", a[1] / 1048576 / a[2], a[3] + a[4], r / t, n / t, s / t, c / t, a[1] }'
}

# lat PATH FILE: SMALL_N sequential 1 KiB requests, one latency (ms) per line
url_of() { if [ "$1" = direct ]; then echo "http://127.0.0.1:$L_DIRECT"; else echo "http://127.0.0.1:${TPORT[$1]}"; fi; }
host_of() { [ "$1" = direct ] || echo "Host: edge.wan.test"; }
lat() {
    local i h
    h=$(host_of "$1")
    for i in $(seq 1 "$SMALL_N"); do
        curl -s ${h:+-H "$h"} -o /dev/null -m 10 -w '%{time_total}\n' "$(url_of "$1")/1k.bin?s$i" | awk '{ printf "%.2f\n", $1 * 1000 }'
    done >"$2"
}
pctl() { sort -g "$1" | awk -v q="$2" '{ a[NR] = $1 } END { i = int(NR * q + 0.999); if (i < 1) i = 1; printf "%.1f", a[i] }'; }
if [ "$MODE" = latency ]; then
    printf '# wan-cpu %s  RTT %s ms%s, 1 KiB latency alone and beside %s MiB downloads, %s rounds x %s requests, load average %s\n' \
        "$(date -Is)" $((2 * DELAY_MS)) "$([ "$RATE_MBIT" != 0 ] && echo ", $RATE_MBIT Mbit/s")" "$DL_MB" "$ROUNDS" "$SMALL_N" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
    for r in $(seq 1 "$ROUNDS"); do
        for p in $PATHS; do
            lat "$p" "$RUN/idle.$p.$r"
            h=$(host_of "$p")
            touch "$RUN/bulk.on"
            ( while [ -f "$RUN/bulk.on" ]; do
                curl -s ${h:+-H "$h"} -o /dev/null -m 60 -w '%{size_download} %{time_total}\n' "$(url_of "$p")/dl.bin?bulk" || true
            done >>"$RUN/bulk.$p" ) &
            bulk=$!
            sleep 2 # the download is up to speed
            lat "$p" "$RUN/busy.$p.$r"
            rm -f "$RUN/bulk.on"
            wait "$bulk" 2>/dev/null || true
            echo "[$(date +%T)] round $r $p done" >&2
        done
    done
    printf '%-8s %26s %26s %16s\n' path 'alone p50/p90/p99 ms' 'beside a download' 'download MiB/s'
    for p in $PATHS; do
        cat "$RUN"/idle."$p".* >"$RUN/idle.$p"
        cat "$RUN"/busy."$p".* >"$RUN/busy.$p"
        printf '%-8s %26s %26s %16s\n' "$p" "$(pctl "$RUN/idle.$p" 0.5)/$(pctl "$RUN/idle.$p" 0.9)/$(pctl "$RUN/idle.$p" 0.99)" \
            "$(pctl "$RUN/busy.$p" 0.5)/$(pctl "$RUN/busy.$p" 0.9)/$(pctl "$RUN/busy.$p" 0.99)" \
            "$(awk '{ b += $1; t += $2 } END { if (t > 0) printf "%.1f", b / 1048576 / t; else print "-" }' "$RUN/bulk.$p")"
    done
    exit 0
fi

if ! /usr/bin/env time -f '%U' true >/dev/null 2>&1; then
    echo "wan-cpu: GNU time is required (apt-get install time)" >&2
    exit 1
fi
for r in $(seq 1 "$ROUNDS"); do
    for p in $PATHS; do
        one "$p" >>"$RUN/$p.txt"
        echo "[$(date +%T)] round $r $p: $(tail -1 "$RUN/$p.txt")" >&2
    done
done

printf '# wan-cpu %s  RTT %s ms, %s MiB '"$MODE"'s, %s rounds, %s CPUs, load average %s\n' "$(date -Is)" $((2 * DELAY_MS)) \
    "$DL_MB" "$ROUNDS" "$NCPU" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %8s | %s\n' path 'MiB/s' 'CPU s per GiB: curl relay nginx server client = total | ceiling GiB/s'
for p in $PATHS; do
    med=$(sort -g "$RUN/$p.txt" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    awk -v p="$p" -v ncpu="$NCPU" -v med="$med" '{
        gib = $7 / 1073741824; n++
        cu += $2 / gib; re += $3 / gib; ng += $4 / gib; se += $5 / gib; cl += $6 / gib }
      END {
        tot = (cu + re + ng + se + cl) / n
        printf "%-8s %8.1f | %6.2f %6.2f %6.2f %6.2f %6.2f = %6.2f | %.2f\n", p, med, cu / n, re / n, ng / n, se / n, cl / n, tot, ncpu / tot
      }' "$RUN/$p.txt" | tee -a "$RUN/summary"
done
awk 'NR == 1 { d = $NF; dm = $2 } NR > 1 { printf "%s/direct: measured %.2f (median MiB/s), CPU ceiling %.2f\n", $1, $2 / dm, $NF / d }' "$RUN/summary"
