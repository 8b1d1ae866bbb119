#!/usr/bin/env bash
# e2e: HTTP/1.1 through the tunnel against the echo service (docs/PROTOCOL.md §9):
# methods, header order/duplicates, hop-by-hop removal, X-Forwarded-*/Forwarded, forward-X,
# status + reason, empty/chunked/close-delimited bodies, HEAD/204/304, Set-Cookie twice.
source "$(dirname "$0")/lib.sh"
require_binaries

start_echo app || exit 1
start_server || exit 1
start_client app "$ECHO_PORT"
wait_ready app / || exit 1
AUTH="app.$DOMAIN:$SERVER_PORT"

# req PATH [CURL ARGS...]: body -> $T/body, headers -> $T/head, prints the status code
req() {
    local path=$1
    shift
    : >"$T/body"
    : >"$T/head"
    tcurl app "$path" -o "$T/body" -D "$T/head" -w '%{http_code}' "$@" 2>>"$T/curl.err"
}
# jb JQ-EXPR: evaluates on the last JSON body
jb() { jq -r "$1" "$T/body" 2>/dev/null; }
# hdr NAME: the request header values the echo service saw for NAME (lower-case compare), joined by '|'
hdr() { jq -r --arg n "$1" '[.headers[] | select((.[0] | ascii_downcase) == $n) | .[1]] | join("|")' "$T/body" 2>/dev/null; }
# rhdr NAME: response header values from $T/head, joined by '|'
rhdr() { tr -d '\r' <"$T/head" | awk -v n="$1" 'BEGIN{IGNORECASE=1} tolower(substr($0,1,index($0,":")-1))==n {sub(/^[^:]*:[ \t]*/,""); printf "%s%s", sep, $0; sep="|"}'; }

echo "== methods"
for m in GET POST PUT PATCH DELETE OPTIONS FOO; do
    args=(-X "$m")
    case $m in POST | PUT | PATCH) args+=(--data-binary "body-of-$m") ;; esac
    code=$(req "/m/$m" "${args[@]}")
    check_eq "$m status" 200 "$code"
    check_eq "$m method reflected" "$m" "$(jb .method)"
    check_eq "$m path reflected" "/m/$m" "$(jb .path)"
    case $m in
    POST | PUT | PATCH)
        exp=$(printf %s "body-of-$m" | sha256sum | cut -d' ' -f1)
        check_eq "$m body sha256" "$exp" "$(jb .body_sha256)"
        check_eq "$m content-length" "$((8 + ${#m}))" "$(hdr content-length)"
        ;;
    *)
        check_eq "$m no body" 0 "$(jb .body_length)"
        ;;
    esac
done
code=$(tcurl app /m/HEAD --head -o /dev/null -w '%{http_code} %{size_download}' 2>>"$T/curl.err")
check_eq "HEAD status, no body" "200 0" "$code"

echo "== request target"
code=$(req "/p/a%20b?x=1&y=%2F&z")
check_eq "path + query kept verbatim" "/p/a%20b?x=1&y=%2F&z" "$(jb .path)"
code=$(req /ignored --request-target "http://$AUTH/abs/form?q=1")
check_eq "absolute-form target status" 200 "$code"
check_eq "absolute-form target -> path+query" "/abs/form?q=1" "$(jb .path)"
# RFC 9112 §3.2.2: the target's authority wins over Host (routing and the Host the service sees)
code=$(req /ignored --request-target "http://$AUTH/abs" -H "Host: nosuch.$DOMAIN:$SERVER_PORT")
check_eq "absolute-form target routes by its authority, not Host" 200 "$code"
check_eq "absolute-form target: service sees the target's host" "$AUTH" "$(hdr host)"
code=$(req /ignored --request-target "http://$AUTH?only=query")
check_eq "absolute-form target without path -> /?query" "/?only=query" "$(jb .path)"
code=$(req /ignored --request-target "http:///no/authority")
check_eq "absolute-form target without authority: Host routes, path reduced" "200 /no/authority" "$code $(jb .path)"

echo "== request headers"
code=$(req /h -H "X-A: 1" -H "X-Dup: one" -H "X-B: 2" -H "X-Dup: two" -H "X-Empty;")
order=$(jq -r '[.headers[] | select((.[0] | ascii_downcase) | test("^x-(a|b|dup)$")) | "\(.[0] | ascii_downcase)=\(.[1])"] | join(",")' "$T/body")
check_eq "order and duplicates kept" "x-a=1,x-dup=one,x-b=2,x-dup=two" "$order"
check_eq "empty header value kept" "" "$(hdr x-empty)"
check_eq "empty header present" 1 "$(jq '[.headers[] | select((.[0] | ascii_downcase) == "x-empty")] | length' "$T/body")"
check_eq "host preserved (authority with port)" "$AUTH" "$(hdr host)"
check_eq "exactly one host header" 1 "$(jq '[.headers[] | select((.[0] | ascii_downcase) == "host")] | length' "$T/body")"
check_eq "user-agent passed" "tm-e2e/1" "$(req /ua -A tm-e2e/1 >/dev/null; hdr user-agent)"

code=$(req /hop -H "Connection: keep-alive, X-Conn-Listed" -H "X-Conn-Listed: secret" -H "Keep-Alive: timeout=5" \
    -H "TE: trailers" -H "Proxy-Connection: keep-alive" -H "Trailer: X-T" -H "X-Kept: yes")
check_eq "hop-by-hop request: status" 200 "$code"
for h in keep-alive te proxy-connection trailer x-conn-listed transfer-encoding upgrade http2-settings; do
    check_eq "hop-by-hop '$h' removed" 0 "$(jq --arg n "$h" '[.headers[] | select((.[0] | ascii_downcase) == $n)] | length' "$T/body")"
done
check_not_contains "connection does not carry listed names" "X-Conn-Listed" "$(hdr connection)"
check_eq "end-to-end header kept" yes "$(hdr x-kept)"

echo "== X-Forwarded-* and Forwarded"
code=$(req /xf)
check_eq "x-forwarded-for" 127.0.0.1 "$(hdr x-forwarded-for)"
check_eq "x-forwarded-proto" http "$(hdr x-forwarded-proto)"
check_eq "x-forwarded-host" "$AUTH" "$(hdr x-forwarded-host)"
check_match "forwarded" "^for=\"?127\.0\.0\.1\"?;proto=http;host=\"?app\.$DOMAIN:$SERVER_PORT\"?$" "$(hdr forwarded)"
code=$(req /xf2 -H "X-Forwarded-For: 10.0.0.1" -H "Forwarded: for=10.0.0.1")
check_eq "x-forwarded-for appended" "10.0.0.1, 127.0.0.1" "$(hdr x-forwarded-for)"
check_match "forwarded appended" "^for=10\.0\.0\.1, for=\"?127\.0\.0\.1\"?;proto=http;host=" "$(hdr forwarded)"
check_eq "one x-forwarded-for header" 1 "$(jq '[.headers[] | select((.[0] | ascii_downcase) == "x-forwarded-for")] | length' "$T/body")"

echo "== forward-X transform"
code=$(req /fx -H "Forward-X-Custom: v1" -H "forward-authorization: Bearer abc" -H "Forward-Host: evil.example" \
    -H "Forward-Content-Length: 5" -H "Forward-Connection: close" -H "Forward-Transfer-Encoding: chunked" \
    -H "Forward-TE: trailers" -H "Forward-Upgrade: h2c" -H "Forward-Expect: 100-continue" \
    -H "Forward-Keep-Alive: 1" -H "Forward-Proxy-Authorization: Basic x" -H "Forward-Trailer: x" -H "Forward-: empty")
check_eq "forward-X request status" 200 "$code"
check_eq "forward-x-custom -> x-custom" v1 "$(hdr x-custom)"
check_eq "forward-authorization -> authorization" "Bearer abc" "$(hdr authorization)"
check_eq "no forward-* header left" 0 "$(jq '[.headers[] | select((.[0] | ascii_downcase) | startswith("forward-"))] | length' "$T/body")"
check_eq "forward-host refused (host stays authority)" "$AUTH" "$(hdr host)"
check_eq "forward-content-length refused" 0 "$(jb .body_length)"
check_eq "forward-content-length refused (no content-length 5)" "" "$(hdr content-length | grep -x 5)"
for h in transfer-encoding te upgrade expect keep-alive proxy-authorization trailer; do
    check_eq "forward-$h refused" 0 "$(jq --arg n "$h" '[.headers[] | select((.[0] | ascii_downcase) == $n)] | length' "$T/body")"
done
check_not_contains "forward-connection refused" close "$(hdr connection)"

echo "== status and reason"
for s in 201 202 400 403 404 418 500 502 503; do
    code=$(req "/status/$s")
    check_eq "status $s passed through" "$s" "$code"
done
code=$(req "/status/299?reason=Made%20It%20Up")
check_eq "custom status" 299 "$code"
check_match "custom reason phrase" "^HTTP/1\.1 299 Made It Up" "$(head -1 "$T/head" | tr -d '\r')"
code=$(req "/status/404")
check_eq "local 404 body is the service's, not the tunnel's" "status 404" "$(cat "$T/body")"

echo "== bodies"
code=$(req /empty)
check_eq "empty body status" 200 "$code"
check_eq "empty body length" 0 "$(stat -c %s "$T/body")"
check_eq "empty body content-length: 0" 0 "$(rhdr content-length)"
code=$(req /chunked)
check_eq "chunked status" 200 "$code"
check_eq "chunked body" "$(for i in 0 1 2 3 4 5 6 7 8 9; do echo "chunk-$i"; done)" "$(cat "$T/body")"
check_eq "one framing header on chunked" "" "$(rhdr content-length)$(rhdr transfer-encoding | grep -v -x chunked)"
code=$(req /nolength)
check_eq "close-delimited status" 200 "$code"
check_eq "close-delimited body complete" 5 "$(grep -c 'of a close-delimited body' "$T/body")"
code=$(req /bytes/300000)
exp=$(python3 -c "import sys,hashlib; sys.path.insert(0,'$E2E_DIR'); import echo_server as e; print(hashlib.sha256(e.gen_bytes(300000)).hexdigest())")
check_eq "streamed body sha256" "$exp" "$(sha256sum <"$T/body" | cut -d' ' -f1)"
check_eq "streamed body content-length" 300000 "$(rhdr content-length)"
code=$(req "/bytes/300000?chunked=1")
check_eq "chunked streamed body sha256" "$exp" "$(sha256sum <"$T/body" | cut -d' ' -f1)"
head -c 200000 /dev/urandom >"$T/up.bin"
code=$(req /up -X POST -H "Transfer-Encoding: chunked" --data-binary "@$T/up.bin")
check_eq "chunked upload status" 200 "$code"
check_eq "chunked upload sha256" "$(sha256sum <"$T/up.bin" | cut -d' ' -f1)" "$(jb .body_sha256)"
# a chunked upload streams (upload.c): its length is unknown until the end, so it stays chunked
check_eq "chunked upload arrives without content-length (streamed)" "" "$(hdr content-length)"
check_eq "chunked upload: re-framed chunked to local" chunked "$(hdr transfer-encoding)"

echo "== HEAD / 204 / 304 carry no body, connection stays usable"
for p in /status/204 /status/304; do
    code=$(CURL_MAX_TIME=5 req "$p")
    check_eq "$p status" "${p#/status/}" "$code"
    check_eq "$p no body" 0 "$(stat -c %s "$T/body")"
done
code=$(CURL_MAX_TIME=5 tcurl app /bytes/1000 --head -D "$T/head" -o /dev/null -w '%{http_code} %{size_download}' 2>>"$T/curl.err")
check_eq "HEAD on a sized resource, no body" "200 0" "$code"
check_eq "HEAD keeps content-length" 1000 "$(rhdr content-length)"
# several requests on one connection: HEAD, 204, 304, GET — all answered, one connection
out=$(curl -sS --max-time 10 --resolve "app.$DOMAIN:$SERVER_PORT:127.0.0.1" \
    -I "$(url app /bytes/10)" --next -o /dev/null -w '%{http_code} %{num_connects}\n' "$(url app /status/204)" \
    --next -o /dev/null -w '%{http_code} %{num_connects}\n' "$(url app /status/304)" \
    --next -o /dev/null -w '%{http_code} %{num_connects}\n' "$(url app /m)" 2>&1 | grep -E '^[0-9]{3} [0-9]+$' | tr '\n' ' ')
check_eq "keep-alive across HEAD/204/304" "204 0 304 0 200 0 " "$out"

echo "== response headers"
code=$(req /set-cookies)
check_eq "set-cookie status" 200 "$code"
check_eq "two set-cookie headers, in order" "a=1; Path=/|b=2; HttpOnly" "$(rhdr set-cookie)"
code=$(req /m)
check_eq "content-type passed" application/json "$(rhdr content-type)"
# the tunnel carries at most 100 header fields per head (PROTOCOL.md §10); more is a clear 502
code=$(req '/many-headers?n=90')
check_eq "90 response headers pass" "200 X-H89=89" "$code X-H89=$(rhdr x-h89)"
code=$(req '/many-headers?n=110')
check_eq "110 response headers -> 502" 502 "$code"
check_contains "110 response headers: body names the limit" "HEADERS_TOO_LARGE" "$(cat "$T/body")"
code=$(req '/many-headers?n=400')
check_eq "400 response headers -> 502" 502 "$code"
check_contains "400 response headers: body names the cause" "sent an invalid response (UPSTREAM_ERROR)" "$(cat "$T/body")"
sleep 0.2
check_contains "400 response headers: the client's reason is in the server log (PROTOCOL.md §4.6)" "too many header fields" \
    "$(grep 'the client sent CLOSE UPSTREAM_ERROR' "$T/server.log")"
code=$(req /m)
check_eq "the connection serves again after a refused head" 200 "$code"

exit 0
