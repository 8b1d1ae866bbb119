#!/usr/bin/python3
"""tunnelmux e2e helper: drives the admin dashboard in real headless Chromium over the DevTools
protocol (python3-websockets, asyncio) against a live server with two clients (alpha, beta).

Prints one line per check, "PASS desc" or "FAIL desc: why" (test_dashboard.sh counts them), and
saves screenshots. Every wait is bounded; Chromium is killed at the end whatever happens.

Usage: dashboard_cdp.py --admin URL --user U --password P --public-port N --domain D
                        --artifacts DIR --profile DIR [--chromium PATH]
"""
import argparse
import asyncio
import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import websockets

XSS_PATH = "/<b>bold</b><img/src=x/onerror=window.__xss=1>"


def out(ok, desc, why=""):
    print(("PASS " if ok else "FAIL ") + desc + ("" if ok else ": " + why), flush=True)
    return ok


class Cdp:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    async def call(self, method, params=None, timeout=15):
        self.next_id += 1
        mid = self.next_id
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(method)
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def eval(self, expr):
        r = await self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate failed: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    async def wait_for(self, expr, timeout=10):
        """Polls |expr| until it is truthy (bounded); returns its last value."""
        deadline = time.monotonic() + timeout
        v = None
        while time.monotonic() < deadline:
            v = await self.eval(expr)
            if v:
                return v
            await asyncio.sleep(0.2)
        return v

    async def screenshot(self, path):
        r = await self.call("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))


ROWS = """JSON.stringify(Object.fromEntries([...document.querySelectorAll('#clients tbody tr')].map(
  tr => [tr.dataset.client, Number(tr.querySelector('td.requests').textContent)])))"""


def public_get(port, domain, name, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.putrequest("GET", path, skip_host=True)
    c.putheader("Host", f"{name}.{domain}:{port}")
    c.endheaders()
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def start_chromium(binary, profile):
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
            f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            "--window-size=1500,900", "about:blank"]
    log = open(os.path.join(profile, "..", "chromium.log"), "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        try:
            with open(port_file) as f:
                lines = f.read().split()
            if len(lines) >= 1 and lines[0].isdigit():
                return proc, int(lines[0])
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port within 30 s")


def page_ws_url(port):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
            for t in json.load(r):
                if t.get("type") == "page" and "webSocketDebuggerUrl" in t:
                    return t["webSocketDebuggerUrl"]
        time.sleep(0.2)
    raise RuntimeError("no page target")


async def run(a, port):
    ok = True
    async with websockets.connect(page_ws_url(port), max_size=64 << 20, ping_interval=None) as ws:
        cdp = Cdp(ws)
        auth = base64.b64encode(f"{a.user}:{a.password}".encode()).decode()
        await cdp.call("Network.enable")
        await cdp.call("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Basic " + auth}})
        await cdp.call("Page.enable")
        await cdp.call("Emulation.setDeviceMetricsOverride",
                       {"width": 1500, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        await cdp.call("Page.navigate", {"url": a.admin + "/"})

        rows = json.loads(await cdp.wait_for(
            "(() => { const r = " + ROWS + "; return Object.keys(JSON.parse(r)).length >= 2 ? r : ''; })()") or "{}")
        ok &= out(sorted(rows) == ["alpha", "beta"], "dashboard lists both clients", f"rows {rows}")
        ok &= out(await cdp.eval("document.getElementById('status').className") == "status ok",
                  "dashboard status is live")

        before = rows
        n = 5
        for _ in range(n):
            public_get(a.public_port, a.domain, "alpha", "/dash/alpha")
        for _ in range(2):
            public_get(a.public_port, a.domain, "beta", "/dash/beta")
        st = public_get(a.public_port, a.domain, "alpha", XSS_PATH)
        ok &= out(st == 200, "request with an HTML path goes through", f"status {st}")
        want_a, want_b = before.get("alpha", 0) + n + 1, before.get("beta", 0) + 2
        t0 = time.monotonic()
        expr = ("(() => { const r = JSON.parse(" + ROWS + "); return (r.alpha === %d && r.beta === %d) ? JSON.stringify(r) : ''; })()"
                % (want_a, want_b))
        after = await cdp.wait_for(expr, timeout=6)
        took = time.monotonic() - t0
        now = json.loads(await cdp.eval(ROWS))
        ok &= out(bool(after), f"request counts updated (alpha {before.get('alpha')}->{want_a}, beta {before.get('beta')}->{want_b})",
                  f"page shows {now}")
        ok &= out(took <= 3.0, f"update seen within 3 s ({took:.1f} s; the page polls every 1 s)")

        # the attacker-controlled path is shown as text, never parsed as HTML
        shown = await cdp.wait_for(
            "[...document.querySelectorAll('#recent td.path')].map(td => td.textContent).find(t => t.includes('<b>bold</b>')) || ''")
        ok &= out(shown == XSS_PATH, "HTML path shown literally", f"shown {shown!r}")
        injected = await cdp.eval("document.querySelectorAll('#recent b, #recent img, #clients b, #clients img').length")
        ok &= out(injected == 0, "no element injected by the path", f"{injected} elements")
        ok &= out(await cdp.eval("typeof window.__xss") == "undefined", "injected handler never ran")

        await cdp.screenshot(os.path.join(a.artifacts, "dashboard.png"))
        ok &= out(os.path.getsize(os.path.join(a.artifacts, "dashboard.png")) > 10000, "screenshot saved")

        # disconnect beta: first click arms the button, the second confirms
        await cdp.eval("document.querySelector('#clients button[data-client=\"beta\"]').click()")
        armed = await cdp.wait_for("document.querySelector('#clients button[data-client=\"beta\"]')?.textContent === 'confirm'", 3)
        ok &= out(bool(armed), "first click asks for confirmation")
        await cdp.eval("document.querySelector('#clients button[data-client=\"beta\"]').click()")
        gone = await cdp.wait_for("(() => { const r = JSON.parse(" + ROWS + "); return !('beta' in r) && ('alpha' in r); })()", 6)
        ok &= out(bool(gone), "beta disappears after disconnect", f"rows {await cdp.eval(ROWS)}")
        msg = await cdp.eval("document.getElementById('message').textContent")
        ok &= out(msg == "Disconnected beta.", "disconnect confirmed on the page", f"message {msg!r}")
        await cdp.screenshot(os.path.join(a.artifacts, "dashboard-after-disconnect.png"))
    return ok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--admin", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--public-port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--artifacts", required=True)
    p.add_argument("--profile", required=True)
    p.add_argument("--chromium", default="chromium")
    a = p.parse_args()
    os.makedirs(a.artifacts, exist_ok=True)
    os.makedirs(a.profile, exist_ok=True)
    proc = None
    ok = False
    try:
        proc, port = start_chromium(a.chromium, a.profile)
        ok = asyncio.run(asyncio.wait_for(run(a, port), 120))
    except Exception as e:  # reported as a failed check, never a hang
        out(False, "dashboard driver", f"{type(e).__name__}: {e}")
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
