#!/usr/bin/env bash
# e2e: command-line and environment handling of both binaries (src/common/config.c behind them):
# --help lists every documented setting, --version, malformed values stop start-up with exit 2 and
# one line naming the variable, flags win over the environment.
source "$(dirname "$0")/lib.sh"
require_binaries

SERVER_VARS="PORT DOMAIN MAX_CLIENTS CHUNK_SIZE MAX_MESSAGE_SIZE READ_TIMEOUT WRITE_TIMEOUT LISTEN_ADDR TLS_CERT TLS_KEY MAX_REQUEST_BODY BODY_SPOOL_DIR BODY_SPOOL_THRESHOLD LOG_LEVEL LOG_FORMAT AUTH_TOKEN AUTH_TOKENS_FILE INSECURE_NO_AUTH BASIC_AUTH BASIC_AUTH_FILE RATE_LIMIT_RPS RATE_LIMIT_BURST RATE_LIMIT_BPS MAX_HEADER_COUNT MAX_HEADER_BYTES MAX_STREAMS_PER_CLIENT MAX_STREAMS_PER_CONNECTION MAX_BUFFER_PER_CLIENT STREAM_WINDOW UPGRADE_IDLE_TIMEOUT ZSTD_WINDOW_LOG COMPRESSION ZSTD_LEVEL H2_RESET_BUDGET REQUEST_TIMEOUT"
CLIENT_VARS="SERVER_URL CLIENT_ID LOCAL_HOST LOCAL_PORT LOCAL_SCHEMA MAX_MESSAGE_SIZE READ_TIMEOUT WRITE_TIMEOUT RECONNECT_DELAY MAX_RETRIES MAX_STREAMS STREAM_WINDOW AUTH_TOKEN AUTH_TOKEN_FILE HOST_HEADER TLS_CA_FILE TLS_INSECURE LOG_LEVEL LOG_FORMAT COMPRESSION ZSTD_LEVEL"

for side in server client; do
    bin=$SERVER_BIN vars=$SERVER_VARS
    [ $side = client ] && bin=$CLIENT_BIN vars=$CLIENT_VARS
    out=$(timeout 5 "$bin" --help 2>&1)
    check_eq "$side --help exits 0" 0 "$?"
    for v in $vars; do
        check_match "$side --help lists $v" "(^|[^A-Z_])${v}([^A-Z_]|$)" "$out"
    done
    out=$(timeout 5 "$bin" --version 2>&1)
    check_match "$side --version" "tunnelmux-$side [0-9]+\.[0-9]+\.[0-9]+" "$out"
    out=$(timeout 5 "$bin" --no-such-option 2>&1)
    rc=$?
    check_eq "$side unknown option -> exit 2" 2 "$rc"
    check_contains "$side unknown option message" "unknown option --no-such-option" "$out"
done

out=$(PORT=70000 timeout 5 "$SERVER_BIN" 2>&1)
rc=$?
check_eq "server PORT=70000 -> exit 2" 2 "$rc"
check_contains "server names PORT" "PORT: '70000' is out of range 1..65535" "$out"
out=$(timeout 5 "$SERVER_BIN" --chunk-size abc 2>&1)
rc=$?
check_eq "server --chunk-size abc -> exit 2" 2 "$rc"
check_contains "server names CHUNK_SIZE" "CHUNK_SIZE: 'abc' is not a size" "$out"
out=$(STREAM_WINDOW=1k timeout 5 "$SERVER_BIN" 2>&1)
rc=$?
check_eq "server STREAM_WINDOW=1k -> exit 2" 2 "$rc"
check_contains "server names STREAM_WINDOW" "STREAM_WINDOW: '1k' is out of range 64k..16M" "$out"
out=$(timeout 5 "$CLIENT_BIN" --stream-window 32M 2>&1)
rc=$?
check_eq "client --stream-window 32M -> exit 2" 2 "$rc"
check_contains "client names STREAM_WINDOW" "STREAM_WINDOW: '32M' is out of range 64k..16M" "$out"
# the local connection budget (docs/OPERATIONS.md §7): validated like the others
out=$(LOCAL_MAX_CONNECTIONS=-1 timeout 5 "$CLIENT_BIN" 2>&1)
rc=$?
check_eq "client LOCAL_MAX_CONNECTIONS=-1 -> exit 2" 2 "$rc"
check_contains "client names LOCAL_MAX_CONNECTIONS" "LOCAL_MAX_CONNECTIONS: '-1' is out of range 0..100000" "$out"
out=$(timeout 5 "$CLIENT_BIN" --local-queue-max=-2 2>&1)
rc=$?
check_eq "client --local-queue-max=-2 -> exit 2" 2 "$rc"
check_contains "client names LOCAL_QUEUE_MAX" "LOCAL_QUEUE_MAX: '-2' is out of range -1..100000" "$out"
out=$(LOCAL_CONNECT_TIMEOUT=0 timeout 5 "$CLIENT_BIN" 2>&1)
rc=$?
check_eq "client LOCAL_CONNECT_TIMEOUT=0 -> exit 2" 2 "$rc"
check_contains "client names LOCAL_CONNECT_TIMEOUT" "LOCAL_CONNECT_TIMEOUT" "$out"
out=$(timeout 5 "$CLIENT_BIN" --local-max-connecting four 2>&1)
rc=$?
check_eq "client --local-max-connecting four -> exit 2" 2 "$rc"
check_contains "client names LOCAL_MAX_CONNECTING" "LOCAL_MAX_CONNECTING: 'four' is not an integer" "$out"
out=$("$CLIENT_BIN" --help 2>&1)
for v in LOCAL_MAX_CONNECTIONS LOCAL_MAX_CONNECTING LOCAL_QUEUE_MAX LOCAL_CONNECT_TIMEOUT; do
    check_contains "client --help lists $v" "$v" "$out"
done
out=$(CLIENT_ID=bad_name SERVER_URL=ws://127.0.0.1:1 LOCAL_PORT=1 timeout 5 "$CLIENT_BIN" 2>&1)
rc=$?
check_eq "client CLIENT_ID=bad_name -> exit 2" 2 "$rc"
check_contains "client names CLIENT_ID" "CLIENT_ID" "$out"

out=$(BODY_SPOOL_DIR="$T/no-such-dir" INSECURE_NO_AUTH=1 PORT=$(free_port) timeout 5 "$SERVER_BIN" 2>&1)
rc=$?
check_eq "server BODY_SPOOL_DIR missing -> exit 2" 2 "$rc"
check_contains "server names BODY_SPOOL_DIR" "BODY_SPOOL_DIR: '$T/no-such-dir' is not a writable directory" "$out"

# no token and no --insecure-no-auth: refuse to start, naming the settings
out=$(env -u AUTH_TOKEN -u AUTH_TOKENS_FILE PORT=$(free_port) timeout 5 "$SERVER_BIN" 2>&1)
rc=$?
check_eq "server without a token -> exit 2" 2 "$rc"
check_contains "server names AUTH_TOKEN" "AUTH_TOKEN or AUTH_TOKENS_FILE is required" "$out"

# flags win over the environment: env says a bad port, the flag a good one -> the env is parsed
# first and rejected, so use a good env port and check the flag's port is the one listening
P1=$(free_port)
P2=$(free_port)
spawn SPID "$T/server-flag.log" env PORT="$P1" DOMAIN="$DOMAIN" LISTEN_ADDR=127.0.0.1 ADMIN_ADDR=127.0.0.1:0 INSECURE_NO_AUTH=1 "$SERVER_BIN" --port "$P2"
if wait_port "$P2" 10; then pass "server listens on the flag's port"; else fail "flag wins over env" "$(tail -3 "$T/server-flag.log")"; fi
(exec 3<>"/dev/tcp/127.0.0.1/$P1") 2>/dev/null && fail "env port not used" || pass "env port not used"
stop_pid "$SPID"
exit 0
