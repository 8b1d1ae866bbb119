#!/usr/bin/env bash
# e2e: the admin dashboard in real headless Chromium (issue 7) against a live server with two
# clients: both shown, request counts change after traffic (within 3 s), a request path holding
# HTML is shown as text (nothing injected, no handler runs), the disconnect button works.
# Screenshots: tests/e2e/artifacts/dashboard.png and dashboard-after-disconnect.png (git-ignored).
# Skips (says so) when Debian's chromium is not installed.
source "$(dirname "$0")/lib.sh"
require_binaries

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "SKIP: chromium is not installed (scripts/install-deps.sh installs Debian's chromium)"
    pass "skipped: no chromium"
    exit 0
fi

ADMIN_PORT=$(free_port)
start_echo alpha || exit 1
ECHO_A=$ECHO_PORT
start_echo beta || exit 1
ECHO_B=$ECHO_PORT
start_server ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" ADMIN_USER=ops ADMIN_PASSWORD=dash-pw-1 || exit 1
start_client alpha "$ECHO_A"
start_client beta "$ECHO_B" RECONNECT_DELAY=60s # stays away after the disconnect button
wait_ready alpha / || exit 1
wait_ready beta / || exit 1

ARTIFACTS="$E2E_DIR/artifacts"
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS/dashboard.png" "$ARTIFACTS/dashboard-after-disconnect.png"
timeout 180 /usr/bin/python3 "$E2E_DIR/dashboard_cdp.py" --admin "http://127.0.0.1:$ADMIN_PORT" --user ops --password dash-pw-1 \
    --public-port "$SERVER_PORT" --domain "$DOMAIN" --artifacts "$ARTIFACTS" --profile "$T/chromium-profile" \
    --chromium "$CHROMIUM" >"$T/cdp.out" 2>"$T/cdp.err"
rc=$?
while IFS= read -r line; do
    case $line in
    PASS\ *) pass "${line#PASS }" ;;
    FAIL\ *) fail "${line#FAIL }" ;;
    esac
done <"$T/cdp.out"
[ $rc -eq 0 ] || fail "dashboard driver exit status" "$rc; $(tail -5 "$T/cdp.err" | tr '\n' ' ')"
[ -s "$ARTIFACTS/dashboard.png" ] && echo "screenshot: $ARTIFACTS/dashboard.png"
check_contains "server logged the admin disconnect" "admin: disconnect of beta requested" "$(cat "$T/server.log")"
