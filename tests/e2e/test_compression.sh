#!/usr/bin/env bash
# e2e: COMPRESSION (both binaries). zstd is used only when both sides offer it; either side saying
# off turns it off for both directions. With it on, a compressible 4 MiB upload and download cross
# the tunnel in far fewer WebSocket bytes than their size; with it off, in at least their size.
# Bodies arrive intact in every combination (SHA-256 at both ends).
source "$(dirname "$0")/lib.sh"
require_binaries

start_echo app || exit 1
SIZE=$((4 * 1024 * 1024))
head -c "$SIZE" /dev/zero | tr '\0' 'a' >"$T/text.bin" # compresses ~1000:1
gen_file "$T/rand.bin" $((1024 * 1024)) compression-seed
want_text=$(sha256sum <"$T/text.bin" | cut -d' ' -f1)
want_rand=$(sha256sum <"$T/rand.bin" | cut -d' ' -f1)

# tunnel_bytes DIRECTION: tunnelmux_client_tunnel_bytes_total{client="app",direction=...} from /metrics
tunnel_bytes() {
    curl -s --max-time 5 "http://127.0.0.1:$(admin_port)/metrics" |
        awk -v d="direction=\"$1\"" 'index($0, "tunnelmux_client_tunnel_bytes_total{client=\"app\"," d "}") == 1 {print $2}'
}

# run SERVER_SETTING CLIENT_SETTING EXPECTED(on|off)
run() {
    local srv=$1 cli=$2 want=$3
    echo "== server COMPRESSION=$srv, client COMPRESSION=$cli -> zstd $want"
    start_server COMPRESSION="$srv" || return 1
    start_client app "$ECHO_PORT" COMPRESSION="$cli"
    local cpid=$CLIENT_PID
    wait_ready app / || return 1
    check "client reports zstd $want" grep -q "(zstd $want)" "$T/client-app.log"

    local in0 out0 in1 out1 got direct via
    in0=$(tunnel_bytes in)
    out0=$(tunnel_bytes out)
    got=$(tcurl app /upload -X POST --data-binary @"$T/text.bin" | grep -o '"body_sha256": *"[0-9a-f]*"' | grep -o '[0-9a-f]\{64\}')
    check_eq "[$want] compressible upload intact" "$want_text" "$got"
    got=$(tcurl app /upload -X POST --data-binary @"$T/rand.bin" | grep -o '"body_sha256": *"[0-9a-f]*"' | grep -o '[0-9a-f]\{64\}')
    check_eq "[$want] random upload intact" "$want_rand" "$got"
    out1=$(tunnel_bytes out)
    # the echo service streams N deterministic (compressible) bytes at /bytes/N; its own answer is
    # the reference
    direct=$(curl -s --max-time 30 "http://127.0.0.1:$ECHO_PORT/bytes/$SIZE" | sha256sum | cut -d' ' -f1)
    via=$(tcurl app "/bytes/$SIZE" | sha256sum | cut -d' ' -f1)
    check_eq "[$want] download intact" "$direct" "$via"
    in1=$(tunnel_bytes in)
    local up=$((out1 - out0)) down=$((in1 - in0))
    echo "MEASURED: [$want] server->client $up B for 5 MiB of uploads; client->server $down B for a $SIZE B download"
    if [ "$want" = on ]; then
        check "[$want] uploads compressed on the wire ($up B < 2 MiB for 5 MiB, the random MiB sent plain)" test "$up" -lt $((2 * 1024 * 1024))
        check "[$want] download compressed on the wire ($down B < half)" test "$down" -lt $((SIZE / 2))
    else
        check "[$want] uploads not compressed ($up B >= 5 MiB)" test "$up" -ge $((5 * 1024 * 1024))
        check "[$want] download not compressed ($down B >= $SIZE)" test "$down" -ge "$SIZE"
    fi
    stop_pid "$cpid"
    stop_pid "$SERVER_PID"
}

run on on on
run off on off
run on off off
exit 0
