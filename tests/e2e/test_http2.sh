#!/usr/bin/env bash
# e2e: HTTP/2 on the public side: h2c with prior knowledge (curl, nghttp) on a plain server, then
# h2 over TLS (curl --http2 with ALPN, nghttp) with a self-signed certificate made on the fly and
# the client dialing wss:// with TLS_CA_FILE. The local leg stays HTTP/1.1 (PROTOCOL.md §9).
source "$(dirname "$0")/lib.sh"
require_binaries

start_echo app || exit 1

# h2_suite LABEL PROTO-ARGS...: the checks shared by h2c and h2/TLS
h2_suite() {
    local label=$1
    shift
    local proto=("$@") out code
    out=$(tcurl app /m "${proto[@]}" -o "$T/body" -w '%{http_code} %{http_version}')
    check_eq "$label GET status + version" "200 2" "$out"
    check_eq "$label method" GET "$(jq -r .method "$T/body")"
    check_eq "$label host = :authority" "app.$DOMAIN:$SERVER_PORT" \
        "$(jq -r '[.headers[] | select((.[0] | ascii_downcase) == "host") | .[1]] | join("|")' "$T/body")"
    check_eq "$label x-forwarded-proto" "$SCHEME" \
        "$(jq -r '[.headers[] | select((.[0] | ascii_downcase) == "x-forwarded-proto") | .[1]] | join("|")' "$T/body")"
    check_eq "$label no pseudo-headers forwarded" 0 "$(jq '[.headers[] | select(.[0] | startswith(":"))] | length' "$T/body")"

    out=$(tcurl app /dup "${proto[@]}" -o "$T/body" -w '%{http_code}' -H "X-Dup: one" -H "X-Mid: m" -H "X-Dup: two")
    check_eq "$label duplicates status" 200 "$out"
    check_eq "$label header order + duplicates" "x-dup=one,x-mid=m,x-dup=two" \
        "$(jq -r '[.headers[] | select((.[0] | ascii_downcase) | test("^x-(dup|mid)$")) | "\(.[0] | ascii_downcase)=\(.[1])"] | join(",")' "$T/body")"

    head -c 123457 /dev/urandom >"$T/up.bin"
    out=$(tcurl app /post "${proto[@]}" -o "$T/body" -w '%{http_code}' --data-binary "@$T/up.bin")
    check_eq "$label POST status" 200 "$out"
    check_eq "$label POST body sha256" "$(sha256sum <"$T/up.bin" | cut -d' ' -f1)" "$(jq -r .body_sha256 "$T/body")"
    check_eq "$label POST content-length to local" 123457 \
        "$(jq -r '[.headers[] | select((.[0] | ascii_downcase) == "content-length") | .[1]] | join("|")' "$T/body")"

    out=$(tcurl app /status/204 "${proto[@]}" -o "$T/body" -w '%{http_code}')
    check_eq "$label 204" 204 "$out"
    check_eq "$label 204 no body" 0 "$(stat -c %s "$T/body")"
    out=$(tcurl app /bytes/5000 "${proto[@]}" --head -o /dev/null -w '%{http_code}')
    check_eq "$label HEAD" 200 "$out"

    out=$(tcurl app /set-cookies "${proto[@]}" -D "$T/head" -o /dev/null -w '%{http_code}')
    check_eq "$label set-cookie twice" "a=1; Path=/|b=2; HttpOnly" \
        "$(tr -d '\r' <"$T/head" | awk 'tolower($0) ~ /^set-cookie:/ {sub(/^[^:]*:[ \t]*/,""); printf "%s%s", s, $0; s="|"}')"

    out=$(tcurl app /chunked "${proto[@]}" -o "$T/body" -w '%{http_code}')
    check_eq "$label chunked-from-local body" "$(for i in 0 1 2 3 4 5 6 7 8 9; do echo "chunk-$i"; done)" "$(cat "$T/body")"
    out=$(tcurl app /nolength "${proto[@]}" -o "$T/body" -w '%{http_code}')
    check_eq "$label close-delimited-from-local" 5 "$(grep -c 'close-delimited' "$T/body")"

    local exp
    exp=$(python3 -c "import sys,hashlib; sys.path.insert(0,'$E2E_DIR'); import echo_server as e; print(hashlib.sha256(e.gen_bytes(2000000)).hexdigest())")
    tcurl app /bytes/2000000 "${proto[@]}" -o "$T/body"
    check_eq "$label 2 MB body sha256" "$exp" "$(sha256sum <"$T/body" | cut -d' ' -f1)"

    # 20 streams multiplexed on one connection (curl 7.88 -Z fails pending h2c prior-knowledge
    # transfers with "Error in the HTTP2 framing layer" before the first response: nghttp for h2c)
    local args=() i ok=0
    if [ "$SCHEME" = https ]; then
        for ((i = 0; i < 20; i++)); do args+=(-o "$T/par.$i" "$(url app "/par/$i")"); done
        curl -sS --max-time 30 --resolve "app.$DOMAIN:$SERVER_PORT:127.0.0.1" ${CURL_TLS[@]+"${CURL_TLS[@]}"} "${proto[@]}" \
            -Z --parallel-max 20 -w '%{http_code} %{num_connects}\n' "${args[@]}" >"$T/par.out" 2>>"$T/curl.err"
        for ((i = 0; i < 20; i++)); do [ "$(jq -r .path "$T/par.$i" 2>/dev/null)" = "/par/$i" ] && ok=$((ok + 1)); done
        check_eq "$label 20 parallel streams all 200" 20 "$(grep -c '^200 ' "$T/par.out")"
    else
        for ((i = 0; i < 20; i++)); do args+=("http://127.0.0.1:$SERVER_PORT/par/$i"); done
        timeout 30 nghttp -H ":authority: app.$DOMAIN:$SERVER_PORT" "${args[@]}" >"$T/par.out" 2>>"$T/curl.err"
        for ((i = 0; i < 20; i++)); do grep -q "\"path\": \"/par/$i\"" "$T/par.out" && ok=$((ok + 1)); done
    fi
    check_eq "$label 20 parallel streams answered correctly" 20 "$ok"

    # a local response that breaks off must not look complete over h2
    tcurl app /abort "${proto[@]}" -o /dev/null 2>/dev/null
    code=$?
    check_match "$label broken local response -> incomplete transfer (curl exit $code)" "^(18|56|92)$" "$code"

    out=$(tcurl app /_tunnel "${proto[@]}" -o /dev/null -w '%{http_code}')
    check_eq "$label /_tunnel over HTTP/2 -> 400" 400 "$out"
}

echo "== h2c (prior knowledge), plain server"
start_server || exit 1
start_client app "$ECHO_PORT"
wait_ready app / || exit 1
h2_suite h2c --http2-prior-knowledge

out=$(nghttp -v "http://127.0.0.1:$SERVER_PORT/nghttp?x=1" -H ":authority: app.$DOMAIN:$SERVER_PORT" 2>&1)
check_contains "nghttp h2c: 200" ":status: 200" "$out"
check_contains "nghttp h2c: path reflected" '"path": "/nghttp?x=1"' "$out"
printf 'nghttp-body' >"$T/ng.txt"
out=$(nghttp "http://127.0.0.1:$SERVER_PORT/ngpost" -H ":authority: app.$DOMAIN:$SERVER_PORT" -d "$T/ng.txt" 2>&1)
check_contains "nghttp h2c POST body" "\"body_sha256\": \"$(sha256sum <"$T/ng.txt" | cut -d' ' -f1)\"" "$out"
stop_pid "$CLIENT_PID"
stop_pid "$SERVER_PID"

echo "== h2 over TLS (ALPN), client over wss://"
make_cert "$T" || fail "openssl certificate"
start_server TLS_CERT="$T/cert.pem" TLS_KEY="$T/key.pem" || exit 1
SCHEME=https
CURL_TLS=(--cacert "$T/cert.pem")
start_client app "$ECHO_PORT" SERVER_URL="wss://127.0.0.1:$SERVER_PORT" TLS_CA_FILE="$T/cert.pem"
wait_ready app / || exit 1
h2_suite h2-tls --http2

out=$(tcurl app /h1 --http1.1 -o "$T/body" -w '%{http_code} %{http_version}')
check_eq "https with HTTP/1.1" "200 1.1" "$out"
check_match "forwarded proto=https" "proto=https" \
    "$(jq -r '[.headers[] | select((.[0] | ascii_downcase) == "forwarded") | .[1]] | join("|")' "$T/body")"
out=$(nghttp -v "https://127.0.0.1:$SERVER_PORT/nghttp-tls" -H ":authority: app.$DOMAIN:$SERVER_PORT" 2>&1)
check_contains "nghttp h2/TLS: 200" ":status: 200" "$out"
check_contains "nghttp h2/TLS: negotiated h2" "h2" "$(printf %s "$out" | grep -i 'negotiated' | head -1)"
check_contains "nghttp h2/TLS: x-forwarded-proto https" '["x-forwarded-proto", "https"]' "$out"

exit 0
