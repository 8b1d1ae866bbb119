# tunnelmux e2e harness (sourced by tests/e2e/test_*.sh; bash only).
#
# Provides: a per-test temp dir ($T) with every log; free-port picking; start_echo / start_server /
# start_client / start_nginx (each records the PID, logs into $T); wait_ready (curl through the
# tunnel until 200); tcurl (curl to NAME.$DOMAIN via the public port); check / check_eq / fail
# helpers; a cleanup trap that kills every PID started (by PID) and prints a summary line
# "e2e NAME: N passed, M failed". The exit status is non-zero when anything failed.
#
# Inputs: TM_BUILD_DIR (binaries), TM_SOURCE_DIR (sources) — set by ctest; defaults below let a test
# run by hand from anywhere: `bash tests/e2e/test_http1.sh`. E2E_KEEP=1 keeps $T even on success.
set -u

E2E_NAME=$(basename "${0%.*}")
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TM_SOURCE_DIR=${TM_SOURCE_DIR:-$(cd "$E2E_DIR/../.." && pwd)}
TM_BUILD_DIR=${TM_BUILD_DIR:-$TM_SOURCE_DIR/build}
SERVER_BIN=${SERVER_BIN:-$TM_BUILD_DIR/tunnelmux-server}
CLIENT_BIN=${CLIENT_BIN:-$TM_BUILD_DIR/tunnelmux-client}
DOMAIN=${E2E_DOMAIN:-tm.test}
# sanitized binaries (-DTM_SANITIZE=ON): the one h2o 2.2.5 block that cannot be freed is suppressed
# (tests/lsan.supp), so a server's exit status under ASan is its real one
if grep -qa __asan_init "$SERVER_BIN" 2>/dev/null; then
    export LSAN_OPTIONS="suppressions=$TM_SOURCE_DIR/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/tm-e2e-$E2E_NAME.XXXXXX")
PIDS=()
PASSED=0
FAILED=0
FAILED_NAMES=()
T0=$SECONDS

log() { echo "[$E2E_NAME $(date +%T)] $*" >&2; }

# ------------------------------------------------------------------ result helpers
pass() { PASSED=$((PASSED + 1)); echo "  ok   $1"; }
fail() {
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$1")
    echo "  FAIL $1${2:+: $2}"
}
# check DESC CMD...: passes when CMD exits 0
check() {
    local desc=$1
    shift
    if "$@" >>"$T/check.log" 2>&1; then pass "$desc"; else fail "$desc" "command failed: $*"; fi
}
# check_eq DESC EXPECTED ACTUAL
check_eq() {
    if [ "$2" == "$3" ]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}
# check_match DESC REGEX ACTUAL (bash =~)
check_match() {
    if [[ "$3" =~ $2 ]]; then pass "$1"; else fail "$1" "'$3' does not match /$2/"; fi
}
# check_contains DESC NEEDLE HAYSTACK
check_contains() {
    if [[ "$3" == *"$2"* ]]; then pass "$1"; else fail "$1" "'$2' not found in: $(printf %s "$3" | head -c 600)"; fi
}
check_not_contains() {
    if [[ "$3" != *"$2"* ]]; then pass "$1"; else fail "$1" "'$2' unexpectedly found in: $(printf %s "$3" | head -c 600)"; fi
}

# ------------------------------------------------------------------ processes
# free_port: a port nothing listens on now, drawn below the kernel's ephemeral range (ports the
# kernel hands to outgoing connections, and to bind(0), can be taken again by any connect() before
# our server binds; seen as "Address already in use" in CI), never one this test drew before.
free_port() {
    python3 - "$T/.ports" <<'PY'
import random, socket, sys
lo = 20000
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        hi = int(f.read().split()[0]) - 1
except (OSError, ValueError, IndexError):
    hi = 32767
used = set()
try:
    with open(sys.argv[1]) as f:
        used = {int(x) for x in f.read().split()}
except OSError:
    pass
for _ in range(1000):
    p = random.randint(lo, max(lo, hi))
    if p in used:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    with open(sys.argv[1], "a") as f:
        f.write("%d\n" % p)
    print(p)
    sys.exit(0)
sys.exit("free_port: no free port in %d..%d" % (lo, hi))
PY
}

# wait_port PORT [TIMEOUT_S]: until something accepts on 127.0.0.1:PORT
wait_port() {
    local i t=${2:-10}
    for ((i = 0; i < t * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# spawn VAR LOGFILE CMD...: starts CMD in the background (stdin /dev/null), records its PID in VAR and PIDS
spawn() {
    local var=$1 lf=$2
    shift 2
    "$@" >"$lf" 2>&1 </dev/null &
    local pid=$!
    PIDS+=("$pid")
    printf -v "$var" %s "$pid"
}

# stop_pid PID: TERM, then KILL after 3 s
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

require_binaries() {
    local b ok=1
    for b in "$SERVER_BIN" "$CLIENT_BIN"; do
        if [ ! -x "$b" ]; then
            echo "missing binary $b (build first; TM_BUILD_DIR=$TM_BUILD_DIR)" >&2
            ok=0
        fi
    done
    if [ $ok = 0 ]; then
        fail "binaries present"
        exit 1 # the EXIT trap prints the summary
    fi
}

# start_echo NAME: starts tests/e2e/echo_server.py; sets ECHO_PORT and ECHO_PID
start_echo() {
    local name=${1:-echo} pf="$T/echo-${1:-echo}.port"
    rm -f "$pf"
    spawn ECHO_PID "$T/echo-$name.log" python3 "$E2E_DIR/echo_server.py" --name "$name" --port-file "$pf"
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$pf" ] && break
        sleep 0.1
    done
    ECHO_PORT=$(cat "$pf" 2>/dev/null) || { fail "echo server $name started"; return 1; }
}

# Client authentication (docs/SECURITY.md): start_server requires E2E_TOKEN from every client and
# start_client sends it; a test overrides either with its own AUTH_TOKEN=... / AUTH_TOKENS_FILE=...
# (or INSECURE_NO_AUTH=1) arguments, which come later in the environment and win.
E2E_TOKEN=${E2E_TOKEN:-e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}

# start_server [VAR=VALUE...]: tunnelmux-server on 127.0.0.1; sets SERVER_PORT and SERVER_PID.
# The admin listener takes an ephemeral loopback port (admin_port reads it from the log) unless a
# test sets ADMIN_ADDR: tests run in parallel.
# Extra VAR=VALUE pairs go into its environment (e.g. TLS_CERT=... READ_TIMEOUT=5).
start_server() {
    SERVER_PORT=${SERVER_PORT_WANTED:-$(free_port)}
    spawn SERVER_PID "$T/server.log" env PORT="$SERVER_PORT" DOMAIN="$DOMAIN" LISTEN_ADDR=127.0.0.1 ADMIN_ADDR=127.0.0.1:0 \
        LOG_LEVEL="${E2E_LOG_LEVEL:-info}" AUTH_TOKEN="$E2E_TOKEN" "$@" "$SERVER_BIN"
    if ! wait_port "$SERVER_PORT" 10; then
        fail "server listening on $SERVER_PORT" "$(tail -5 "$T/server.log")"
        return 1
    fi
}

# admin_port: the admin listener's port, from the server log line "admin listener: ADDR:PORT" (waits up to 5 s)
admin_port() {
    local i p
    for ((i = 0; i < 50; i++)); do
        p=$(sed -nE 's/.*admin listener: .*:([0-9]+)( .*)?$/\1/p' "$T/server.log" | tail -1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.1
    done
    return 1
}

# start_client NAME LOCAL_PORT [VAR=VALUE...]: tunnelmux-client for NAME; sets CLIENT_PID
start_client() {
    local name=$1 lport=$2
    shift 2
    spawn CLIENT_PID "$T/client-$name.log" env SERVER_URL="ws://127.0.0.1:$SERVER_PORT" CLIENT_ID="$name" \
        LOCAL_HOST=127.0.0.1 LOCAL_PORT="$lport" RECONNECT_DELAY=1 LOG_LEVEL="${E2E_LOG_LEVEL:-info}" AUTH_TOKEN="$E2E_TOKEN" \
        "$@" "$CLIENT_BIN"
}

# url NAME [PATH]: the public URL of NAME through the server ($SCHEME: http, or https with TLS)
SCHEME=${SCHEME:-http}
CURL_TLS=() # e.g. (--cacert "$T/cert.pem") when SCHEME=https
url() { echo "$SCHEME://$1.$DOMAIN:$SERVER_PORT${2:-/}"; }

# tcurl NAME PATH [CURL ARGS...]: curl through the tunnel (name resolved to 127.0.0.1)
tcurl() {
    local name=$1 path=$2
    shift 2
    curl -sS --max-time "${CURL_MAX_TIME:-30}" --resolve "$name.$DOMAIN:$SERVER_PORT:127.0.0.1" ${CURL_TLS[@]+"${CURL_TLS[@]}"} \
        "$@" "$(url "$name" "$path")"
}

# wait_ready NAME [PATH] [TIMEOUT_S]: polls through the tunnel until a 200 answer
wait_ready() {
    local name=$1 path=${2:-/} t=${3:-15} i code
    for ((i = 0; i < t * 5; i++)); do
        code=$(CURL_MAX_TIME=2 tcurl "$name" "$path" -o /dev/null -w '%{http_code}' 2>/dev/null)
        [ "$code" = 200 ] && return 0
        sleep 0.2
    done
    fail "tunnel $name ready" "last status '$code'; server: $(tail -3 "$T/server.log" | tr '\n' ' ') client: $(tail -3 "$T/client-$name.log" 2>/dev/null | tr '\n' ' ')"
    return 1
}

# gen_file PATH SIZE SEED: deterministic pseudo-random file (AES-CTR keystream of SEED), SIZE for head -c
gen_file() {
    openssl enc -aes-128-ctr -nosalt -pass "pass:$3" -pbkdf2 </dev/zero 2>/dev/null | head -c "$2" >"$1"
}

# start_nginx ROOT: nginx serving ROOT on a free port (h1); sets NGINX_PORT and NGINX_PID
start_nginx() {
    local root=$1
    NGINX_PORT=$(free_port)
    mkdir -p "$T/nginx/logs" "$T/nginx/tmp"
    local userline=""
    [ "$(id -u)" = 0 ] && userline="user root;"
    sed -e "s#@USERLINE@#$userline#" -e "s#@PORT@#$NGINX_PORT#g" -e "s#@ROOT@#$root#g" -e "s#@DIR@#$T/nginx#g" \
        "$E2E_DIR/nginx.conf.in" >"$T/nginx/nginx.conf"
    spawn NGINX_PID "$T/nginx/stdout.log" nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log"
    wait_port "$NGINX_PORT" 10 || { fail "nginx listening" "$(cat "$T/nginx/logs/error.log" 2>/dev/null)"; return 1; }
}

# make_cert DIR: self-signed P-256 certificate for *.$DOMAIN, $DOMAIN, localhost and 127.0.0.1
# -> DIR/cert.pem, DIR/key.pem
make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$DOMAIN" \
        -addext "subjectAltName=DNS:*.$DOMAIN,DNS:$DOMAIN,DNS:localhost,IP:127.0.0.1" \
        -keyout "$1/key.pem" -out "$1/cert.pem" >/dev/null 2>&1
}

# ------------------------------------------------------------------ teardown
e2e_cleanup() {
    local rc=$? i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null; done
    sleep 0.3
    for i in "${PIDS[@]}"; do stop_pid "$i"; done
    # sanitized binaries (TM_BUILD_DIR = an ASan+UBSan build) report into their logs: any report is
    # a failure even when the behaviour under test looked right
    local reports
    reports=$(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T"/*.log 2>/dev/null | tr '\n' ' ')
    if [ -n "$reports" ]; then
        fail "no sanitizer reports (see $reports)"
        local r
        for r in $reports; do grep -m 3 -A 12 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$r"; done
    fi
    # big generated files never outlive the test
    rm -rf "$T/big" 2>/dev/null
    if [ "$FAILED" -gt 0 ] && [ -f "$T/server.log" ]; then
        echo "--- last server log lines ($T/server.log)"
        tail -n 15 "$T/server.log"
        local c
        for c in "$T"/client-*.log; do
            [ -f "$c" ] || continue
            echo "--- last lines of $c"
            tail -n 10 "$c"
        done
    fi
    echo "e2e $E2E_NAME: $PASSED passed, $FAILED failed ($((SECONDS - T0)) s)${FAILED_NAMES[*]:+; failed: ${FAILED_NAMES[*]}}"
    if [ "$FAILED" -gt 0 ] || [ "${E2E_KEEP:-0}" = 1 ]; then
        echo "logs kept in $T"
    else
        rm -rf "$T"
    fi
    if [ "$FAILED" -gt 0 ]; then exit 1; fi
    if [ "$PASSED" -eq 0 ]; then exit 1; fi
    exit "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM
