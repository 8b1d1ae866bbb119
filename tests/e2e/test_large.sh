#!/usr/bin/env bash
# e2e: a large body (1 GiB by default, LARGE_SIZE to change: any `head -c` size) down from nginx and
# up to the echo service, over public HTTP/1.1 and h2c; SHA-256 compared at both ends (the file's
# precomputed digest vs what curl received / what the echo service hashed while streaming).
# The file is generated into the test's temp dir from a seeded generator and always deleted.
source "$(dirname "$0")/lib.sh"
require_binaries

SIZE=${LARGE_SIZE:-1G}
mkdir -p "$T/big"
chmod 755 "$T" "$T/big"
log "generating $SIZE test file"
gen_file "$T/big/big.bin" "$SIZE" tunnelmux-e2e-large || { fail "generate $SIZE file"; exit 1; }
echo ready >"$T/big/ready.txt"
BYTES=$(stat -c %s "$T/big/big.bin")
SUM=$(sha256sum <"$T/big/big.bin" | cut -d' ' -f1)
log "file: $BYTES bytes, sha256 $SUM"

start_nginx "$T/big" || exit 1
start_echo up || exit 1
start_server MAX_REQUEST_BODY=$((BYTES + 1048576)) READ_TIMEOUT=120 || exit 1
start_client dl "$NGINX_PORT"
DL_PID=$CLIENT_PID
start_client up "$ECHO_PORT"
wait_ready dl /ready.txt || exit 1
wait_ready up / || exit 1

# Per-transfer time limit (1 GiB at >= 11 MB/s); after one transfer stalls the rest are not
# attempted (reported failed) so a stuck tunnel costs minutes, not a quarter of an hour.
XFER_MAX=${LARGE_MAX_TIME:-100}
STALLED=""

# down LABEL PROTO...: GET big.bin through the tunnel, hash on the fly
down() {
    local label=$1
    shift
    if [ -n "$STALLED" ]; then
        fail "$label download" "not attempted: $STALLED stalled"
        return
    fi
    local t0=$SECONDS out
    out=$( (CURL_MAX_TIME=$XFER_MAX tcurl dl /big.bin "$@" -o - -w '%{stderr}%{http_code} %{size_download}\n' 2>"$T/down.meta" |
        sha256sum | cut -d' ' -f1) )
    local meta
    meta=$(grep -E '^[0-9]{3} [0-9]+$' "$T/down.meta" | tail -1)
    check_eq "$label download: status and size" "200 $BYTES" "$meta"
    check_eq "$label download: sha256" "$SUM" "$out"
    [ "$meta" = "200 $BYTES" ] || STALLED="$label download"
    log "$label download took $((SECONDS - t0)) s"
}

# up LABEL PROTO...: PUT big.bin through the tunnel (streamed from disk), the echo service hashes it
up() {
    local label=$1
    shift
    if [ -n "$STALLED" ]; then
        fail "$label upload" "not attempted: $STALLED stalled"
        return
    fi
    local t0=$SECONDS code
    code=$(CURL_MAX_TIME=$XFER_MAX tcurl up /upload "$@" -T "$T/big/big.bin" -o "$T/up.json" -w '%{http_code}')
    check_eq "$label upload: status" 200 "$code"
    [ "$code" = 200 ] || STALLED="$label upload"
    check_eq "$label upload: length seen by the local service" "$BYTES" "$(jq -r .body_length "$T/up.json" 2>/dev/null)"
    check_eq "$label upload: sha256 seen by the local service" "$SUM" "$(jq -r .body_sha256 "$T/up.json" 2>/dev/null)"
    log "$label upload took $((SECONDS - t0)) s"
}

echo "== $SIZE over HTTP/1.1"
down h1
up h1
echo "== $SIZE over h2c"
down h2c --http2-prior-knowledge
up h2c --http2-prior-knowledge

# memory stayed bounded on the client (flow control): its peak RSS well under the body size
if [ -r "/proc/$DL_PID/status" ]; then
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DL_PID/status")
    if [ "${hwm:-0}" -lt 262144 ]; then pass "client peak RSS ${hwm} KiB < 256 MiB"; else fail "client memory bounded" "VmHWM ${hwm} KiB"; fi
fi
exit 0
