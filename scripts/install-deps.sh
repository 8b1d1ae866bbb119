#!/usr/bin/env bash
# install-deps.sh — installs every Debian 12 package tunnelmux needs to build, test, fuzz,
# run the end-to-end tests and the benchmarks. Run as root. Does nothing (no apt at all) when
# every package is already installed. Waits for the dpkg lock (bounded) instead of failing.
#
#   DEPS_LOCK_WAIT=600   maximum seconds to wait for another apt/dpkg to finish
set -euo pipefail

PACKAGES=(
  # build
  cmake make pkg-config gcc libc6-dev clang-14 libclang-rt-14-dev clang-format-14
  libh2o-evloop-dev libwslay-dev libwebsockets-dev libprotobuf-c-dev protobuf-c-compiler
  libzstd-dev check libssl-dev libuv1-dev zlib1g-dev libjansson-dev
  # tests, e2e, demo, benchmarks
  openssl ca-certificates curl nghttp2-client nginx python3 python3-websockets python3-h2
  wrk jq procps psmisc iproute2 coreutils git
  # high-availability e2e (issue 19: tests/e2e/test_haproxy.sh)
  haproxy
  # admin dashboard test (headless browser)
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo $0)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
MAX_WAIT=${DEPS_LOCK_WAIT:-600}

locked() {
  # true while another process holds one of the dpkg/apt locks
  if command -v fuser >/dev/null 2>&1; then
    fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock \
      >/dev/null 2>&1
  else
    pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1
  fi
}

# apt_retry CMD...: runs an apt-get command, retrying while the dpkg lock is busy (bounded).
apt_retry() {
  local start=$SECONDS
  while true; do
    while locked; do
      if (( SECONDS - start > MAX_WAIT )); then
        echo "install-deps: dpkg lock still busy after ${MAX_WAIT}s" >&2
        return 1
      fi
      echo "install-deps: waiting for the dpkg lock..." >&2
      sleep 5
    done
    if "$@" -o DPkg::Lock::Timeout=60; then
      return 0
    fi
    if (( SECONDS - start > MAX_WAIT )) || ! locked; then
      # failed for another reason than the lock (or waited long enough): give up
      return 1
    fi
  done
}

echo "install-deps: installing ${missing[*]}"
apt_retry apt-get update -qq
apt_retry apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
