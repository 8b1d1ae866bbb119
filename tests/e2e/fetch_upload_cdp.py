#!/usr/bin/python3
"""tunnelmux e2e helper: headless Chromium uploads a file with fetch() over HTTP/2 (TLS, ALPN h2) to a
tunnelled echo service (src/server/h2_body.c streams the body). The page is the echo service's own
origin (https://NAME.DOMAIN:PORT/), so the fetch is same-origin; the certificate is the test's
self-signed one (--ignore-certificate-errors) and NAME.DOMAIN resolves to 127.0.0.1.

Prints "PASS desc" / "FAIL desc: why" lines (the caller counts them); exits 1 when one failed.
Every wait is bounded; Chromium is killed at the end whatever happens.

Usage: fetch_upload_cdp.py --url https://NAME.DOMAIN:PORT --mib N --profile DIR [--chromium PATH]
"""
import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dashboard_cdp import Cdp, out, page_ws_url  # noqa: E402  (same directory)

UPLOAD = """(async () => {
  const n = %d * 1048576;
  const body = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(body.subarray(off, Math.min(n, off + 65536)));
  const want = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', body)))
    .map(b => b.toString(16).padStart(2, '0')).join('');
  const t0 = Date.now() / 1000;
  const r = await fetch('/echo?browser=1', {method: 'PUT', body});
  const j = await r.json();
  const e = performance.getEntriesByType('resource').filter(x => x.name.includes('/echo?browser=1')).pop();
  return JSON.stringify({status: r.status, want, got: j.body_sha256, length: j.body_length,
                         head_after: j.head_at - t0, done_after: j.body_done_at - t0,
                         protocol: e ? e.nextHopProtocol : ''});
})()"""


def start_chromium(binary, profile, host):
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-dev-shm-usage", "--ignore-certificate-errors",
            f"--host-resolver-rules=MAP {host} 127.0.0.1", f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"]
    log = open(os.path.join(profile, "..", "chromium-fetch.log"), "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        try:
            with open(port_file) as f:
                lines = f.read().split()
            if lines and lines[0].isdigit():
                return proc, int(lines[0])
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port within 30 s")


async def run(a, port):
    async with websockets.connect(page_ws_url(port), max_size=None) as ws:
        cdp = Cdp(ws)
        await cdp.call("Page.enable")
        await cdp.call("Page.navigate", {"url": a.url + "/page"})
        ok = await cdp.wait_for("document.readyState === 'complete' && location.href.startsWith('https://')", 20)
        if not out(bool(ok), "the page of the tunnelled origin loaded", str(ok)):
            return False
        r = json.loads(await cdp.eval(UPLOAD % a.mib))
        print("result %s" % json.dumps(r), flush=True)
        good = out(r["status"] == 200, "fetch() upload answered 200", str(r["status"]))
        good &= out(r["protocol"] == "h2", "the browser spoke HTTP/2", r["protocol"])
        good &= out(r["got"] == r["want"], "SHA-256 equal in the browser and at the local service",
                    "%s != %s" % (r["got"], r["want"]))
        good &= out(r["length"] == a.mib * 1048576, "all bytes arrived", str(r["length"]))
        good &= out(r["head_after"] < r["done_after"], "the local service saw the head before the end of the body "
                    "(%.2f s < %.2f s after fetch())" % (r["head_after"], r["done_after"]), "not streamed")
        return good


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--mib", type=int, default=32)
    p.add_argument("--profile", required=True)
    p.add_argument("--chromium", default="chromium")
    a = p.parse_args()
    os.makedirs(a.profile, exist_ok=True)
    host = a.url.split("//", 1)[1].split(":", 1)[0]
    proc = None
    ok = False
    try:
        proc, port = start_chromium(a.chromium, a.profile, host)
        ok = asyncio.run(asyncio.wait_for(run(a, port), 120))
    except Exception as e:  # reported as a failed check, never a hang
        out(False, "fetch upload driver", f"{type(e).__name__}: {e}")
    finally:
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except Exception:
                os.killpg(proc.pid, signal.SIGKILL)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
