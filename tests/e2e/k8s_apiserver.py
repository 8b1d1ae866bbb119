#!/usr/bin/python3
"""A stand-in Kubernetes API server for the kubectl e2e test (plain HTTP/1.1, stdlib only).

Serves what kubectl 1.32 needs for `exec` and `port-forward` on one pod, `default/demo`:
  GET /version, /api, /api/v1, /apis (legacy discovery), GET /api/v1/namespaces/default/pods/demo
  GET .../pods/demo/exec?command=...   WebSocket, subprotocol v5.channel.k8s.io (also v4): channel 0
      stdin, 1 stdout, 2 stderr, 3 status (metav1.Status; NonZeroExitCode with the exit code),
      4 resize; v5 close signal [255, channel]. Runs only allow-listed commands (see ALLOWED).
  GET .../pods/demo/portforward?ports=P  WebSocket, subprotocol SPDY/3.1+portforward.k8s.io: an
      SPDY/3.1 server session inside the WebSocket byte stream. Each forwarded connection is an
      error stream + a data stream (headers streamtype/port/requestid); the data stream is relayed
      to 127.0.0.1:--pod-port-P (the "pod's" port). SPDY header blocks are zlib with the SPDY/3
      dictionary: the dictionary is read from the kubectl binary under test (--kubectl) and checked
      against the DICTID of kubectl's own stream; without it, streams are paired by creation order.
  --tls-cert/--tls-key serve HTTPS, as a real kube-apiserver does (the client's LOCAL_SCHEMA=https).
Every request line is appended to --log (the capture of what kubectl sends).
"""
import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import struct
import sys
import urllib.parse
import zlib

ARGS = None
LOG = None


def log(msg):
    msg = "".join(c if " " <= c <= "~" else "?" for c in msg)  # e.g. a TLS probe from LOCAL_SCHEMA detection
    LOG.write(msg + "\n")
    LOG.flush()


# ------------------------------------------------------------------ objects
def pod():
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "demo", "namespace": "default", "uid": "00000000-0000-0000-0000-00000000d3e0",
                         "resourceVersion": "1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "demo", "image": "tunnelmux/demo:1"}], "nodeName": "node-1"},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                       "containerStatuses": [{"name": "demo", "ready": True, "restartCount": 0, "image": "tunnelmux/demo:1",
                                              "imageID": "", "started": True, "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def resources():
    def r(name, kind, verbs, short=None):
        d = {"name": name, "singularName": "" if "/" in name else name[:-1], "namespaced": True, "kind": kind, "verbs": verbs}
        if short:
            d["shortNames"] = short
        return d
    return {"kind": "APIResourceList", "groupVersion": "v1",
            "resources": [r("pods", "Pod", ["get", "list"], ["po"]), r("pods/exec", "PodExecOptions", ["create", "get"]),
                          r("pods/portforward", "PodPortForwardOptions", ["create", "get"]),
                          r("pods/attach", "PodAttachOptions", ["create", "get"])]}


ROUTES = {
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "4cb5f07", "gitTreeState": "clean",
                 "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]},
    "/api/v1": resources(),
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1/namespaces/default/pods/demo": pod(),
}

ALLOWED = {"echo", "cat", "sha256sum", "true", "false", "wc", "head"}


def allowed(cmd):
    if not cmd:
        return False
    if cmd[0] in ALLOWED:
        return True
    return len(cmd) == 3 and cmd[0] == "sh" and cmd[1] == "-c" and re.fullmatch(r"exit [0-9]{1,3}", cmd[2]) is not None


# ------------------------------------------------------------------ WebSocket (server side, RFC 6455)
class WS:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.closed = False
        self.lock = asyncio.Lock()

    async def send(self, payload, opcode=2):
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        async with self.lock:
            if self.closed and opcode != 8:
                return
            self.w.write(hdr + payload)
            await self.w.drain()

    async def recv(self):
        """Next data message (bytes), or None at close/EOF. Answers pings."""
        buf = bytearray()
        while True:
            h = await self.r.readexactly(2)
            fin, op = h[0] & 0x80, h[0] & 0x0F
            n = h[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.r.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.r.readexactly(8))[0]
            mask = await self.r.readexactly(4) if h[1] & 0x80 else None
            data = await self.r.readexactly(n)
            if mask:
                m = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
                data = (int.from_bytes(data, "little") ^ m).to_bytes(n, "little")
            if op == 9:
                await self.send(data, 10)
                continue
            if op == 10:
                continue
            if op == 8:
                if not self.closed:
                    self.closed = True
                    await self.send(data[:2], 8)
                return None
            buf += data
            if fin:
                return bytes(buf)

    async def close(self, code=1000):
        if not self.closed:
            self.closed = True
            await self.send(struct.pack("!H", code), 8)


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()


# ------------------------------------------------------------------ exec
async def do_exec(ws, proto, q):
    cmd = q.get("command", [])
    log("exec %s proto=%s" % (json.dumps(cmd), proto))

    async def status(code, msg=""):
        if code == 0:
            st = {"metadata": {}, "status": "Success"}
        else:
            st = {"metadata": {}, "status": "Failure", "message": msg or "command terminated with non-zero exit code: exit status %d" % code,
                  "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        await ws.send(b"\x03" + json.dumps(st).encode())

    if not allowed(cmd):
        st = {"metadata": {}, "status": "Failure", "message": "command not allowed by the test API server", "reason": "Forbidden", "code": 403}
        await ws.send(b"\x03" + json.dumps(st).encode())
        await ws.close()
        return
    use_stdin = q.get("stdin", ["false"])[0] == "true"
    p = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE if use_stdin else asyncio.subprocess.DEVNULL,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def pump(stream, ch):
        while True:
            b = await stream.read(1 << 16)
            if not b:
                return
            await ws.send(bytes([ch]) + b)

    async def reader():
        try:
            while True:
                m = await ws.recv()
                if m is None:
                    break
                if not m:
                    continue
                if m[0] == 0 and use_stdin and len(m) > 1:
                    p.stdin.write(m[1:])
                    await p.stdin.drain()
                elif m[0] == 255 and m[1:2] == b"\x00" and use_stdin:
                    p.stdin.close()
                elif m[0] == 4:
                    log("resize %s" % m[1:].decode(errors="replace"))
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            pass
        finally:
            if use_stdin and not p.stdin.is_closing():
                p.stdin.close()

    rt = asyncio.create_task(reader())
    await asyncio.gather(pump(p.stdout, 1), pump(p.stderr, 2))
    code = await p.wait()
    log("exec exit %d" % code)
    await status(code)
    await ws.close()
    try:
        await asyncio.wait_for(rt, 5)
    except asyncio.TimeoutError:
        rt.cancel()


# ------------------------------------------------------------------ SPDY/3.1 port-forward
def spdy_dictionary():
    """The SPDY/3 header dictionary as compiled into the kubectl under test (or None)."""
    path = ARGS.kubectl
    if not path or not os.path.exists(path):
        return None
    data = open(path, "rb").read()
    i = data.find(b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post")
    if i < 0:
        return None
    return data[i:i + 4096]  # trimmed to the length matching kubectl's DICTID on first use


class Spdy:
    def __init__(self, ws, target_ports):
        self.ws = ws
        self.ports = target_ports
        self.buf = bytearray()
        self.dict_raw = spdy_dictionary()
        self.zin = None
        self.zout = zlib.compressobj()  # no FDICT: Go's reader needs the dictionary only when FDICT is set
        self.streams = {}  # id -> dict(type, port, req, conn writer)
        self.pending = {}  # requestid -> {"error": id, "data": id}
        self.order = []
        self.tasks = []

    def inflate(self, block):
        if self.zin is None:
            if len(block) >= 6 and block[1] & 0x20 and self.dict_raw:
                dictid = struct.unpack("!I", block[2:6])[0]
                for n in range(1000, len(self.dict_raw) + 1):
                    if zlib.adler32(self.dict_raw[:n]) == dictid:
                        self.zin = zlib.decompressobj(zdict=self.dict_raw[:n])
                        log("spdy: dictionary found in kubectl (%d bytes)" % n)
                        break
            if self.zin is None:
                raise ValueError("no SPDY dictionary")
        out = self.zin.decompress(block)
        (n,) = struct.unpack("!I", out[:4])
        off, hdrs = 4, {}
        for _ in range(n):
            (ln,) = struct.unpack("!I", out[off:off + 4])
            name = out[off + 4:off + 4 + ln].decode()
            off += 4 + ln
            (lv,) = struct.unpack("!I", out[off:off + 4])
            hdrs[name] = out[off + 4:off + 4 + lv].decode()
            off += 4 + lv
        return hdrs

    def deflate(self, hdrs):
        raw = struct.pack("!I", len(hdrs))
        for k, v in hdrs.items():
            raw += struct.pack("!I", len(k)) + k.encode() + struct.pack("!I", len(v)) + v.encode()
        return self.zout.compress(raw) + self.zout.flush(zlib.Z_SYNC_FLUSH)

    async def control(self, typ, flags, data):
        await self.ws.send(struct.pack("!HHI", 0x8003, typ, (flags << 24) | len(data)) + data)

    async def data(self, sid, payload, fin=False):
        for off in range(0, max(len(payload), 1), 1 << 16):
            chunk = payload[off:off + (1 << 16)]
            last = off + (1 << 16) >= len(payload)
            await self.ws.send(struct.pack("!II", sid, ((1 if (fin and last) else 0) << 24) | len(chunk)) + chunk)

    async def run(self):
        try:
            while True:
                m = await self.ws.recv()
                if m is None:
                    break
                self.buf += m
                while len(self.buf) >= 8:
                    (length,) = struct.unpack("!I", b"\x00" + bytes(self.buf[5:8]))
                    if len(self.buf) < 8 + length:
                        break
                    frame = bytes(self.buf[:8 + length])
                    del self.buf[:8 + length]
                    await self.frame(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        for st in self.streams.values():
            if st.get("w"):
                st["w"].close()

    async def frame(self, f):
        flags = f[4]
        body = f[8:]
        if f[0] & 0x80:
            typ = struct.unpack("!H", f[2:4])[0]
            if typ == 1:  # SYN_STREAM
                sid = struct.unpack("!I", body[:4])[0] & 0x7FFFFFFF
                try:
                    hdrs = self.inflate(body[10:])
                except Exception as e:  # no dictionary: pair by creation order (error, then data)
                    log("spdy: headers not decoded (%s); pairing by order" % e)
                    hdrs = {"streamtype": "error" if len(self.order) % 2 == 0 else "data",
                            "requestid": str(len(self.order) // 2), "port": str(next(iter(self.ports)))}
                self.order.append(sid)
                log("spdy: SYN_STREAM %d %s" % (sid, json.dumps(hdrs, sort_keys=True)))
                st = {"type": hdrs.get("streamtype"), "port": int(hdrs.get("port", "0")), "req": hdrs.get("requestid", "")}
                self.streams[sid] = st
                await self.control(2, 0, struct.pack("!I", sid) + self.deflate({}))  # SYN_REPLY
                pair = self.pending.setdefault(st["req"], {})
                pair[st["type"]] = sid
                if st["type"] == "data":
                    await self.open_data(sid, st, pair)
                if flags & 1:
                    await self.remote_fin(sid)
            elif typ == 3:  # RST_STREAM
                sid = struct.unpack("!I", body[:4])[0] & 0x7FFFFFFF
                st = self.streams.get(sid)
                if st and st.get("w"):
                    st["w"].close()
            elif typ == 6:  # PING
                await self.control(6, 0, body)
            elif typ == 7:  # GOAWAY
                pass
        else:
            sid = struct.unpack("!I", f[:4])[0] & 0x7FFFFFFF
            st = self.streams.get(sid)
            if st and st.get("w") and body:
                st["w"].write(body)
                await st["w"].drain()
            if flags & 1:
                await self.remote_fin(sid)

    async def remote_fin(self, sid):
        st = self.streams.get(sid)
        if st and st.get("w") and st["type"] == "data":
            try:
                st["w"].write_eof()
            except (OSError, RuntimeError):
                pass

    async def open_data(self, sid, st, pair):
        target = self.ports.get(st["port"])
        err_sid = pair.get("error")
        if target is None:
            if err_sid:
                await self.data(err_sid, b"port %d is not forwarded by the test pod" % st["port"], fin=True)
            await self.data(sid, b"", fin=True)
            return
        try:
            r, w = await asyncio.open_connection("127.0.0.1", target)
        except OSError as e:
            if err_sid:
                await self.data(err_sid, ("cannot connect: %s" % e).encode(), fin=True)
            return
        st["w"] = w

        async def back():
            total = 0
            try:
                while True:
                    b = await r.read(1 << 16)
                    if not b:
                        break
                    total += len(b)
                    await self.data(sid, b)
            except ConnectionError:
                pass
            log("spdy: stream %d: %d bytes from the pod port" % (sid, total))
            await self.data(sid, b"", fin=True)
            if err_sid:
                await self.data(err_sid, b"", fin=True)

        self.tasks.append(asyncio.create_task(back()))


# ------------------------------------------------------------------ HTTP/1.1
async def conn(reader, writer):
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError, OSError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            hdrs = {}
            for ln in lines[1:]:
                if ":" in ln:
                    k, v = ln.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
            log("%s %s | upgrade=%s protocol=%s host=%s" % (method, target, hdrs.get("upgrade", "-"),
                                                         hdrs.get("sec-websocket-protocol", "-"), hdrs.get("host", "-")))
            if int(hdrs.get("content-length", "0") or 0) > 0:
                await reader.readexactly(int(hdrs["content-length"]))
            u = urllib.parse.urlsplit(target)
            q = urllib.parse.parse_qs(u.query)
            base = "/api/v1/namespaces/default/pods/demo/"
            if hdrs.get("upgrade", "").lower() == "websocket" and u.path in (base + "exec", base + "portforward"):
                offered = [p.strip() for p in hdrs.get("sec-websocket-protocol", "").split(",") if p.strip()]
                want = ["v5.channel.k8s.io", "v4.channel.k8s.io"] if u.path.endswith("exec") else ["SPDY/3.1+portforward.k8s.io"]
                proto = next((p for p in offered if p in want), None)
                if proto is None or "sec-websocket-key" not in hdrs:
                    body = b'{"kind":"Status","status":"Failure","message":"no supported subprotocol","code":400}'
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                    await writer.drain()
                    continue
                writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n" % (accept_key(hdrs["sec-websocket-key"]), proto)).encode())
                await writer.drain()
                ws = WS(reader, writer)
                if u.path.endswith("exec"):
                    await do_exec(ws, proto, q)
                else:
                    ports = {}
                    for spec in ARGS.pod_port:
                        a, b = spec.split("=")
                        ports[int(a)] = int(b)
                    log("portforward ports=%s" % q.get("ports"))
                    await Spdy(ws, ports).run()
                return
            obj = ROUTES.get(u.path)
            if obj is None:
                code, reason = 404, "Not Found"
                obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "the test API server does not serve %s" % u.path, "reason": "NotFound", "code": 404}
            else:
                code, reason = 200, "OK"
            body = json.dumps(obj).encode()
            writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (code, reason.encode(), len(body)) + body)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
        log("connection error: %r" % e)
    finally:
        writer.close()


async def main():
    global ARGS, LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--kubectl", default="/usr/bin/kubectl")
    ap.add_argument("--pod-port", action="append", default=[], help="POD_PORT=LOCAL_PORT for port-forward")
    ap.add_argument("--tls-cert", help="serve HTTPS like a real kube-apiserver (with --tls-key)")
    ap.add_argument("--tls-key")
    ARGS = ap.parse_args()
    LOG = open(ARGS.log, "a")
    ctx = None
    if ARGS.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
    srv = await asyncio.start_server(conn, "127.0.0.1", 0, limit=1 << 20, ssl=ctx)
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.sockets[0].getsockname()[1])
    os.rename(tmp, ARGS.port_file)
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
