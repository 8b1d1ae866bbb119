#!/usr/bin/env bash
# Soak: large HTTP/2 uploads through the tunnel under CPU load, checking every byte (issue 18: one
# ASan run once saw a 512 MiB h2c upload arrive 49152 bytes long; this hunts for that).
#
# Each round streams SIZE MiB of AES-CTR keystream (a new seed per round: a duplicated or dropped
# frame changes the digest, unlike zeroes) from a pipe through curl over h2c (prior knowledge) and
# over h2/TLS to the echo service, and compares what curl read (sha256 + length, taken with tee)
# with what the local service received (body_sha256, body_length) and with the server's access-log
# bytes_in, and curl's own size_upload (which of the two ends counted too much). LOAD busy loops
# (`yes`, bounded by `timeout`) run beside it.
#
# Usage: TM_BUILD_DIR=build-asan bench/soak_upload_integrity.sh [ROUNDS=10] [SIZE_MIB=512] [LOAD=2]
# Every round is bounded (curl --max-time 240); the whole run by ROUNDS. Exit status 1 on any mismatch.
source "$(dirname "$0")/../tests/e2e/lib.sh"
require_binaries
ROUNDS=${1:-10}
MIB_N=${2:-512}
LOAD=${3:-2}
BYTES=$((MIB_N * 1048576))
if grep -qa __asan_init "$SERVER_BIN" 2>/dev/null; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
fi
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[2])); print(d[sys.argv[1]])' "$1" "$2" 2>/dev/null; }

make_cert "$T" || exit 1
start_echo app || exit 1
start_server TLS_CERT="$T/cert.pem" TLS_KEY="$T/key.pem" || exit 1
start_client app "$ECHO_PORT" SERVER_URL="wss://127.0.0.1:$SERVER_PORT" TLS_CA_FILE="$T/cert.pem"
SCHEME=https
CURL_TLS=(--cacert "$T/cert.pem")
wait_ready app / || exit 1
# h2c with prior knowledge on the same port is not possible with TLS on: a second server for it
SERVER_TLS_PORT=$SERVER_PORT
SERVER_TLS_PID=$SERVER_PID
PLAIN_T="$T/plain"
mkdir -p "$PLAIN_T"
T=$PLAIN_T start_server || exit 1
SERVER_PLAIN_PORT=$SERVER_PORT
T=$PLAIN_T start_client app "$ECHO_PORT"
SCHEME=http SERVER_PORT=$SERVER_PLAIN_PORT T=$PLAIN_T wait_ready app / || exit 1

load_pids=()
for ((i = 0; i < LOAD; i++)); do
    timeout $((ROUNDS * 2 * 300)) yes >/dev/null &
    load_pids+=("$!")
    PIDS+=("$!")
done

# one_upload LABEL SCHEME PORT LOG CURL-ARGS...
one_upload() {
    local label=$1 scheme=$2 port=$3 logf=$4 seed="soak-$RANDOM-$RANDOM"
    shift 4
    rm -f "$T/r.json" "$T/sent.sum"
    local t0=$SECONDS
    openssl enc -aes-128-ctr -nosalt -pass "pass:$seed" -pbkdf2 </dev/zero 2>/dev/null | head -c "$BYTES" |
        tee >(sha256sum | cut -d' ' -f1 >"$T/sent.sum") |
        curl -sS --max-time 240 --resolve "app.$DOMAIN:$port:127.0.0.1" --cacert "$T/cert.pem" "$@" -T - \
            -o "$T/r.json" -w '%{size_upload}' "$scheme://app.$DOMAIN:$port/echo?soak=$seed" >"$T/up.txt" 2>>"$T/curl.err"
    local rc=$?
    local w
    for ((w = 0; w < 50; w++)); do [ -s "$T/sent.sum" ] && break; sleep 0.1; done
    local sent got_sum got_len bin up
    sent=$(cat "$T/sent.sum" 2>/dev/null)
    got_sum=$(json body_sha256 "$T/r.json")
    got_len=$(json body_length "$T/r.json")
    bin=$(grep -a "soak=$seed" "$logf" | sed -nE 's/.*"?bytes_in"?[=:]"?([0-9]+).*/\1/p' | tail -1)
    up=$(cat "$T/up.txt" 2>/dev/null)
    log "$label: curl rc $rc, $((SECONDS - t0)) s, sent $BYTES bytes sha256 ${sent:0:16} (curl size_upload ${up:-?}), local service got ${got_len:-?} sha256 ${got_sum:0:16}, access log bytes_in ${bin:-?}"
    # curl's own count tells a client that sent too much from a server that parsed too much
    check_eq "$label: curl size_upload" "$BYTES" "$up"
    check_eq "$label: curl finished" 0 "$rc"
    check_eq "$label: length at the local service" "$BYTES" "$got_len"
    check_eq "$label: sha256 at the local service" "$sent" "$got_sum"
    check_eq "$label: access log bytes_in" "$BYTES" "$bin"
}

for ((r = 1; r <= ROUNDS; r++)); do
    one_upload "round $r h2c" http "$SERVER_PLAIN_PORT" "$PLAIN_T/server.log" --http2-prior-knowledge
    one_upload "round $r h2/TLS" https "$SERVER_TLS_PORT" "$T/server.log" --http2
done
for p in "${load_pids[@]}"; do kill "$p" 2>/dev/null; done
grep -a "ERROR: AddressSanitizer\|runtime error" "$T"/server.log "$PLAIN_T"/server.log >/dev/null &&
    fail "sanitizer report in a server log"
exit 0
