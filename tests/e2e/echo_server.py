#!/usr/bin/env python3
"""tunnelmux e2e fixture: a threaded HTTP/1.1 echo service (python3 stdlib only).

Usage: echo_server.py [--host 127.0.0.1] [--port 0] [--port-file FILE] [--name NAME]

Any method (including unknown tokens) on any path not listed below answers 200 with JSON:
  {"server": NAME, "method": ..., "path": ..., "version": ...,
   "headers": [[name, value], ...]   (in order, as received, duplicates kept),
   "body_length": N, "body_sha256": "hex",
   "head_at": T, "body_done_at": T}   (time.time() when the head was parsed / the body fully read)
The request body (Content-Length or chunked) is hashed while streaming, so uploads of any size work.

Special paths (method-independent; the request body is consumed first):
  /status/N[?reason=TEXT]  status N with that reason phrase; no body for 1xx/204/304 and HEAD
  /chunked                 Transfer-Encoding: chunked body "chunk-0\n" ... "chunk-9\n"
  /nolength                no Content-Length, Connection: close, body then close
  /bytes/N[?chunked=1]     N deterministic bytes (gen_bytes below), streamed in 64 KiB writes
  /slow?ms=N               sleeps N ms (default 2000) then answers the echo JSON; ms=A-B sleeps a
                           random time between A and B ms (concurrent clients do not fall into step)
  /set-cookies             two Set-Cookie headers
  /many-headers?n=N        N headers X-H0: 0 ... X-H{N-1}: N-1 (plus Content-Type, Content-Length, Server, Date)
  /abort[?chunked=1]       head announcing 100000 bytes (or chunked), 1000 bytes sent, then the socket closes
  /empty                   200 with Content-Length: 0
Any path with ?read_rate=N reads the request body at N bytes/s (4 KiB reads): a slow local service.
The port actually bound is written to --port-file (when given) once the socket listens.
"""
import argparse
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def gen_bytes(n, offset=0):
    """Deterministic content: byte i is ((i & 0xffff) * 131 + (i >> 16)) & 0xff (cheap for any size)."""
    out = bytearray()
    i = offset
    end = offset + n
    while i < end:
        block = i >> 16
        start = i & 0xFFFF
        take = min(65536 - start, end - i)
        base = _block(block)
        out += base[start:start + take]
        i += take
    return bytes(out)


_BASE = bytes((j * 131) & 0xFF for j in range(65536))


def _block(b):
    """64 KiB block number b: the base pattern with b added to every byte (mod 256)."""
    return _BASE.translate(bytes((k + b) & 0xFF for k in range(256)))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tm-echo/1"

    def version_string(self):
        return self.server_version

    def __getattr__(self, name):
        # every method token is accepted: do_GET, do_FOO, ...
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def log_message(self, fmt, *args):
        sys.stderr.write("echo[%s] %s - %s\n" % (self.server.name, self.address_string(), fmt % args))

    # ------------------------------------------------------------ request body
    def read_body(self, rate=0):
        h = hashlib.sha256()
        total = 0
        step = 4096 if rate > 0 else 1 << 16
        t0 = time.time()

        def pace():
            if rate > 0:
                ahead = total / rate - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        te = ",".join(self.headers.get_all("Transfer-Encoding") or []).lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("EOF in chunk size")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                left = size
                while left > 0:
                    data = self.rfile.read(min(left, step))
                    if not data:
                        raise ConnectionError("EOF in chunk")
                    h.update(data)
                    total += len(data)
                    left -= len(data)
                    pace()
                self.rfile.readline(3)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                data = self.rfile.read(min(left, step))
                if not data:
                    raise ConnectionError("EOF in body")
                h.update(data)
                total += len(data)
                left -= len(data)
                pace()
        return total, h.hexdigest()

    # ------------------------------------------------------------ responses
    def send_plain(self, status, body, reason=None, extra=()):
        self.send_response(status, reason)
        for k, v in extra:
            self.send_header(k, v)
        no_body = self.command == "HEAD" or status < 200 or status in (204, 304)
        if status not in (204, 304) and status >= 200:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not no_body:
            self.wfile.write(body)

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        path = url.path
        head_at = time.time()
        try:
            length, digest = self.read_body(int(q.get("read_rate", ["0"])[0]))
        except (ConnectionError, ValueError) as e:
            self.log_message("bad body: %s", e)
            self.close_connection = True
            return

        if path.startswith("/status/"):
            code = int(path[len("/status/"):] or "200")
            reason = q.get("reason", [None])[0]
            self.send_plain(code, ("status %d\n" % code).encode(), reason)
            return
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(10):
                    c = ("chunk-%d\n" % i).encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/nolength":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(5):
                    self.wfile.write(("line %d of a close-delimited body\n" % i).encode())
                    self.wfile.flush()
            self.close_connection = True
            return
        if path.startswith("/bytes/"):
            n = int(path[len("/bytes/"):])
            chunked = q.get("chunked", ["0"])[0] == "1"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command == "HEAD":
                return
            off = 0
            while off < n:
                data = gen_bytes(min(65536, n - off), off)
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
                off += len(data)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/set-cookies":
            self.send_plain(200, b"cookies\n", extra=(("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; HttpOnly")))
            return
        if path == "/many-headers":
            n = int(q.get("n", ["10"])[0])
            self.send_plain(200, b"many\n", extra=tuple(("X-H%d" % i, str(i)) for i in range(n)))
            return
        if path == "/abort":
            chunked = q.get("chunked", ["0"])[0] == "1"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", "100000")
            self.end_headers()
            data = gen_bytes(1000)
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
            self.wfile.flush()
            time.sleep(0.2)
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True
            return
        if path == "/empty":
            self.send_plain(200, b"")
            return
        if path == "/slow":
            lo, _, hi = q.get("ms", ["2000"])[0].partition("-")
            time.sleep(random.uniform(int(lo), int(hi or lo)) / 1000.0)

        doc = {
            "server": self.server.name,
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_length": length,
            "body_sha256": digest,
            "head_at": head_at,
            "body_done_at": time.time(),
        }
        body = (json.dumps(doc) + "\n").encode()
        self.send_plain(200, body, extra=(("Content-Type", "application/json"),))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--name", default="echo")
    a = ap.parse_args()
    srv = Server((a.host, a.port), Handler)
    srv.name = a.name
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    sys.stderr.write("echo[%s] listening on %s:%d\n" % (a.name, a.host, port))
    sys.stderr.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
