#!/usr/bin/env python3
"""Many tunnels from one process, speaking the tunnel protocol (docs/PROTOCOL.md) like a client daemon.

  idle_tunnels.py PORT TOKEN PREFIX N SECONDS [--no-zstd] [--answer-big] [--ready-file F]

Opens N WebSocket connections to 127.0.0.1:PORT/_tunnel and registers PREFIX0 .. PREFIX{N-1}
(HELLO with capability zstd unless --no-zstd), then keeps every tunnel alive for SECONDS like
tunnelmux-client does: it answers WebSocket PINGs and tunnel PINGs (PONG), sends its own PING after
ping_interval_ms without input, decompresses compressed messages (libzstd through ctypes: one
decompressor per tunnel, reset on R, freed when the server ends its frame, PROTOCOL.md §3.2), and
answers every request head with a response head (200, END_STREAM; with --answer-big a 1 KiB
header value, so the response is compressed when zstd was negotiated). Its own compressor follows
the same idle rule as tunnelmux: the frame is ended and the context freed after 15 s without use.

Writes 'registered=N' to --ready-file (and stdout) once all registered, then a final line
'alive=A lost=L requests=R compressed_in=C compressed_out=O' on stdout. Bounded: SECONDS, and
every blocking step has a timeout. Needs N + 50 file descriptors (ulimit -n).
"""
import ctypes
import os
import selectors
import socket
import struct
import sys
import time

# ------------------------------------------------------------------ protobuf and WebSocket framing
# one copy, shared with the security tests (tests/security/sec_tool.py)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "security"))
from sec_tool import field_bytes as fb  # noqa: E402
from sec_tool import field_varint as fv  # noqa: E402
from sec_tool import parse_fields as fields  # noqa: E402
from sec_tool import read_varint, varint, ws_frame  # noqa: E402


def record(frame_field, body):
    f = fb(frame_field, body)
    return varint(len(f)) + f


# ------------------------------------------------------------------ zstd through ctypes


class _InBuf(ctypes.Structure):
    _fields_ = [("src", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]


class _OutBuf(ctypes.Structure):
    _fields_ = [("dst", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]


Z = ctypes.CDLL("libzstd.so.1")
Z.ZSTD_createDCtx.restype = ctypes.c_void_p
Z.ZSTD_freeDCtx.argtypes = [ctypes.c_void_p]
Z.ZSTD_DCtx_reset.argtypes = [ctypes.c_void_p, ctypes.c_int]
Z.ZSTD_decompressStream.argtypes = [ctypes.c_void_p, ctypes.POINTER(_OutBuf), ctypes.POINTER(_InBuf)]
Z.ZSTD_decompressStream.restype = ctypes.c_size_t
Z.ZSTD_createCCtx.restype = ctypes.c_void_p
Z.ZSTD_freeCCtx.argtypes = [ctypes.c_void_p]
Z.ZSTD_CCtx_setParameter.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
Z.ZSTD_compressStream2.argtypes = [ctypes.c_void_p, ctypes.POINTER(_OutBuf), ctypes.POINTER(_InBuf), ctypes.c_int]
Z.ZSTD_compressStream2.restype = ctypes.c_size_t
Z.ZSTD_isError.argtypes = [ctypes.c_size_t]
Z.ZSTD_isError.restype = ctypes.c_uint
E_FLUSH, E_END = 1, 2


def z_decompress(t, data, reset):
    """-> decompressed bytes; frees t.dctx when the message ended the sender's frame."""
    if t.dctx is None:
        t.dctx = Z.ZSTD_createDCtx()
    elif reset:
        Z.ZSTD_DCtx_reset(t.dctx, 1)  # ZSTD_reset_session_only
    src = ctypes.create_string_buffer(bytes(data), len(data))
    ib = _InBuf(ctypes.cast(src, ctypes.c_void_p), len(data), 0)
    out = bytearray()
    dst = ctypes.create_string_buffer(1 << 16)
    while True:
        ob = _OutBuf(ctypes.cast(dst, ctypes.c_void_p), 1 << 16, 0)
        r = Z.ZSTD_decompressStream(t.dctx, ctypes.byref(ob), ctypes.byref(ib))
        if Z.ZSTD_isError(r):
            raise ValueError("corrupt compressed message")
        out += dst.raw[:ob.pos]
        if ib.pos == ib.size and ob.pos < ob.size:
            break
    if r == 0:  # frame ended (the sender went idle): no history needed any more
        Z.ZSTD_freeDCtx(t.dctx)
        t.dctx = None
    return bytes(out)


def z_compress(t, data, mode):
    """-> (zstd bytes, reset bit)."""
    reset = 0
    if t.cctx is None:
        t.cctx = Z.ZSTD_createCCtx()
        Z.ZSTD_CCtx_setParameter(t.cctx, 100, 3)  # ZSTD_c_compressionLevel
        Z.ZSTD_CCtx_setParameter(t.cctx, 101, 17)  # ZSTD_c_windowLog
        reset = 1
    src = ctypes.create_string_buffer(bytes(data), max(1, len(data)))
    ib = _InBuf(ctypes.cast(src, ctypes.c_void_p), len(data), 0)
    dst = ctypes.create_string_buffer(len(data) + 1024)
    out = bytearray()
    while True:
        ob = _OutBuf(ctypes.cast(dst, ctypes.c_void_p), len(data) + 1024, 0)
        r = Z.ZSTD_compressStream2(t.cctx, ctypes.byref(ob), ctypes.byref(ib), mode)
        if Z.ZSTD_isError(r):
            raise ValueError("compression failed")
        out += dst.raw[:ob.pos]
        if r == 0:
            break
    if mode == E_END:
        Z.ZSTD_freeCCtx(t.cctx)
        t.cctx = None
    return bytes(out), reset


class Tunnel:
    def __init__(self, idx, name):
        self.idx, self.name = idx, name
        self.sock = None
        self.buf = bytearray()
        self.registered = False
        self.dead = False
        self.dctx = self.cctx = None
        self.last_recv = self.last_ping = self.last_compress = time.monotonic()
        self.ping_interval = 15.0
        self.zstd = False  # agreed in WELCOME
        self.idle = 15.0 + 7.5 * (int.from_bytes(os.urandom(2), "big") / 65536.0)  # like the mux: +0..50%


class Runner:
    def __init__(self, port, token, zstd, answer_big):
        self.port, self.token, self.zstd, self.answer_big = port, token, zstd, answer_big
        self.sel = selectors.DefaultSelector()
        self.requests = self.compressed_in = self.compressed_out = 0

    def send(self, t, envelope_byte, body):
        try:
            t.sock.sendall(ws_frame(bytes([envelope_byte]) + body))
        except OSError:
            self.kill(t)

    def send_records(self, t, records, compressible):
        """Like tunnelmux: bodies under 256 bytes go plain (PROTOCOL.md §3.2)."""
        if t.zstd and compressible and len(records) >= 256:
            z, reset = z_compress(t, records, E_FLUSH)
            t.last_compress = time.monotonic()
            self.compressed_out += 1
            self.send(t, 0x11 | (0x02 if reset else 0), z)
        else:
            self.send(t, 0x10, records)

    def connect(self, t):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(("GET /_tunnel HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % self.port).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                raise OSError("closed during the upgrade")
            head += d
        if b" 101 " not in head.split(b"\r\n", 1)[0] + b" ":
            raise OSError("upgrade refused: %r" % head.split(b"\r\n", 1)[0])
        t.sock = s
        t.buf += head.split(b"\r\n\r\n", 1)[1]
        hello = fv(1, 1) + fb(2, t.name) + fb(3, self.token) + fv(4, 1 if self.zstd else 0) + fb(8, "idle_tunnels.py")
        self.send(t, 0x10, record(1, hello))
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, t)

    def kill(self, t):
        if t.dead:
            return
        t.dead = True
        try:
            self.sel.unregister(t.sock)
        except (KeyError, ValueError):
            pass
        t.sock.close()
        if t.dctx is not None:
            Z.ZSTD_freeDCtx(t.dctx)
        if t.cctx is not None:
            Z.ZSTD_freeCCtx(t.cctx)
        t.dctx = t.cctx = None

    def on_readable(self, t):
        try:
            d = t.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            d = b""
        if not d:
            self.kill(t)
            return
        t.last_recv = time.monotonic()
        t.buf += d
        while not t.dead:
            b = t.buf
            if len(b) < 2:
                return
            n, off = b[1] & 0x7F, 2
            if n == 126:
                if len(b) < 4:
                    return
                n, off = struct.unpack(">H", b[2:4])[0], 4
            elif n == 127:
                if len(b) < 10:
                    return
                n, off = struct.unpack(">Q", b[2:10])[0], 10
            if len(b) < off + n:
                return
            op, payload = b[0] & 0x0F, bytes(b[off:off + n])
            del b[:off + n]
            self.on_ws_frame(t, op, payload)

    def on_ws_frame(self, t, op, payload):
        if op == 9:  # WebSocket PING
            try:
                t.sock.sendall(ws_frame(payload, 10))
            except OSError:
                self.kill(t)
            return
        if op == 8:
            self.kill(t)
            return
        if op != 2 or not payload:
            return
        body = payload[1:]
        if payload[0] & 0x01:
            self.compressed_in += 1
            body = z_decompress(t, body, payload[0] & 0x02)
        i = 0
        out = b""
        while i < len(body):
            ln, i = read_varint(body, i)
            f = fields(body[i:i + ln])
            i += ln
            if 2 in f:  # WELCOME
                w = fields(f[2][0])
                t.registered = True
                t.zstd = self.zstd and bool(w.get(2, [0])[0] & 1)
                if 6 in w and w[6][0]:
                    t.ping_interval = w[6][0] / 1000.0
            elif 3 in f:  # REFUSE
                r = fields(f[3][0])
                print("refused %s: code=%s %s" % (t.name, r.get(1, ["?"])[0], r.get(2, [b""])[0].decode(errors="replace")),
                      file=sys.stderr)
                self.kill(t)
                return
            elif 8 in f:  # PING -> PONG, before anything else (PROTOCOL.md §4.7)
                p = fields(f[8][0])
                out = record(9, fv(1, p.get(1, [0])[0])) + out
            elif 4 in f:  # a request head: answer it
                o = fields(f[4][0])
                sid = o[1][0]
                self.requests += 1
                hdrs = fb(9, fb(1, "content-type") + fb(2, "text/plain"))
                if self.answer_big:
                    hdrs += fb(9, fb(1, "x-padding") + fb(2, "tunnelmux idle bench " * 48))
                out += record(4, fv(1, sid) + fv(2, 1) + fv(7, 200) + fb(8, "OK") + hdrs)
            elif 10 in f:  # GOAWAY: the server is going away
                self.kill(t)
                return
        if out:
            self.send_records(t, out, True)

    def timers(self, now):
        for t in self.tunnels:
            if t.dead or not t.registered:
                continue
            if now - t.last_recv >= t.ping_interval and now - t.last_ping >= t.ping_interval:
                t.last_ping = now
                self.send_records(t, record(8, fv(1, int(now * 1000))), False)
            if t.cctx is not None and now - t.last_compress >= t.idle:
                z, _ = z_compress(t, b"", E_END)  # end the frame, free the context (PROTOCOL.md §3.2)
                self.send(t, 0x11, z)

    def run(self, prefix, n, seconds, ready_file):
        self.tunnels = [Tunnel(i, "%s%d" % (prefix, i)) for i in range(n)]
        end = time.monotonic() + seconds
        for t in self.tunnels:
            try:
                self.connect(t)
            except OSError as e:
                print("connect %s: %s" % (t.name, e), file=sys.stderr)
                t.dead = True
            if t.idx % 50 == 49:  # let the server answer as we go
                self.poll(0)
        reg_deadline = time.monotonic() + 30
        while time.monotonic() < reg_deadline and any(not t.registered and not t.dead for t in self.tunnels):
            self.poll(0.2)
        nreg = sum(1 for t in self.tunnels if t.registered)
        line = "registered=%d" % nreg
        print(line, flush=True)
        if ready_file:
            with open(ready_file, "w") as f:
                f.write(line + "\n")
        while time.monotonic() < end:
            self.poll(0.5)
            self.timers(time.monotonic())
        alive = sum(1 for t in self.tunnels if t.registered and not t.dead)
        print("alive=%d lost=%d requests=%d compressed_in=%d compressed_out=%d" %
              (alive, nreg - alive, self.requests, self.compressed_in, self.compressed_out), flush=True)
        return 0 if alive == n else 1

    def poll(self, timeout):
        for key, _ in self.sel.select(timeout):
            self.on_readable(key.data)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) < 5:
        print(__doc__)
        return 2
    ready = None
    if "--ready-file" in sys.argv:
        ready = sys.argv[sys.argv.index("--ready-file") + 1]
        args = [a for a in args if a != ready]
    port, token, prefix, n, seconds = int(args[0]), args[1], args[2], int(args[3]), float(args[4])
    r = Runner(port, token, "--no-zstd" not in sys.argv, "--answer-big" in sys.argv)
    return r.run(prefix, n, seconds, ready)


if __name__ == "__main__":
    sys.exit(main())
