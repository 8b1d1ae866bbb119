#!/usr/bin/env bash
# bench_uploads.sh — 100 MiB uploads through tunnelmux over each public protocol, side by side for
# one or more builds (docs/PERFORMANCE.md "Uploads"). The sink is the anchors' (shared/bench/anchors.sh):
# nginx WebDAV PUT into tmpfs, answering only after the whole body; the upload is the anchors'
# `curl -H 'Expect:' -T file` (from a pipe for the chunked row).
#
# Usage: bench/bench_uploads.sh BUILD_DIR [BUILD_DIR...]   (ROUNDS=3; the median is printed)
# Prints, per build and protocol, MiB/s and CPU s/GiB of tunnelmux-server + tunnelmux-client.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-3}
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [BUILD_DIR...]" >&2; exit 2; }
RUN=$(mktemp -d /dev/shm/tm-bench-up.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.2; rm -rf "$RUN"; }
trap cleanup EXIT

mkdir -p "$RUN/nb/logs" "$RUN/up" "$RUN/tmp" "$RUN/www"
head -c 104857600 /dev/urandom >"$RUN/www/100m.bin"
SINK_PORT=$((20000 + RANDOM % 10000))
USERLINE=""
[ "$(id -u)" = 0 ] && USERLINE="user root;" # workers must write the tmpfs sink
cat >"$RUN/nb/nginx.conf" <<EOF
$USERLINE
worker_processes 1;
pid $RUN/nb/nginx.pid;
error_log $RUN/nb/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; tcp_nodelay on; client_max_body_size 0; client_body_temp_path $RUN/tmp;
  server {
    listen 127.0.0.1:$SINK_PORT;
    location /up/ { root $RUN; dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw; }
  }
}
EOF
nginx -p "$RUN/nb" -c "$RUN/nb/nginx.conf" -g 'daemon off;' >"$RUN/nb/out.log" 2>&1 &
PIDS+=($!)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=example.com" \
    -addext "subjectAltName=DNS:*.example.com,IP:127.0.0.1" -keyout "$RUN/key.pem" -out "$RUN/cert.pem" >/dev/null 2>&1
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }

# run_build BUILD TLS(0|1): starts server + client, measures each protocol ROUNDS times
run_build() {
    local build=$1 tls=$2 port=$((30000 + RANDOM % 10000)) srv cli extra=() scheme=http protos
    [ "$tls" = 1 ] && extra=(TLS_CERT="$RUN/cert.pem" TLS_KEY="$RUN/key.pem") && scheme=https
    env PORT=$port DOMAIN=example.com LISTEN_ADDR=127.0.0.1 ADMIN_ADDR=off LOG_LEVEL=warn AUTH_TOKEN="$TOKEN" \
        RATE_LIMIT_RPS=0 "${extra[@]}" "$build/tunnelmux-server" >"$RUN/server.log" 2>&1 &
    srv=$!
    PIDS+=($srv)
    sleep 0.5
    local surl=ws://127.0.0.1:$port cextra=()
    [ "$tls" = 1 ] && surl=wss://127.0.0.1:$port && cextra=(TLS_CA_FILE="$RUN/cert.pem")
    env SERVER_URL=$surl CLIENT_ID=myapp LOCAL_HOST=127.0.0.1 LOCAL_PORT=$SINK_PORT LOG_LEVEL=warn AUTH_TOKEN="$TOKEN" \
        "${cextra[@]}" "$build/tunnelmux-client" >"$RUN/client.log" 2>&1 &
    cli=$!
    PIDS+=($cli)
    local i
    for ((i = 0; i < 50; i++)); do # registered: the name answers something else than 404
        [ "$(curl -s -o /dev/null -w '%{http_code}' --resolve "myapp.example.com:$port:127.0.0.1" --cacert "$RUN/cert.pem" \
            "$scheme://myapp.example.com:$port/up/")" != 404 ] && break
        sleep 0.1
    done
    if [ "$tls" = 1 ]; then protos="h2-tls h1-tls"; else protos="h1 h1-chunked h2c"; fi
    local p r
    for p in $protos; do
        local rates=() cpus=()
        for ((r = 0; r < ROUNDS; r++)); do
            local args=(-s -o /dev/null --resolve "myapp.example.com:$port:127.0.0.1" --cacert "$RUN/cert.pem" -H 'Expect:'
                -w '%{http_code} %{size_upload} %{speed_upload}')
            case $p in
            h1 | h1-tls) args+=(--http1.1) ;;
            h2c) args+=(--http2-prior-knowledge) ;;
            h2-tls) args+=(--http2) ;;
            h1-chunked) args+=(--http1.1) ;;
            esac
            rm -f "$RUN/up/u.bin"
            local c0 c1 o
            c0=$(cpu_ticks $srv $cli)
            if [ $p = h1-chunked ]; then
                o=$(cat "$RUN/www/100m.bin" | timeout 120 curl "${args[@]}" -T - "$scheme://myapp.example.com:$port/up/u.bin")
            else
                o=$(timeout 120 curl "${args[@]}" -T "$RUN/www/100m.bin" "$scheme://myapp.example.com:$port/up/u.bin")
            fi
            c1=$(cpu_ticks $srv $cli)
            set -- $o
            if { [ "$1" = 201 ] || [ "$1" = 204 ]; } && [ "$(stat -c %s "$RUN/up/u.bin" 2>/dev/null)" = 104857600 ]; then
                rates+=("$(awk -v s="$3" 'BEGIN{printf "%.1f", s/1048576}')")
                cpus+=("$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", t/hz*10.24}')")
            else
                echo "round failed: $p: $o $(tail -2 "$RUN/nb/logs/error.log" 2>/dev/null) $(tail -1 "$RUN/client.log")" >&2
                rates+=(0)
                cpus+=(0)
            fi
        done
        local mr mc
        mr=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
        mc=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
        printf '%-40s %-12s %8s MiB/s %8s CPU s/GiB   (rounds: %s)\n' "$build" "$p" "$mr" "$mc" "${rates[*]}"
    done
    kill $cli $srv 2>/dev/null || true
    wait $cli $srv 2>/dev/null || true
}

for b in "$@"; do
    run_build "$b" 0
    run_build "$b" 1
done
