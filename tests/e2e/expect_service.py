#!/usr/bin/env python3
"""Local service for tests/e2e/test_expect_continue.sh: three ways of answering Expect: 100-continue.

  /deny     answers 401 as soon as the head is in, without reading the body (Connection: close)
  /continue sends "100 Continue" when the head carries Expect, then reads the body and answers 200
  /plain    never sends 100 (python3 -m http.server style): reads the body, answers 200

Every answer to a body is JSON: {"path", "expect", "len", "sha256", "head_at", "first_byte_at"}
(times: time.time() of the head and of the first body byte at the service). One JSON line per
request also goes to the events file (argv[2]), including /deny with the body bytes that reached it
within 0.5 s after the 401 ("after401"). Usage: expect_service.py PORTFILE EVENTFILE
"""
import hashlib
import json
import os
import socket
import sys
import threading
import time

port_file, event_file = sys.argv[1], sys.argv[2]
lock = threading.Lock()


def event(d):
    with lock:
        with open(event_file, "a") as f:
            f.write(json.dumps(d) + "\n")


def read_head(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None, b""
        buf += d
        if len(buf) > 1 << 20:
            return None, b""
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs.setdefault(k.strip().lower(), v.strip())
    return (method, path, hdrs), rest


class Body:
    """Reads a Content-Length or chunked body, feeding a sink."""

    def __init__(self, c, rest, hdrs):
        self.c, self.buf = c, rest
        self.first_byte_at = None
        self.chunked = "chunked" in hdrs.get("transfer-encoding", "").lower()
        self.left = int(hdrs.get("content-length", "0")) if not self.chunked else None

    def _more(self):
        d = self.c.recv(1 << 20)
        if not d:
            raise EOFError("connection closed inside the body")
        self.buf += d

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def read_all(self, sink):
        if not self.chunked:
            while self.left > 0:
                if not self.buf:
                    self._more()
                if self.first_byte_at is None:
                    self.first_byte_at = time.time()
                piece = self.buf[: self.left]
                self.buf = self.buf[len(piece):]
                self.left -= len(piece)
                sink(piece)
            return
        while True:
            size = int(self._line().split(b";")[0], 16)
            if self.first_byte_at is None:
                self.first_byte_at = time.time()
            if size == 0:
                while self._line() != b"":
                    pass
                return
            sink(self._take(size))
            self._take(2)


def answer(c, status, body, ctype="application/json"):
    c.sendall(
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (status, b"OK" if status == 200 else b"Unauthorized", ctype.encode(), len(body))
        + body
    )


def serve(c):
    try:
        req, rest = read_head(c)
        if req is None:
            return
        method, path, hdrs = req
        head_at = time.time()
        expect = hdrs.get("expect", "")
        if path.startswith("/deny"):
            answer(c, 401, b"no entry\n", "text/plain")
            c.settimeout(0.5)
            got = len(rest)
            try:
                while True:
                    d = c.recv(1 << 20)
                    if not d:
                        break
                    got += len(d)
            except (socket.timeout, OSError):
                pass
            event({"path": path, "expect": expect, "after401": got})
            return
        if path.startswith("/continue") and expect.lower() == "100-continue":
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        h = hashlib.sha256()
        n = [0]

        def sink(b):
            h.update(b)
            n[0] += len(b)

        body = Body(c, rest, hdrs)
        body.read_all(sink)
        d = {
            "path": path,
            "expect": expect,
            "len": n[0],
            "sha256": h.hexdigest(),
            "head_at": head_at,
            "first_byte_at": body.first_byte_at or 0,
        }
        event(d)
        answer(c, 200, json.dumps(d).encode())
    except (OSError, EOFError, ValueError) as e:
        event({"error": str(e)})
    finally:
        try:
            c.shutdown(socket.SHUT_WR)
            c.settimeout(1)
            while c.recv(65536):
                pass
        except OSError:
            pass
        c.close()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(64)
with open(port_file + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
os.rename(port_file + ".tmp", port_file)
while True:
    conn, _ = ls.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
