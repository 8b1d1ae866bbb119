#!/usr/bin/env bash
# run-wan.sh — runs the shared long-link benchmark (../shared/bench/wan.sh: the tunnel's WebSocket
# crosses delay_relay.py, side by side with the direct path and ssh -R) with this repository's
# binaries, and prints its table.
#
# The shared script is ../shared/bench/wan.sh relative to the repository root, or
# $SHARED_DIR/bench/wan.sh. Its knobs pass through: DELAY_MS (one way; RTT is twice), RATE_MBIT,
# CAP_MIB, ROUNDS, DL_MB, UL_MB, PAR_N, PAR_MB, SMALL_N, PATHS, BASE_PORT, SRV_ENV, CLI_ENV, KEEP.
# Quick run: ROUNDS=1 DL_MB=128 PAR_MB=16 SMALL_N=100 bench/run-wan.sh
#   BUILD_DIR   where the binaries are (default <repo>/build; built here when missing)
#   PATHS       default "direct ssh tunnel", without ssh when sshd/ssh are not installed
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_DIR=${SHARED_DIR:-$ROOT/../shared}
WAN=$SHARED_DIR/bench/wan.sh
BUILD_DIR=${BUILD_DIR:-$ROOT/build}

if [ ! -f "$WAN" ]; then
    echo "run-wan: $WAN not found (set SHARED_DIR)" >&2
    exit 1
fi
for tool in nginx curl python3; do
    command -v "$tool" >/dev/null || { echo "run-wan: $tool is required" >&2; exit 1; }
done
if [ ! -x "$BUILD_DIR/tunnelmux-server" ] || [ ! -x "$BUILD_DIR/tunnelmux-client" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build "$BUILD_DIR" -j "$(nproc)" --target tunnelmux-server tunnelmux-client
fi
if [ -z "${PATHS:-}" ]; then
    PATHS="direct ssh tunnel"
    if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null; then
        echo "run-wan: sshd/ssh not installed: no ssh -R column (apt-get install openssh-server; the benchmark starts its own sshd on 127.0.0.1 with a throwaway key)" >&2
        PATHS="direct tunnel"
    fi
fi
export PATHS
export SRV="$BUILD_DIR/tunnelmux-server" CLI="$BUILD_DIR/tunnelmux-client"
exec bash "$WAN" "$@"
