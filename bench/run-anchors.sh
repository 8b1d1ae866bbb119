#!/usr/bin/env bash
# run-anchors.sh — runs the shared performance anchors (direct, nginx, ssh -R, localtunnel) with
# tunnelmux as one more column: tunnelmux-server on 127.0.0.1:8080 with DOMAIN=example.com and
# tunnelmux-client CLIENT_ID=myapp forwarding to http://127.0.0.1:3000 (the anchors' backend nginx).
#
# The shared script is ../shared/bench/anchors.sh relative to the repository root, or
# $SHARED_DIR/bench/anchors.sh. Its knobs pass through (ROUNDS, WRK_DUR, H2_DUR, PATHS, SKIP_SSH,
# SKIP_LT, ...). Quick smoke: ROUNDS=1 WRK_DUR=2 H2_DUR=2 bench/run-anchors.sh
#   BUILD_DIR   where the binaries are (default <repo>/build; built here when missing)
#   TM_PORT     public port of tunnelmux-server (default 8080)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_DIR=${SHARED_DIR:-$ROOT/../shared}
ANCHORS=$SHARED_DIR/bench/anchors.sh
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
TM_PORT=${TM_PORT:-8080}

if [ ! -f "$ANCHORS" ]; then
    echo "run-anchors: $ANCHORS not found (set SHARED_DIR)" >&2
    exit 1
fi
if [ ! -x "$BUILD_DIR/tunnelmux-server" ] || [ ! -x "$BUILD_DIR/tunnelmux-client" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build "$BUILD_DIR" -j "$(nproc)" --target tunnelmux-server tunnelmux-client
fi

# printf %q keeps paths with spaces intact inside the commands anchors.sh runs with bash -c
# client authentication is mandatory (docs/SECURITY.md): a random token shared by both commands;
# the per-client request rate limit is lifted so it does not cap the measurement
TM_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export TUNNEL_SERVER_CMD="PORT=$TM_PORT DOMAIN=example.com LISTEN_ADDR=127.0.0.1 ADMIN_ADDR=127.0.0.1:0 LOG_LEVEL=warn AUTH_TOKEN=$TM_TOKEN RATE_LIMIT_RPS=0 exec $(printf %q "$BUILD_DIR/tunnelmux-server")"
export TUNNEL_CLIENT_CMD="SERVER_URL=ws://127.0.0.1:$TM_PORT CLIENT_ID=myapp LOCAL_HOST=127.0.0.1 LOCAL_PORT=3000 LOG_LEVEL=warn AUTH_TOKEN=$TM_TOKEN exec $(printf %q "$BUILD_DIR/tunnelmux-client")"
export TUNNEL_URL=http://127.0.0.1:$TM_PORT
export TUNNEL_HOST=myapp.example.com
exec bash "$ANCHORS" "$@"
