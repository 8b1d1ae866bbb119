#!/usr/bin/env bash
# e2e (issue 4): bad configurations stop start-up before anything listens or dials: exit code 2 and
# exactly one line on stderr that names the variable. Covers both binaries, environment and
# flags, the operations settings (PING_*, DRAIN_TIMEOUT, RECONNECT_*, LOG_FILE) and the new
# settings appearing in --help with their env names and defaults.
source "$(dirname "$0")/lib.sh"
require_binaries

# bad WHICH VAR "ENV=VALUE..." [FLAGS...]: start-up fails with exit 2 and one line naming VAR
bad() {
    local which=$1 var=$2 envs=$3
    shift 3
    local bin=$SERVER_BIN
    [ "$which" = client ] && bin=$CLIENT_BIN
    local out rc lines
    # shellcheck disable=SC2086
    out=$(env -i PATH="$PATH" CLIENT_ID=okname $envs timeout 5 "$bin" "$@" 2>&1 >/dev/null)
    rc=$?
    lines=$(printf '%s\n' "$out" | grep -c .)
    if [ "$rc" = 2 ] && [ "$lines" = 1 ] && [[ "$out" == *"$var"* ]]; then
        pass "$which ${envs:-}${*:+ $*} -> exit 2: $out"
    else
        fail "$which ${envs:-} $*" "exit $rc, $lines line(s): $out"
    fi
}

echo "== server"
bad server PORT "PORT=70000"
bad server PORT "PORT=0"
bad server PORT "PORT=http"
bad server CHUNK_SIZE "CHUNK_SIZE=abc"
bad server CHUNK_SIZE "CHUNK_SIZE=100"
bad server MAX_CLIENTS "MAX_CLIENTS=0"
bad server MAX_CLIENTS "MAX_CLIENTS=-1"
bad server MAX_MESSAGE_SIZE "MAX_MESSAGE_SIZE=2G"
bad server READ_TIMEOUT "READ_TIMEOUT=soon"
bad server WRITE_TIMEOUT "WRITE_TIMEOUT=0"
bad server DOMAIN "DOMAIN=bad_domain!"
bad server LOG_LEVEL "LOG_LEVEL=loud"
bad server LOG_FILE "LOG_FILE=/nonexistent-dir/tm.log"
bad server PING_TIMEOUT "PING_INTERVAL=10 PING_TIMEOUT=5"
bad server DRAIN_TIMEOUT "DRAIN_TIMEOUT=-1"
bad server PORT "" --port=99999
bad server "unknown option" "" --max-client=5
bad server PORT "" --port

echo "== client"
bad client SERVER_URL "SERVER_URL=ftp://x"
bad client SERVER_URL "SERVER_URL=http://example.com"
bad client SERVER_URL "SERVER_URL=ws://"
bad client CLIENT_ID "CLIENT_ID=bad_name"
bad client CLIENT_ID "CLIENT_ID=-leading"
bad client CLIENT_ID "CLIENT_ID=a.b"
bad client CLIENT_ID "CLIENT_ID=$(printf 'x%.0s' {1..64})"
bad client CLIENT_ID "" --client-id=
bad client LOCAL_PORT "LOCAL_PORT=65536"
bad client LOCAL_SCHEMA "LOCAL_SCHEMA=gopher"
bad client MAX_MESSAGE_SIZE "MAX_MESSAGE_SIZE=1k"
bad client RECONNECT_DELAY "RECONNECT_DELAY=5x"
bad client MAX_RETRIES "MAX_RETRIES=-2"
bad client RECONNECT_BACKOFF "RECONNECT_BACKOFF=0.5"
bad client RECONNECT_BACKOFF "RECONNECT_BACKOFF=fast"
bad client RECONNECT_JITTER "RECONNECT_JITTER=1.5"
bad client RECONNECT_MAX_DELAY "RECONNECT_MAX_DELAY=forever"
bad client PING_INTERVAL "PING_INTERVAL=-1"
bad client PING_TIMEOUT "PING_INTERVAL=3 PING_TIMEOUT=3"
bad client DRAIN_TIMEOUT "DRAIN_TIMEOUT=2d"
bad client LOG_FILE "LOG_FILE=/nonexistent-dir/tm.log"
bad client TLS_INSECURE "TLS_INSECURE=maybe"

echo "== --help lists the operations settings with env names and defaults"
out=$(timeout 5 "$SERVER_BIN" --help 2>&1)
for v in "PING_INTERVAL .*default: 15s" "PING_TIMEOUT .*default: 45s" "DRAIN_TIMEOUT .*default: 30s" "LOG_FILE" \
    "READ_TIMEOUT .*default: 120s" "WRITE_TIMEOUT .*default: 30s" "MAX_CLIENTS .*default: 100" "CHUNK_SIZE .*default: 8192"; do
    check_match "server --help: $v" "$v" "$out"
done
out=$(timeout 5 "$CLIENT_BIN" --help 2>&1)
for v in "RECONNECT_DELAY .*default: 5s" "MAX_RETRIES .*default: -1" "RECONNECT_BACKOFF .*default: 1" \
    "RECONNECT_MAX_DELAY .*default: 5m" "RECONNECT_JITTER .*default: 0" "PING_INTERVAL .*default: 15s" \
    "PING_TIMEOUT .*default: 45s" "DRAIN_TIMEOUT .*default: 30s" "LOG_FILE"; do
    check_match "client --help: $v" "$v" "$out"
done

echo "== good values are accepted (the client gives up after MAX_RETRIES with a clear message, exit 1)"
DEAD=$(free_port)
out=$(env -i PATH="$PATH" CLIENT_ID=okname SERVER_URL="ws://127.0.0.1:$DEAD" RECONNECT_DELAY=100ms RECONNECT_BACKOFF=1.5 \
    RECONNECT_JITTER=0.1 RECONNECT_MAX_DELAY=1s MAX_RETRIES=2 PING_INTERVAL=500ms PING_TIMEOUT=2s DRAIN_TIMEOUT=1s \
    timeout 20 "$CLIENT_BIN" 2>&1)
rc=$?
check_eq "client with MAX_RETRIES=2 and no server exits 1" 1 "$rc"
check_contains "client says it gives up" "giving up after 3 failed attempt(s) (MAX_RETRIES=2)" "$out"
check_eq "client made 3 attempts" 2 "$(grep -c 'reconnecting to' <<<"$out")"
exit 0
