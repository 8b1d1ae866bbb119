#!/usr/bin/python3
"""Local service for the WebSocket pass-through e2e tests (run with Debian's /usr/bin/python3,
which has python3-websockets 10.x).

Two listeners, ports written to --port-file as "WS RAW":
  WS  (websockets legacy server; every connection counted in /count)
    /echo            echo every message back with its type (selects the first offered subprotocol
                     among v5.channel.k8s.io, v4.channel.k8s.io, chat)
    /headers         sends one text message: JSON of the request headers it received, then echo
    /push?bytes=N&seed=S&chunk=C   sends N deterministic bytes (sha256 counter stream of seed S) in
                     binary messages of C bytes, then a text message "sha256:HEX", then waits for
                     the close
    /exec            a kubectl-exec-shaped v5.channel.k8s.io session: channel 0 (stdin) is echoed on
                     1 (stdout); a stdin chunk starting with "err:" goes to 2 (stderr); channel 4
                     (resize, JSON) answers "resize WxH" on stdout; [255, 0] (v5 close of stdin)
                     ends the session with a metav1.Status on channel 3 ("exit:N" on stdin
                     before it makes the status a NonZeroExitCode failure) and a close frame
    GET /count       (plain HTTP) {"open": N, "total": M}: WebSockets currently open / ever opened
    GET /refuse426, /refuse403   (plain HTTP, also when asked to upgrade) the refusal, unchanged
  RAW (hand-written HTTP/1.1, for what a correct library refuses to do)
    /badaccept       101 with a wrong Sec-WebSocket-Accept
    /noaccept        101 without Sec-WebSocket-Accept
    /generic         101 for "Upgrade: tmtest/1", then reads raw bytes until the peer's EOF
                     (half-close) and answers "got N sha256:HEX\\n", then closes
"""
import argparse
import asyncio
import hashlib
import http
import json
import os
import sys
import urllib.parse

import websockets
import websockets.legacy.server as wss

STATE = {"open": 0, "total": 0}
SUBPROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "chat"]


def stream_bytes(seed, n):
    """Deterministic bytes: sha256(seed || counter) blocks (fast enough for tests)."""
    out = bytearray()
    i = 0
    s = seed.encode()
    while len(out) < n:
        out += hashlib.sha256(s + i.to_bytes(8, "little")).digest() * 64  # 2 KiB per hash
        i += 1
    return bytes(out[:n])


class Proto(wss.WebSocketServerProtocol):
    async def process_request(self, path, headers):
        self.req_headers = [(k, v) for k, v in headers.raw_items()]
        p = urllib.parse.urlsplit(path).path
        if p == "/count":
            body = json.dumps(STATE).encode() + b"\n"
            return (http.HTTPStatus.OK, [("Content-Type", "application/json"), ("Connection", "close")], body)
        if p == "/refuse426":
            return (http.HTTPStatus.UPGRADE_REQUIRED, [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"), ("X-Refused", "426"),
                          ("Content-Type", "text/plain"), ("Connection", "close")], b"local service wants another upgrade\n")
        if p == "/refuse403":
            return (http.HTTPStatus.FORBIDDEN, [("X-Refused", "403"), ("Content-Type", "text/plain"), ("Connection", "close")],
                    b"local service forbids this WebSocket\n")
        return None


async def handler(ws, path):
    STATE["open"] += 1
    STATE["total"] += 1
    try:
        u = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/headers":
            await ws.send(json.dumps(ws.req_headers))
            u = u._replace(path="/echo")
        if u.path == "/echo":
            async for m in ws:
                await ws.send(m)
        elif u.path == "/push":
            n = int(q.get("bytes", "1048576"))
            chunk = int(q.get("chunk", "65536"))
            data = stream_bytes(q.get("seed", "x"), n)
            for off in range(0, n, chunk):
                await ws.send(data[off:off + chunk])
            await ws.send("sha256:" + hashlib.sha256(data).hexdigest())
            await ws.wait_closed()
        elif u.path == "/exec":
            await exec_session(ws)
        else:
            await ws.close(4404, "unknown path")
    except websockets.ConnectionClosed:
        pass
    finally:
        STATE["open"] -= 1


async def exec_session(ws):
    code = 0
    async for m in ws:
        if isinstance(m, str) or len(m) == 0:
            continue
        ch, data = m[0], m[1:]
        if ch == 0:
            if data.startswith(b"err:"):
                await ws.send(b"\x02" + data[4:])
            elif data.startswith(b"exit:"):
                code = int(data[5:].strip() or b"0")
            else:
                await ws.send(b"\x01" + data)
        elif ch == 4:
            size = json.loads(data)
            await ws.send(b"\x01" + ("resize %dx%d\n" % (size["Width"], size["Height"])).encode())
        elif ch == 255 and data[:1] == b"\x00":
            break
    if code == 0:
        status = {"metadata": {}, "status": "Success"}
    else:
        status = {"metadata": {}, "status": "Failure", "message": "command terminated with non-zero exit code",
                  "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
    await ws.send(b"\x03" + json.dumps(status).encode())
    await ws.close()


def ws_accept(key):
    import base64
    return base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()


async def raw_conn(reader, writer):
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        hdrs = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if path == "/badaccept":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(5)
        elif path == "/noaccept":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(5)
        elif path == "/generic" and hdrs.get("upgrade", "").lower() == "tmtest/1" and \
                "upgrade" in hdrs.get("connection", "").lower():
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: tmtest/1\r\nConnection: Upgrade\r\n\r\n")
            await writer.drain()
            h = hashlib.sha256()
            n = 0
            while True:
                b = await asyncio.wait_for(reader.read(1 << 16), 60)
                if not b:
                    break
                h.update(b)
                n += len(b)
            writer.write(b"got %d sha256:%s\n" % (n, h.hexdigest().encode()))
            await writer.drain()
        else:
            body = b"raw fixture: unknown path or missing upgrade\n"
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()
    server = await wss.serve(handler, "127.0.0.1", 0, create_protocol=Proto, subprotocols=SUBPROTOCOLS,
                             max_size=None, max_queue=8, ping_interval=None, read_limit=1 << 20, write_limit=1 << 20)
    raw = await asyncio.start_server(raw_conn, "127.0.0.1", 0)
    wp = server.sockets[0].getsockname()[1]
    rp = raw.sockets[0].getsockname()[1]
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (wp, rp))
    os.rename(tmp, a.port_file)
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
