#!/usr/bin/python3
"""Public-side WebSocket peer for the pass-through e2e tests (Debian's /usr/bin/python3 with
python3-websockets 10.x). Connects to 127.0.0.1:PORT with Host NAME.DOMAIN:PORT, so every byte goes
through tunnelmux-server -> tunnel -> tunnelmux-client -> tests/e2e/ws_service.py.

Each subcommand prints "ok DESCRIPTION" / "FAIL DESCRIPTION: why" lines (the shell test counts
them) and exits non-zero when anything failed. Every wait is bounded.
"""
import argparse
import asyncio
import base64
import hashlib
import json
import os
import socket
import ssl
import sys
import time

import websockets
import websockets.legacy.client as wsc

RESULTS = {"ok": 0, "fail": 0}


def ok(desc):
    RESULTS["ok"] += 1
    print("ok " + desc, flush=True)


def fail(desc, why=""):
    RESULTS["fail"] += 1
    print("FAIL " + desc + (": " + why if why else ""), flush=True)


def check(desc, cond, why=""):
    ok(desc) if cond else fail(desc, why)


class Target:
    def __init__(self, a):
        self.port = a.port
        self.host = "%s.%s:%d" % (a.name, a.domain, a.port)
        self.scheme = "wss" if a.tls else "ws"
        self.ssl = None
        if a.tls:
            self.ssl = ssl.create_default_context(cafile=a.cafile)

    def uri(self, path):
        return "%s://%s%s" % (self.scheme, self.host, path)

    def connect(self, path, **kw):
        kw.setdefault("max_size", None)
        kw.setdefault("ping_interval", None)
        kw.setdefault("open_timeout", 30)
        kw.setdefault("close_timeout", 5)
        if self.ssl is not None:
            kw["ssl"] = self.ssl
            kw["server_hostname"] = self.host.rsplit(":", 1)[0]
        return wsc.connect(self.uri(path), host="127.0.0.1", port=self.port, **kw)


def pattern(n, salt=0):
    """n bytes, different per salt; cheap to build and compare."""
    base = hashlib.sha256(b"tm%d" % salt).digest() * 2048  # 64 KiB
    reps = n // len(base) + 1
    return (base * reps)[:n]


# ------------------------------------------------------------------ echo, subprotocol, headers
async def cmd_echo(t, a):
    sizes = [1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]
    async with t.connect("/echo", compression=None) as ws:
        for n in sizes:
            m = pattern(n, n)
            t0 = time.monotonic()
            await ws.send(m)
            r = await asyncio.wait_for(ws.recv(), 60)
            check("binary echo %d B (%.2f s)" % (n, time.monotonic() - t0), r == m, "got %d B" % len(r))
            s = "é" + "x" * (n - 2) if n >= 2 else "x"
            await ws.send(s)
            r = await asyncio.wait_for(ws.recv(), 60)
            check("text echo %d chars" % len(s), r == s, "type %s len %d" % (type(r).__name__, len(r)))
        # a burst of small messages in flight at once
        msgs = [pattern(1 + i * 37 % 3000, i) for i in range(500)]
        for m in msgs:
            await ws.send(m)
        got = [await asyncio.wait_for(ws.recv(), 30) for _ in msgs]
        check("500 pipelined small messages in order", got == msgs)
        pong = await ws.ping(b"tm-ping")
        await asyncio.wait_for(pong, 10)
        ok("ping/pong through the tunnel")
        await ws.close(1000, "bye")
        check("close handshake (code %s)" % ws.close_code, ws.close_code == 1000)


async def cmd_subprotocol(t, a):
    async with t.connect("/headers", subprotocols=["v5.channel.k8s.io", "v4.channel.k8s.io"]) as ws:
        check("subprotocol v5.channel.k8s.io negotiated end to end", ws.subprotocol == "v5.channel.k8s.io",
              "got %r" % ws.subprotocol)
        hdrs = json.loads(await asyncio.wait_for(ws.recv(), 10))
        lower = {}
        for k, v in hdrs:
            lower.setdefault(k.lower(), []).append(v)
        check("Sec-WebSocket-Key reaches the local service", "sec-websocket-key" in lower)
        check("Sec-WebSocket-Version 13 reaches the local service", lower.get("sec-websocket-version") == ["13"])
        check("Sec-WebSocket-Protocol reaches the local service intact",
              lower.get("sec-websocket-protocol") == ["v5.channel.k8s.io, v4.channel.k8s.io"], str(lower.get("sec-websocket-protocol")))
        check("Sec-WebSocket-Extensions reaches the local service", "permessage-deflate" in " ".join(lower.get("sec-websocket-extensions", [])))
        check("Upgrade: websocket and Connection: Upgrade towards the local service",
              lower.get("upgrade") == ["websocket"] and "upgrade" in " ".join(lower.get("connection", [])).lower(), str(lower))
        check("Host is the public host", lower.get("host") == [t.host], str(lower.get("host")))
        check("X-Forwarded-For added", "x-forwarded-for" in lower)
        ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        check("permessage-deflate negotiated end to end (%s)" % ext, "permessage-deflate" in ext)
        m = "compressible " * 10000
        await ws.send(m)
        check("compressed message echoed", await asyncio.wait_for(ws.recv(), 10) == m)
    async with t.connect("/echo", subprotocols=["v4.channel.k8s.io"]) as ws:
        check("subprotocol v4.channel.k8s.io negotiated", ws.subprotocol == "v4.channel.k8s.io", "got %r" % ws.subprotocol)


# ------------------------------------------------------------------ kubectl-exec-shaped session
async def cmd_exec(t, a):
    async with t.connect("/exec", subprotocols=["v5.channel.k8s.io"], compression=None) as ws:
        check("exec: v5.channel.k8s.io", ws.subprotocol == "v5.channel.k8s.io")
        out = bytearray()
        err = bytearray()
        status = []

        async def reader():
            async for m in ws:
                if m[0] == 1:
                    out.extend(m[1:])
                elif m[0] == 2:
                    err.extend(m[1:])
                elif m[0] == 3:
                    status.append(json.loads(m[1:]))

        rt = asyncio.create_task(reader())
        expect = bytearray()
        deadline = time.monotonic() + a.seconds
        i = 0
        lat = []
        while time.monotonic() < deadline and i < 100000:
            line = b"line %d %s\n" % (i, b"k" * (i % 97))
            before = len(out)
            t0 = time.monotonic()
            await ws.send(b"\x00" + line)
            expect += line
            if i % 10 == 0:
                await ws.send(b"\x00err:warning %d\n" % i)
            if i % 25 == 0:
                await ws.send(b"\x04" + json.dumps({"Width": 80 + i % 50, "Height": 24}).encode())
                expect += b"resize %dx24\n" % (80 + i % 50)
            # interactive: wait for the echo before typing the next line
            for _ in range(2000):
                if len(out) >= before + len(line):
                    break
                await asyncio.sleep(0.001)
            lat.append(time.monotonic() - t0)
            i += 1
            await asyncio.sleep(a.think)
        await ws.send(b"\x00exit:0\n")
        await ws.send(bytes([255, 0]))  # v5: close stdin
        await asyncio.wait_for(rt, 30)
        check("exec: %d interactive round trips over %.0f s, stdout intact" % (i, a.seconds), bytes(out) == bytes(expect),
              "stdout %d B, expected %d B" % (len(out), len(expect)))
        check("exec: stderr channel", err.count(b"warning") == (i + 9) // 10, "%d warnings" % err.count(b"warning"))
        check("exec: status Success on channel 3", status and status[0].get("status") == "Success", str(status))
        lat.sort()
        print("info exec round trip p50 %.1f ms p99 %.1f ms" % (1000 * lat[len(lat) // 2], 1000 * lat[int(len(lat) * 0.99)]))
    async with t.connect("/exec", subprotocols=["v5.channel.k8s.io"]) as ws:
        await ws.send(b"\x00exit:3\n")
        await ws.send(bytes([255, 0]))
        st = None
        async for m in ws:
            if m[0] == 3:
                st = json.loads(m[1:])
        check("exec: exit code 3 reported as NonZeroExitCode", st is not None and st.get("reason") == "NonZeroExitCode" and
              st["details"]["causes"][0]["message"] == "3", str(st))


# ------------------------------------------------------------------ many concurrent WebSockets
SHARED = {}


def shared_slice(total, idx):
    """A distinct |total|-byte view per idx over one shared buffer (200 x 10 MiB must not cost 2 GB)."""
    key = total
    if key not in SHARED:
        block = os.urandom(1 << 20)
        SHARED[key] = (block * (total // len(block) + 2))[:total + (1 << 20)]
    off = (idx * 4099) % (1 << 20)
    return memoryview(SHARED[key])[off:off + total]


async def echo_bulk(t, idx, total, msg):
    data = shared_slice(total, idx)
    async with t.connect("/echo", compression=None, max_queue=4, write_limit=1 << 20) as ws:
        async def sender():
            for off in range(0, total, msg):
                await ws.send(data[off:off + msg])

        st = asyncio.create_task(sender())
        off = 0
        while off < total:
            r = await ws.recv()
            if r != data[off:off + len(r)]:
                raise RuntimeError("ws %d: mismatch at %d" % (idx, off))
            off += len(r)
        await st
    return total


async def cmd_many(t, a):
    total = a.mib << 20
    t0 = time.monotonic()
    slow = None
    release = asyncio.Event()  # the slow reader trickles until the others are done (no wall-clock race)
    progress = {"got": 0}
    if a.slow:
        slow = asyncio.create_task(slow_reader(t, a, release, progress))
        await asyncio.sleep(0.5)
    tasks = [asyncio.create_task(echo_bulk(t, i, total, 256 << 10)) for i in range(a.n)]
    done, pending = await asyncio.wait(tasks, timeout=a.timeout)
    dt = time.monotonic() - t0
    good = sum(1 for d in done if d.exception() is None)
    errs = [str(d.exception()) for d in done if d.exception() is not None][:3]
    for p in pending:
        p.cancel()
    mib = good * total * 2 / (1 << 20)
    check("%d concurrent WebSockets x %d MiB echoed and verified (%.1f s, %.0f MiB/s both ways)" % (a.n, a.mib, dt, mib / dt),
          good == a.n, "%d ok, %d pending, errors %s" % (good, len(pending), errs))
    if a.max_seconds and good == a.n:
        check("%d WebSockets done within %d s" % (a.n, a.max_seconds), dt <= a.max_seconds, "%.1f s" % dt)
    if slow is not None:
        # it read a trickle all along: the rest of its push waited in the tunnel's flow control
        # while the other streams finished (they were not held back by it)
        check("slow reader still held back while the others finished",
              not slow.done() and progress["got"] < (a.slow_mib << 20),
              "finished already" if slow.done() else "%d of %d B read" % (progress["got"], a.slow_mib << 20))
        release.set()
        try:
            await asyncio.wait_for(slow, a.timeout)
        except Exception as e:
            fail("slow reader completes", repr(e))


async def slow_reader(t, a, release, progress):
    n = a.slow_mib << 20
    async with t.connect("/push?bytes=%d&seed=slow&chunk=65536" % n, compression=None, max_queue=2) as ws:
        # read one message per 100 ms (a trickle) for at least --slow-stall seconds and until
        # |release| (the other streams are done), then drain
        h = hashlib.sha256()
        got = 0
        t_end = time.monotonic() + a.slow_stall
        while (time.monotonic() < t_end or not release.is_set()) and got < n:
            m = await asyncio.wait_for(ws.recv(), 30)
            if isinstance(m, str):
                break
            h.update(m)
            got += len(m)
            progress["got"] = got
            await asyncio.sleep(0.1)
        t0 = time.monotonic()
        while True:
            m = await asyncio.wait_for(ws.recv(), 60)
            if isinstance(m, str):
                break
            h.update(m)
            got += len(m)
        check("slow reader: %d MiB intact after the stall (drained in %.1f s)" % (a.slow_mib, time.monotonic() - t0),
              m == "sha256:" + h.hexdigest() and got == n, "%d B" % got)


# ------------------------------------------------------------------ idle, abrupt close
async def cmd_idle(t, a):
    async with t.connect("/echo") as ws:
        await ws.send("before")
        await asyncio.wait_for(ws.recv(), 10)
        await asyncio.sleep(a.seconds)
        try:
            await ws.send("after")
            r = await asyncio.wait_for(ws.recv(), 10)
            if a.expect_closed:
                fail("idle WebSocket closed by UPGRADE_IDLE_TIMEOUT", "still open")
            else:
                check("WebSocket idle %.0f s (longer than READ_TIMEOUT) still works" % a.seconds, r == "after")
        except (websockets.ConnectionClosed, asyncio.TimeoutError) as e:
            if a.expect_closed:
                ok("idle WebSocket closed by UPGRADE_IDLE_TIMEOUT (%s)" % type(e).__name__)
            else:
                fail("idle WebSocket still works", repr(e))


def raw_upgrade_request(t, path, extra=b""):
    key = base64.b64encode(os.urandom(16))
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + t.host.encode() + b"\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < 65536:
        b = s.recv(4096)
        if not b:
            break
        buf += b
    return buf


async def cmd_abrupt(t, a):
    """Full close: the user vanishes (TCP close, no close frame) -> the local side closes promptly."""
    socks = []
    for _ in range(a.n):
        s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
        s.sendall(raw_upgrade_request(t, "/echo"))
        h = read_head(s)
        if not h.startswith(b"HTTP/1.1 101"):
            fail("abrupt: upgrade", h[:80].decode("latin-1"))
            return
        socks.append(s)
    opened = json.loads(await http_get(a.count_port, "/count"))["open"]
    check("abrupt: %d WebSockets open at the local service" % a.n, opened >= a.n, str(opened))
    t0 = time.monotonic()
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        s.close()
    left = None
    while time.monotonic() - t0 < 10:
        left = json.loads(await http_get(a.count_port, "/count"))["open"]
        if left == 0:
            break
        await asyncio.sleep(0.1)
    check("abrupt: the local service saw every connection close (%.1f s)" % (time.monotonic() - t0), left == 0, "%s open" % left)


async def http_get(port, path):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(r.read(), 10)
    w.close()
    return data.split(b"\r\n\r\n", 1)[1]


# ------------------------------------------------------------------ generic upgrade, half-close
async def cmd_generic(t, a):
    s = socket.create_connection(("127.0.0.1", t.port), timeout=30)
    s.sendall(b"GET /generic HTTP/1.1\r\nHost: " + t.host.encode() + b"\r\nUpgrade: tmtest/1\r\nConnection: Upgrade\r\n\r\n")
    h = read_head(s)
    head, rest = h.split(b"\r\n\r\n", 1)
    check("generic upgrade: 101 with Upgrade: tmtest/1", head.startswith(b"HTTP/1.1 101") and b"tmtest/1" in head.lower(),
          head[:200].decode("latin-1"))
    data = pattern(a.bytes, 7)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # half-close: the reply must still come back
    buf = rest
    while True:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    s.close()
    want = b"got %d sha256:%s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
    check("generic upgrade: user half-close propagated, %d B counted and the answer came back" % len(data), buf == want,
          repr(buf[:120]))


# ------------------------------------------------------------------ HTTP/2 attempts
def cmd_h2(t, a):
    import h2.config
    import h2.connection
    import h2.events

    def one(headers, desc, want):
        s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                                                normalize_outbound_headers=False))
        c.initiate_connection()
        c.send_headers(1, headers, end_stream=True)
        s.sendall(c.data_to_send())
        status, body, reset, t0 = None, b"", None, time.monotonic()
        done = False
        while not done and time.monotonic() - t0 < 10:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                reset = reset or "connection reset"
                break
            if not d:
                break
            for ev in c.receive_data(d):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = dict(ev.headers).get(b":status")
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    c.acknowledge_received_data(len(ev.data), ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    done = True
                elif isinstance(ev, h2.events.StreamReset):
                    reset, done = ev.error_code, True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    reset, done = "GOAWAY %s" % ev.error_code, True
            try:
                s.sendall(c.data_to_send())
            except (BrokenPipeError, ConnectionResetError):
                # h2o 2.2.5 closes right after its GOAWAY: our SETTINGS ACKs that arrive after the close
                # make the kernel answer RST (h2o has no lingering close for HTTP/2). An error, no hang.
                reset = reset or "connection reset"
                break
        s.close()
        dt = time.monotonic() - t0
        if want == "error":
            check("%s -> clear error, no hang (status %s, reset %s, %.2f s)" % (desc, status, reset, dt),
                  (status not in (None, b"200", b"101") or reset is not None) and dt < 5)
        else:
            check("%s -> %s (%.2f s): %s" % (desc, want, dt, body.strip().decode(errors="replace")[:100]), status == want.encode(),
                  "status %s reset %s" % (status, reset))

    base = [(":method", "GET"), (":scheme", "http"), (":authority", t.host), (":path", "/echo")]
    one(base + [("upgrade", "websocket"), ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="), ("sec-websocket-version", "13")],
        "h2c GET with upgrade: websocket", "error")
    one([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":authority", t.host), (":path", "/echo"),
         ("sec-websocket-version", "13")], "h2c extended CONNECT (RFC 8441)", "error")
    one([(":method", "CONNECT"), (":authority", t.host)], "h2c CONNECT", "error")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="ws")
    ap.add_argument("--domain", default="tm.test")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--cafile")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--mib", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=150)
    ap.add_argument("--max-seconds", type=float, default=0)
    ap.add_argument("--slow", action="store_true")
    ap.add_argument("--slow-mib", type=int, default=64)
    ap.add_argument("--slow-stall", type=float, default=5)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--think", type=float, default=0.01)
    ap.add_argument("--bytes", type=int, default=4 << 20)
    ap.add_argument("--expect-closed", action="store_true")
    ap.add_argument("--count-port", type=int)
    a = ap.parse_args()
    t = Target(a)
    fn = {"echo": cmd_echo, "subprotocol": cmd_subprotocol, "exec": cmd_exec, "many": cmd_many, "idle": cmd_idle,
          "abrupt": cmd_abrupt, "generic": cmd_generic}.get(a.cmd)
    try:
        if a.cmd == "h2":
            cmd_h2(t, a)
        elif fn is None:
            fail("unknown command " + a.cmd)
        else:
            asyncio.run(fn(t, a))
    except Exception as e:  # a crash is a failure with its reason, never a hang
        fail(a.cmd + " crashed", repr(e))
    sys.exit(1 if RESULTS["fail"] or not RESULTS["ok"] else 0)


if __name__ == "__main__":
    main()
