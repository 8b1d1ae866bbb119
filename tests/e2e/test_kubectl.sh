#!/usr/bin/env bash
# e2e: real kubectl through the tunnel (issue 5). A stand-in API server (k8s_apiserver.py) is the
# local service of client "kube"; kubectl talks to http://kube.$DOMAIN:PORT through a SOCKS5
# proxy-url (socks5.py forwards every CONNECT to the tunnelmux port, so no DNS is needed and the
# Host header routes). Proves: `kubectl exec demo -- echo hello`, exit codes, `kubectl exec -i`
# with 20 MB of stdin (digest), `kubectl port-forward` fetching a file intact; kubectl 1.32 uses
# WebSockets for both (v5.channel.k8s.io; SPDY/3.1+portforward.k8s.io tunnelled in a WebSocket).
source "$(dirname "$0")/lib.sh"
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
if [ ! -x "$KUBECTL" ]; then
    echo "SKIP: $KUBECTL is missing (install kubectl >= 1.31 to run this test)"
    pass "skipped: no kubectl"
    exit 0
fi
require_binaries
PY=/usr/bin/python3

mkdir -p "$T/www" "$T/big"
gen_file "$T/www/file.bin" 12345678 pf
gen_file "$T/big/stdin.bin" 20000000 stdin
start_nginx "$T/www" || exit 1
spawn API_PID "$T/apiserver.out" $PY "$E2E_DIR/k8s_apiserver.py" --port-file "$T/api.port" --log "$T/apiserver.log" \
    --kubectl "$KUBECTL" --pod-port "8080=$NGINX_PORT"
for ((i = 0; i < 100; i++)); do
    [ -s "$T/api.port" ] && break
    sleep 0.1
done
API_PORT=$(cat "$T/api.port") || { fail "stand-in API server started"; exit 1; }

# the same stand-in over HTTPS, like a real kube-apiserver (client LOCAL_SCHEMA=https)
make_cert "$T"
spawn APIS_PID "$T/apiserver-tls.out" $PY "$E2E_DIR/k8s_apiserver.py" --port-file "$T/apis.port" --log "$T/apiserver-tls.log" \
    --kubectl "$KUBECTL" --pod-port "8080=$NGINX_PORT" --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
for ((i = 0; i < 100; i++)); do
    [ -s "$T/apis.port" ] && break
    sleep 0.1
done
APIS_PORT=$(cat "$T/apis.port") || { fail "stand-in HTTPS API server started"; exit 1; }

start_server || exit 1
start_client kube "$API_PORT"
wait_ready kube /version || exit 1
start_client kubetls "$APIS_PORT" LOCAL_SCHEMA=https
wait_ready kubetls /version || exit 1
spawn SOCKS_PID "$T/socks.log" $PY "$E2E_DIR/socks5.py" --to "$SERVER_PORT" --port-file "$T/socks.port"
for ((i = 0; i < 100; i++)); do
    [ -s "$T/socks.port" ] && break
    sleep 0.1
done
SOCKS_PORT=$(cat "$T/socks.port")

cat >"$T/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tunnel
  cluster:
    server: http://kube.$DOMAIN:$SERVER_PORT
    proxy-url: socks5://127.0.0.1:$SOCKS_PORT
- name: tunnel-tls
  cluster:
    server: http://kubetls.$DOMAIN:$SERVER_PORT
    proxy-url: socks5://127.0.0.1:$SOCKS_PORT
users:
- name: u
  user:
    token: test-token
contexts:
- name: t
  context:
    cluster: tunnel
    user: u
    namespace: default
- name: tls
  context:
    cluster: tunnel-tls
    user: u
    namespace: default
current-context: t
EOF
export KUBECONFIG="$T/kubeconfig" HOME="$T"
K() { timeout "${KTIMEOUT:-60}" "$KUBECTL" --request-timeout=30s "$@"; }

echo "== kubectl $("$KUBECTL" version --client 2>/dev/null | head -1)"
out=$(K get pod demo -o jsonpath='{.status.phase}' 2>"$T/k.err")
check_eq "kubectl get pod demo through the tunnel" "Running" "$out"

out=$(K exec demo -- echo hello 2>"$T/k.err")
check_eq "kubectl exec demo -- echo hello" "hello" "$out"
[ "$out" = hello ] || echo "    stderr: $(head -c 600 "$T/k.err")"
check_contains "exec went as a WebSocket offering v5.channel.k8s.io" "exec?command=echo&command=hello" \
    "$(grep -aF 'upgrade=websocket protocol=v5.channel.k8s.io host=kube.' "$T/apiserver.log")"

K exec demo -- sh -c 'exit 3' >/dev/null 2>"$T/k.err"
check_eq "exit code 3 propagates" 3 $?
K exec demo -- false >/dev/null 2>"$T/k.err"
check_eq "exit code 1 (false) propagates" 1 $?
K exec demo -- true >/dev/null 2>"$T/k.err"
check_eq "exit code 0 (true)" 0 $?
out=$(K exec demo -- sh -c 'echo oops >&2' 2>&1 >/dev/null)
check_match "commands outside the allow-list are refused by the stand-in" "not allowed|forbidden|Forbidden" "$out"

want=$(sha256sum <"$T/big/stdin.bin" | cut -d' ' -f1)
want_stdin=$want
t0=$SECONDS
got=$(KTIMEOUT=120 K exec -i demo -- sha256sum <"$T/big/stdin.bin" 2>"$T/k.err" | cut -d' ' -f1)
check_eq "kubectl exec -i: 20 MB stdin digest ($((SECONDS - t0)) s)" "$want" "$got"
got=$(head -c 3000000 "$T/big/stdin.bin" | K exec -i demo -- cat 2>"$T/k.err" | sha256sum | cut -d' ' -f1)
check_eq "kubectl exec -i cat: 3 MB round trip intact" "$(head -c 3000000 "$T/big/stdin.bin" | sha256sum | cut -d' ' -f1)" "$got"

echo "== kubectl port-forward"
LPORT=$(free_port)
spawn PF_PID "$T/pf.log" timeout 120 "$KUBECTL" port-forward pod/demo "$LPORT:8080"
ok=0
for ((i = 0; i < 100; i++)); do
    grep -q "Forwarding from" "$T/pf.log" && { ok=1; break; }
    sleep 0.1
done
check_eq "kubectl port-forward started" 1 "$ok"
want=$(sha256sum <"$T/www/file.bin" | cut -d' ' -f1)
for n in 1 2; do
    got=$(curl -sS --max-time 60 "http://127.0.0.1:$LPORT/file.bin" 2>>"$T/curl.err" | sha256sum | cut -d' ' -f1)
    check_eq "port-forward fetch $n: 12 MB file intact" "$want" "$got"
done
check_contains "port-forward went as a WebSocket offering SPDY/3.1+portforward.k8s.io" "portforward" \
    "$(grep -aF 'protocol=SPDY/3.1+portforward.k8s.io' "$T/apiserver.log")"
stop_pid "$PF_PID"

echo "== the same through an HTTPS local API server (LOCAL_SCHEMA=https: raw bytes over the client's TLS leg)"
out=$(K --context tls exec demo -- echo hello 2>"$T/k.err")
check_eq "https local: kubectl exec demo -- echo hello" "hello" "$out"
K --context tls exec demo -- sh -c 'exit 7' >/dev/null 2>"$T/k.err"
check_eq "https local: exit code 7 propagates" 7 $?
got=$(KTIMEOUT=120 K --context tls exec -i demo -- sha256sum <"$T/big/stdin.bin" 2>"$T/k.err" | cut -d' ' -f1)
check_eq "https local: kubectl exec -i 20 MB stdin digest" "$want_stdin" "$got"
LPORT=$(free_port)
spawn PF_PID "$T/pf-tls.log" timeout 120 "$KUBECTL" --context tls port-forward pod/demo "$LPORT:8080"
for ((i = 0; i < 100; i++)); do
    grep -q "Forwarding from" "$T/pf-tls.log" && break
    sleep 0.1
done
got=$(curl -sS --max-time 60 "http://127.0.0.1:$LPORT/file.bin" 2>>"$T/curl.err" | sha256sum | cut -d' ' -f1)
check_eq "https local: port-forward fetch, 12 MB file intact" "$want" "$got"
stop_pid "$PF_PID"
check_contains "https local: requests reached the HTTPS stand-in" "upgrade=websocket protocol=v5.channel.k8s.io host=kubetls." \
    "$(cat "$T/apiserver-tls.log")"
grep -aE "spdy: (dictionary|headers)" "$T/apiserver.log" | head -2 | sed 's/^/  /'
kill -0 "$SERVER_PID" 2>/dev/null
check_eq "server still running" 0 $?
