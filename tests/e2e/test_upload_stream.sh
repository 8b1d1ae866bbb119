#!/usr/bin/env bash
# e2e: streamed HTTP/1.1 request bodies (src/server/upload.h, docs/OPERATIONS.md "Uploads").
# A plain HTTP/1.1 request with one Content-Length >= 256 KiB is forwarded while it arrives,
# instead of after h2o buffered all of it:
#  1. the local service sees the request head while the client is still sending, and the whole
#     body arrives intact (sha256), with and without Expect: 100-continue;
#  2. the server's RSS stays flat during a 256 MiB upload (no whole-body buffer or spool file);
#  3. answers given before the body is read (unknown name 404, basic auth 401) reach the client;
#  4. a request hidden in the body stays body (smuggling); the connection closes after a streamed
#     request (a pipelined request after it is not answered: the client retries it elsewhere, as
#     after any Connection: close); a keep-alive connection streams its second request too;
#  5. a client that stops mid-body: the local service sees the request cancelled, the tunnel serves on;
#  6. chunked bodies stream too (from a pipe at 2 MiB/s: head early, body intact, chunked to the
#     local service; a malformed one gets 400); small bodies keep h2o's path and arrive intact.
source "$(dirname "$0")/lib.sh"
require_binaries

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[sys.argv[1]])' "$1"; }

start_echo up || exit 1
printf 'locked user:secret\n' >"$T/basic"
start_server BASIC_AUTH_FILE="$T/basic" || exit 1
start_client up "$ECHO_PORT" LOCAL_SCHEMA=http
wait_ready up / || exit 1
start_client locked "$ECHO_PORT" LOCAL_SCHEMA=http
mkdir -p "$T/big"

# ------------------------------------------------------------------ 1. streamed while it arrives
gen_file "$T/big/6m.bin" 6M tm-upload-6m
sum6=$(sha256sum <"$T/big/6m.bin" | cut -d' ' -f1)
t0=$(date +%s.%N)
tcurl up /echo -H 'Expect:' --limit-rate 2M -T "$T/big/6m.bin" -D "$T/h1.txt" -o "$T/r1.json"
check_eq "6 MiB upload at 2 MiB/s: body intact" "$sum6" "$(json body_sha256 <"$T/r1.json")"
head_delay=$(python3 -c "import json; d=json.load(open('$T/r1.json')); print('%.2f' % (d['head_at'] - $t0))")
done_delay=$(python3 -c "import json; d=json.load(open('$T/r1.json')); print('%.2f' % (d['body_done_at'] - $t0))")
log "local service saw the head ${head_delay} s and the end ${done_delay} s after the upload started"
check "the head reached the local service while the body was still coming (${head_delay} s < 1.5 s)" \
    python3 -c "import sys; sys.exit(0 if $head_delay < 1.5 else 1)"
check "the body took the client's pace (${done_delay} s > 2)" python3 -c "import sys; sys.exit(0 if $done_delay > 2 else 1)"
check_contains "a streamed request closes its connection" "Connection: close" "$(tr -d '\r' <"$T/h1.txt")"
check_not_contains "the renamed header never reaches the local service" "x-tm-hidden-cl" "$(cat "$T/r1.json")"
check_contains "the access log counts the streamed body" "method=PUT path=/echo status=200 bytes_in=6291456" "$(cat "$T/server.log")"
check_eq "the local service got Content-Length" 6291456 \
    "$(python3 -c "import json; d=json.load(open('$T/r1.json')); print([v for k, v in d['headers'] if k.lower() == 'content-length'][0])")"

# curl's default Expect: 100-continue for large bodies: forwarded, the local service decides
# (PROTOCOL.md §9.3; this echo service never sends 100, so the client releases the body after
# EXPECT_CONTINUE_TIMEOUT — tests/e2e/test_expect_continue.sh has the other cases), then streamed
tcurl up /echo -T "$T/big/6m.bin" -o "$T/r2.json" -w '%{http_code}' >"$T/code2"
check_eq "Expect: 100-continue upload answered 200" 200 "$(cat "$T/code2")"
check_eq "Expect: 100-continue upload: body intact" "$sum6" "$(json body_sha256 <"$T/r2.json")"
check_contains "Expect is forwarded to the local service (continue relay)" '["expect", "100-continue"]' "$(tr 'A-Z' 'a-z' <"$T/r2.json")"

# ------------------------------------------------------------------ 2. flat server RSS
gen_file "$T/big/256m.bin" 256M tm-upload-256m
sum256=$(sha256sum <"$T/big/256m.bin" | cut -d' ' -f1)
srv0=$(rss_kib "$SERVER_PID")
(exec curl -sS --max-time 120 --resolve "up.$DOMAIN:$SERVER_PORT:127.0.0.1" -H 'Expect:' -T "$T/big/256m.bin" \
    -o "$T/r3.json" "$(url up /echo)") &
CURL_PID=$!
PIDS+=("$CURL_PID")
peak=$srv0
while kill -0 "$CURL_PID" 2>/dev/null; do
    r=$(rss_kib "$SERVER_PID")
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.1
done
wait "$CURL_PID"
log "server RSS ${srv0} KiB, peak ${peak} KiB during a 256 MiB upload"
check_eq "256 MiB upload: body intact" "$sum256" "$(json body_sha256 <"$T/r3.json" 2>/dev/null)"
check "server RSS growth $(((peak - srv0) / 1024)) MiB <= 48 during a 256 MiB upload" test $((peak - srv0)) -le $((48 * 1024))
rm -f "$T/big/256m.bin"

# ------------------------------------------------------------------ 3. answers before the body
code=$(tcurl nosuch /x -H 'Expect:' -T "$T/big/6m.bin" -o "$T/r4.txt" -w '%{http_code}' 2>"$T/r4.err")
check_eq "unknown name with a 6 MiB body: 404 reaches the client" 404 "$code"
check_contains "the 404 names the host" "nosuch" "$(cat "$T/r4.txt")"
code=$(tcurl nosuch /x -T "$T/big/6m.bin" -o /dev/null -w '%{http_code}' 2>/dev/null)
check_eq "unknown name, Expect: 100-continue: 404 without 100" 404 "$code"
code=$(tcurl locked /x -H 'Expect:' -T "$T/big/6m.bin" -o /dev/null -w '%{http_code}' 2>/dev/null)
check_eq "basic auth missing with a 6 MiB body: 401" 401 "$code"
code=$(tcurl locked /echo -u user:secret -H 'Expect:' -T "$T/big/6m.bin" -o "$T/r5.json" -w '%{http_code}' 2>/dev/null)
check_eq "basic auth given: 200" 200 "$code"
check_eq "basic auth given: body intact" "$sum6" "$(json body_sha256 <"$T/r5.json" 2>/dev/null)"

# ------------------------------------------------------------------ 4. smuggling, keep-alive
python3 - "$SERVER_PORT" "up.$DOMAIN" >"$T/raw.txt" 2>&1 <<'EOF'
import socket, sys, time
port, host = int(sys.argv[1]), sys.argv[2]

def read_all(s, t=5):
    s.settimeout(t)
    got = b""
    end = time.time() + t
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        got += d
    return got

# a body that starts with a request of its own (must stay body), then a pipelined request after it
n = 300000
s = socket.create_connection(("127.0.0.1", port))
inner = b"GET /inbody HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode()
after = b"GET /pipelined HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode()
body = inner + b"a" * (n - len(inner))
s.sendall(b"PUT /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (host.encode(), n) + body + after)
got = read_all(s)
print("smuggle responses=%d close=%d len=%d" % (got.count(b"HTTP/1.1 "), int(b"connection: close" in got.lower()),
                                                int(b'"body_length": 300000' in got)))
s.close()

# keep-alive: a small request first, then a large one on the same connection
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
first = b""
s.settimeout(5)
while b"\r\n\r\n" not in first:
    first += s.recv(65536)
hdr, rest = first.split(b"\r\n\r\n", 1)
cl = int([l.split(b":", 1)[1] for l in hdr.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
while len(rest) < cl:
    rest += s.recv(65536)
n = 400000
s.sendall(b"POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (host.encode(), n))
for i in range(4):
    s.sendall(b"b" * (n // 4))
    time.sleep(0.1)
second = read_all(s)
print("keepalive first=%s second=%s close=%d len=%d" % (
    first.split(b"\r\n", 1)[0].decode(), second.split(b"\r\n", 1)[0].decode(),
    int(b"connection: close" in second.lower()), int(b'"body_length": 400000' in second)))

# pipelined: a small request and a large upload in one write, then a third request (h2o reads the
# upload's head before the hook is back: the upload takes h2o's path, the connection stays open)
s = socket.create_connection(("127.0.0.1", port))
n = 300000
s.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode() +
          b"PUT /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (host.encode(), n) + b"p" * n)
time.sleep(0.5)
s.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host.encode())
got = read_all(s)
print("pipelined responses=%d put=%d" % (got.count(b"HTTP/1.1 200 OK"), int(b'"body_length": 300000' in got)))
s.close()

# a client that stops in the middle of the body
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"PUT /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 10485760\r\n\r\n" % host.encode() + b"c" * 1048576)
time.sleep(0.5)
s.close()
print("aborted")
EOF
raw=$(cat "$T/raw.txt")
check_contains "a request inside the body stays body; one response, then the connection closes" \
    "smuggle responses=1 close=1 len=1" "$raw"
sleep 0.5
check_not_contains "the request inside the body never reached the local service" "/inbody" "$(cat "$T/echo-up.log")"
check_not_contains "nothing after a streamed body is parsed on that connection" "/pipelined" "$(cat "$T/echo-up.log")"
check_contains "keep-alive: the second (large) request streamed and answered" \
    "keepalive first=HTTP/1.1 200 OK second=HTTP/1.1 200 OK close=1 len=1" "$raw"
check_contains "pipelined small request + upload + request: three answers, the upload intact" \
    "pipelined responses=3 put=1" "$raw"
check_contains "client stopped mid-body" "aborted" "$raw"
check_eq "the tunnel serves after the aborted upload" 200 "$(tcurl up /echo -o /dev/null -w '%{http_code}')"

# ------------------------------------------------------------------ 6. chunked, and h2o's path for the rest
t0=$(date +%s.%N)
cat "$T/big/6m.bin" | tcurl up /echo -H 'Expect:' --limit-rate 2M -T - -o "$T/ch.json" -D "$T/ch.h"
check_eq "chunked upload from a pipe at 2 MiB/s: body intact" "$sum6" "$(json body_sha256 <"$T/ch.json")"
head_delay=$(python3 -c "import json; d=json.load(open('$T/ch.json')); print('%.2f' % (d['head_at'] - $t0))" 2>/dev/null)
log "chunked: the local service saw the head ${head_delay} s after the upload started"
check "chunked: the head reached the local service while the body was coming (${head_delay} s < 1.5 s)" \
    python3 -c "import sys; sys.exit(0 if ${head_delay:-99} < 1.5 else 1)"
check_eq "chunked: forwarded chunked" chunked \
    "$(python3 -c "import json; d=json.load(open('$T/ch.json')); print([v for k, v in d['headers'] if k.lower() == 'transfer-encoding'][0])" 2>/dev/null)"
check_contains "chunked: a streamed request closes its connection" "Connection: close" "$(tr -d '\r' <"$T/ch.h")"
srv0=$(rss_kib "$SERVER_PID")
(head -c 268435456 /dev/zero | exec curl -sS --max-time 120 --resolve "up.$DOMAIN:$SERVER_PORT:127.0.0.1" -H 'Expect:' -T - \
    -o "$T/ch3.json" "$(url up /echo)") &
CURL_PID=$!
PIDS+=("$CURL_PID")
peak=$srv0
while kill -0 "$CURL_PID" 2>/dev/null; do
    r=$(rss_kib "$SERVER_PID")
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.1
done
wait "$CURL_PID"
log "server RSS ${srv0} KiB, peak ${peak} KiB during a 256 MiB chunked upload"
check_eq "256 MiB chunked upload: all of it arrived" 268435456 "$(json body_length <"$T/ch3.json" 2>/dev/null)"
check "server RSS growth $(((peak - srv0) / 1024)) MiB <= 64 during a 256 MiB chunked upload" test $((peak - srv0)) -le $((64 * 1024))
check_eq "chunked body with Expect: 100-continue (curl's default)" "$sum6" \
    "$(tcurl up /echo -H 'Transfer-Encoding: chunked' -T "$T/big/6m.bin" | json body_sha256)"
bad=$(timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"PUT /echo HTTP/1.1\r\nHost: up.%s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" % sys.argv[2].encode())
print(s.recv(4096).split(b"\r\n")[0].decode())' "$SERVER_PORT" "$DOMAIN" 2>/dev/null)
check_contains "malformed chunked framing: 400" "400" "$bad"

printf 'small body' >"$T/small.txt"
check_eq "small body (h2o path)" "$(sha256sum <"$T/small.txt" | cut -d' ' -f1)" \
    "$(tcurl up /echo -T "$T/small.txt" | json body_sha256)"
check_eq "HTTP/2 body (streamed by h2_body.c, test_upload_h2)" "$sum6" \
    "$(tcurl up /echo --http2-prior-knowledge -T "$T/big/6m.bin" | json body_sha256)"
check_eq "server still alive" 1 "$(kill -0 "$SERVER_PID" 2>/dev/null && echo 1 || echo 0)"
