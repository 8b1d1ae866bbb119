#!/usr/bin/env bash
# e2e: Expect: 100-continue decided by the local service (PROTOCOL.md §9.3, capability bit 1).
# A local service (expect_service.py) that
#  - answers 401 before reading: the user gets the 401 and its 8 MiB body is never sent
#    (%{size_upload} 0), over plain HTTP/1.1, h2c with prior knowledge and h2 over TLS;
#  - sends 100 Continue and reads: 200, SHA-256 equal at both ends, over each protocol; curl waits up
#    to 10 s for the 100 (--expect100-timeout), so a quick answer proves the 100 was relayed;
#  - never sends 100 (python3 -m http.server style): the client sends one of its own after
#    EXPECT_CONTINUE_TIMEOUT (1 s), the upload completes, digest equal;
#  - python3-h2: Expect over h2c, the :status 100 HEADERS frame read before the body is sent;
#  - HTTP/1.1 over TLS keeps h2o's buffered path (h2o answers 100 itself): 200, digest equal;
#  - an old client (EXPECT_CONTINUE_TIMEOUT=0: the capability is not offered): today's behaviour,
#    the server answers 100 itself and the local service sees no Expect.
source "$(dirname "$0")/lib.sh"
require_binaries

MIB=1048576
H2PY=/usr/bin/python3 # python3-h2 is a Debian package: the system interpreter has it
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[2])); print(d[sys.argv[1]])' "$1" "$2" 2>/dev/null; }

gen_file "$T/8m.bin" $((8 * MIB)) expect
SUM8=$(sha256sum "$T/8m.bin" | cut -d' ' -f1)
gen_file "$T/64k.bin" 65536 small
SUM64K=$(sha256sum "$T/64k.bin" | cut -d' ' -f1)

spawn SVC_PID "$T/service.log" python3 "$E2E_DIR/expect_service.py" "$T/svc.port" "$T/events.jsonl"
for ((i = 0; i < 50; i++)); do [ -s "$T/svc.port" ] && break; sleep 0.1; done
SVC_PORT=$(cat "$T/svc.port")

# deny LABEL CURL-ARGS...: the 401 arrives, the body is not sent
deny() {
    local label=$1
    shift
    local out
    out=$(tcurl app /deny "$@" -H 'Expect: 100-continue' --expect100-timeout 10 --data-binary @"$T/8m.bin" -o "$T/deny.out" \
        -w '%{http_code} %{size_upload} %{time_total}')
    log "$label deny: $out"
    check_eq "$label: the local service's 401 reaches the user" 401 "${out%% *}"
    local up=${out#* }
    up=${up%% *}
    check "$label: the 8 MiB body was not sent (size_upload $up)" test "${up:-99999999}" -lt 65536
    check "$label: the 401 came without waiting for a timeout (${out##* } s < 5)" \
        python3 -c "import sys; sys.exit(0 if ${out##* } < 5 else 1)"
}

# relay LABEL PATH CURL-ARGS...: the upload completes with the digest equal at both ends
relay() {
    local label=$1 path=$2
    shift 2
    local out t
    rm -f "$T/relay.json"
    out=$(tcurl app "$path" "$@" -H 'Expect: 100-continue' --expect100-timeout 10 --data-binary @"$T/8m.bin" -o "$T/relay.json" \
        -w '%{http_code} %{time_total}')
    log "$label $path: $out"
    check_eq "$label $path: 200" 200 "${out%% *}"
    check_eq "$label $path: body intact (sha256 at the local service)" "$SUM8" "$(json sha256 "$T/relay.json")"
    check_eq "$label $path: the local service saw Expect: 100-continue" 100-continue "$(json expect "$T/relay.json")"
    t=${out##* }
    if [ "$path" = /continue ]; then
        check "$label: the local 100 was relayed (done in ${t} s, curl would wait 10 s)" \
            python3 -c "import sys; sys.exit(0 if $t < 5 else 1)"
    else
        local wait
        wait=$(python3 -c "import json; d=json.load(open('$T/relay.json')); print('%.2f' % (d['first_byte_at'] - d['head_at']))" 2>/dev/null)
        log "$label /plain: first body byte ${wait} s after the head at the local service"
        check "$label: a service that never sends 100 gets the body after EXPECT_CONTINUE_TIMEOUT (${wait} s in 0.8..5)" \
            python3 -c "import sys; sys.exit(0 if 0.8 <= ${wait:-99} < 5 else 1)"
    fi
}

echo "== plain server: HTTP/1.1 and h2c"
start_server || exit 1
start_client app "$SVC_PORT"
wait_ready app /plain || exit 1
check "the client and the server agreed to the continue relay" grep -q "(continue relay on)" "$T/client-app.log"

deny "h1" --http1.1
relay "h1" /continue --http1.1
relay "h1" /plain --http1.1
deny "h2c" --http2-prior-knowledge
relay "h2c" /continue --http2-prior-knowledge
relay "h2c" /plain --http2-prior-knowledge
check_eq "the access log counts no body for the denied uploads (h1, h2c)" 2 "$(grep -c 'path=/deny status=401 bytes_in=0 ' "$T/server.log")"
# a user that does not wait for the 100 (its own 0.1 s timeout) sends the body anyway: it arrives whole
for proto in --http1.1 --http2-prior-knowledge; do
    rm -f "$T/nowait.json"
    out=$(tcurl app /plain $proto -H 'Expect: 100-continue' --expect100-timeout 0.1 --data-binary @"$T/8m.bin" -o "$T/nowait.json" \
        -w '%{http_code}')
    check_eq "$proto, user not waiting for the 100: 200, body intact" "200 $SUM8" "$out $(json sha256 "$T/nowait.json")"
done
# a small body with Expect streams too (the local service decides whatever the size)
out=$(tcurl app /deny --http1.1 -H 'Expect: 100-continue' --expect100-timeout 10 --data-binary @"$T/64k.bin" -o /dev/null \
    -w '%{http_code} %{size_upload}')
check_eq "h1, 64 KiB body: 401 before the body" "401 0" "$out"
rm -f "$T/small.json"
tcurl app /continue --http1.1 -H 'Expect: 100-continue' --expect100-timeout 10 --data-binary @"$T/64k.bin" -o "$T/small.json"
check_eq "h1, 64 KiB body: relayed 100, body intact" "$SUM64K" "$(json sha256 "$T/small.json")"
# chunked from a pipe
rm -f "$T/chunked.json"
cat "$T/8m.bin" | tcurl app /continue --http1.1 -H 'Expect: 100-continue' --expect100-timeout 10 -T - -o "$T/chunked.json"
check_eq "h1 chunked: relayed 100, body intact" "$SUM8" "$(json sha256 "$T/chunked.json")"

echo "== python3-h2: the :status 100 HEADERS frame, then the body"
"$H2PY" - "$SERVER_PORT" "app.$DOMAIN:$SERVER_PORT" "$T/8m.bin" >"$T/h2py.out" 2>&1 <<'EOF'
import hashlib, json, socket, sys, time
import h2.config, h2.connection, h2.events
port, authority, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
c.initiate_connection()
sid = c.get_next_available_stream_id()
c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", authority), (":path", "/continue"),
                     ("content-length", str(len(data))), ("expect", "100-continue")])
s.sendall(c.data_to_send())
got100, status, body, sent, ended = False, None, b"", 0, False
t0 = time.time()
while not ended and time.time() - t0 < 30:
    d = s.recv(65536)
    if not d:
        break
    for ev in c.receive_data(d):
        if isinstance(ev, h2.events.InformationalResponseReceived):
            got100 = dict(ev.headers).get(":status") == "100" and status is None and sent == 0
            print("informational", dict(ev.headers), "after", round(time.time() - t0, 3), "s")
        elif isinstance(ev, h2.events.ResponseReceived):
            status = dict(ev.headers).get(":status")
        elif isinstance(ev, h2.events.DataReceived):
            body += ev.data
            c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            ended = True
    # the body goes out only once the 100 arrived, within the windows
    while got100 and sent < len(data):
        room = min(c.local_flow_control_window(sid), c.max_outbound_frame_size, len(data) - sent)
        if room <= 0:
            break
        c.send_data(sid, data[sent:sent + room], end_stream=sent + room == len(data))
        sent += room
    s.sendall(c.data_to_send())
d = json.loads(body or b"{}")
print(json.dumps({"got100": got100, "status": status, "sha256": d.get("sha256"), "sent": sent}))
EOF
res=$(tail -1 "$T/h2py.out")
log "python3-h2: $(head -1 "$T/h2py.out") $res"
check_eq "python3-h2: the :status 100 HEADERS frame came before any body byte" True "$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['got100'])" "$res" 2>/dev/null)"
check_eq "python3-h2: 200, body intact" "200 $SUM8" "$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['status'], d['sha256'])" "$res" 2>/dev/null)"

echo "== old client (EXPECT_CONTINUE_TIMEOUT=0): the server answers 100 itself"
stop_pid "$CLIENT_PID"
start_client app "$SVC_PORT" EXPECT_CONTINUE_TIMEOUT=0
mv "$T/client-app.log" "$T/client-app-old.log" 2>/dev/null
wait_ready app /plain || exit 1
rm -f "$T/old.json"
out=$(tcurl app /continue --http1.1 -H 'Expect: 100-continue' --expect100-timeout 10 --data-binary @"$T/8m.bin" -o "$T/old.json" \
    -w '%{http_code} %{time_total}')
check_eq "old client h1: 200" 200 "${out%% *}"
check_eq "old client h1: body intact" "$SUM8" "$(json sha256 "$T/old.json")"
check_eq "old client h1: Expect not forwarded (the server answered it)" "" "$(json expect "$T/old.json")"
check "old client h1: the server's own 100 came at once (${out##* } s < 5)" python3 -c "import sys; sys.exit(0 if ${out##* } < 5 else 1)"
rm -f "$T/old.json"
tcurl app /continue --http2-prior-knowledge -H 'Expect: 100-continue' --data-binary @"$T/8m.bin" -o "$T/old.json"
check_eq "old client h2c: body intact, no Expect forwarded" "$SUM8 " "$(json sha256 "$T/old.json") $(json expect "$T/old.json")"
stop_pid "$CLIENT_PID"
stop_pid "$SERVER_PID"
mv "$T/server.log" "$T/server-plain.log"

echo "== TLS server: h2 (ALPN) and HTTP/1.1"
make_cert "$T" || fail "openssl certificate"
start_server TLS_CERT="$T/cert.pem" TLS_KEY="$T/key.pem" || exit 1
SCHEME=https
CURL_TLS=(--cacert "$T/cert.pem")
start_client app "$SVC_PORT" SERVER_URL="wss://127.0.0.1:$SERVER_PORT" TLS_CA_FILE="$T/cert.pem"
wait_ready app /plain || exit 1
deny "h2 TLS" --http2
relay "h2 TLS" /continue --http2
relay "h2 TLS" /plain --http2
# HTTP/1.1 over TLS with Expect stays on h2o's buffered path: h2o answers 100 itself
rm -f "$T/h1t.json"
out=$(tcurl app /continue --http1.1 -H 'Expect: 100-continue' --data-binary @"$T/8m.bin" -o "$T/h1t.json" -w '%{http_code}')
check_eq "h1 TLS (h2o's path): 200, body intact" "200 $SUM8" "$out $(json sha256 "$T/h1t.json")"

check_not_contains "no error events at the local service" '"error"' "$(cat "$T/events.jsonl")"
