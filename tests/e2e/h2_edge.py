#!/usr/bin/python3
"""tunnelmux e2e fixture: scripted HTTP/2 uploads (python3-h2) against the server's streamed request
bodies (src/server/h2_body.c, docs/ARCHITECTURE.md §8), over h2c with prior knowledge.

Usage: h2_edge.py --port PORT --authority HOST:PORT CASE
CASE:
  padding     a 1 MiB body in padded DATA frames of odd sizes, the first bytes written one at a time
  trailers    a body ending in a trailer block with CONTINUATION frames, then a second request whose
              headers use the HPACK entries the trailers added (the table must still agree)
  rst         RST_STREAM(CANCEL) in the middle of a body, then a normal upload on the same connection
  early       a body to an unknown name: the 404 arrives, then RST_STREAM(NO_ERROR), and the
              connection serves the next request
  window      the server's SETTINGS: INITIAL_WINDOW_SIZE is STREAM_WINDOW (argument --window)
  hostage     one upload to a local service that never reads takes its stream window and stops; an
              8 MiB upload beside it on the same connection completes (the connection window is shared)
  stall       the user stops sending mid-body: READ_TIMEOUT answers 504 and RST_STREAM(NO_ERROR) follows
  overrun     DATA far beyond the stream window to a local service that never reads: the server ends
              the connection (GOAWAY FLOW_CONTROL_ERROR or a close)
Prints "ok ..." / "FAIL ..." lines; exits 1 when any check failed. Every wait is bounded.
"""
import argparse
import hashlib
import json
import random
import select
import socket
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
from hyperframe.frame import DataFrame

FAILED = 0


def check(cond, what):
    global FAILED
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILED += 1


class Client:
    def __init__(self, port, authority, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setblocking(False)
        self.authority = authority
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.events = []
        self.deadline = time.time() + timeout
        self.settings_seen = []
        self.closed = False
        self.flush()

    def flush(self, chunk=None):
        """Sends what h2 queued, reading (and answering) what the server sends meanwhile: a client
        that only writes can deadlock with a server whose writes to it are blocked."""
        for _ in range(1000):
            data = self.conn.data_to_send()
            if not data:
                return
            off = 0
            while off < len(data):
                if time.time() > self.deadline:
                    raise TimeoutError("send")
                r, w, _ = select.select([self.sock], [self.sock], [], 1.0)
                if r and not self._read_once():
                    raise ConnectionError("closed while sending")
                if w:
                    off += self.sock.send(data[off:off + (chunk or 65536)])

    def _read_once(self):
        """One recv of what is there; feeds h2. False at EOF."""
        try:
            d = self.sock.recv(1 << 20)
        except (BlockingIOError, socket.timeout):
            return True
        except ConnectionError:
            self.closed = True
            return False
        if not d:
            self.closed = True
            return False
        for ev in self.conn.receive_data(d):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings_seen.append({k: v.new_value for k, v in ev.changed_settings.items()})
            self.events.append(ev)
        return True

    def pump(self, wait=0.2):
        """Reads what arrived (up to |wait| s), feeds h2, answers (ACKs, pings). False at EOF."""
        r, _, _ = select.select([self.sock], [], [], wait)
        if r and not self._read_once():
            return False
        self.flush()
        return True

    def headers(self, path, method="PUT", extra=(), end_stream=False):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", self.authority), (":path", path)] + list(extra)
        self.conn.send_headers(sid, hdrs, end_stream=end_stream)
        self.flush()
        return sid

    def send_body(self, sid, body, frame=16384, pad=0, end=True, chunk=None):
        """Sends |body| under flow control (waiting for WINDOW_UPDATEs), padded when |pad|."""
        off = 0
        while off < len(body):
            win = self.conn.local_flow_control_window(sid)
            room = min(win - pad - 1 if pad else win, frame - (pad + 1 if pad else 0))
            if room <= 0:
                if time.time() > self.deadline or not self.pump(0.5):
                    raise TimeoutError("no window")
                continue
            n = min(room, len(body) - off)
            self.conn.send_data(sid, body[off:off + n], end_stream=end and off + n == len(body), pad_length=pad or None)
            self.flush(chunk)
            off += n
        if end and not body:
            self.conn.end_stream(sid)
            self.flush()

    def response(self, sid, wait=20):
        """(status, body bytes, reset error code or None) of stream |sid|."""
        status, body, reset, ended = None, b"", None, False
        deadline = time.time() + wait
        i = 0
        while time.time() < deadline:
            while i < len(self.events):
                ev = self.events[i]
                i += 1
                if getattr(ev, "stream_id", None) != sid:
                    continue
                if isinstance(ev, h2.events.ResponseReceived):
                    status = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded):
                    ended = True
                elif isinstance(ev, h2.events.StreamReset):
                    reset = ev.error_code
            if (ended and status is not None) or reset is not None:
                # a reset may follow the end (early answers): give it a moment
                if reset is None:
                    t_end = time.time() + 0.5
                    while time.time() < t_end and reset is None:
                        self.pump(0.1)
                        for ev in self.events[i:]:
                            if isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                                reset = ev.error_code
                        i = len(self.events)
                return status, body, reset
            if not self.pump(0.2):
                break
            self.flush()
        return status, body, reset


def body_of(n, seed):
    h = hashlib.sha256(seed.encode()).digest()
    out = bytearray()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h * 64
    return bytes(out[:n])


def echo_ok(label, status, body, data):
    check(status == 200, "%s: status %s" % (label, status))
    try:
        j = json.loads(body)
    except ValueError:
        check(False, "%s: echo JSON" % label)
        return None
    check(j.get("body_sha256") == hashlib.sha256(data).hexdigest(), "%s: body sha256 at the local service" % label)
    return j


def case_padding(a):
    c = Client(a.port, a.authority)
    data = body_of(1 << 20, "padding")
    sid = c.headers("/echo", extra=[("content-length", str(len(data)))])
    c.pump(0.2)
    # the first 200 bytes one frame each, written one byte at a time, then padded odd-sized frames
    c.send_body(sid, data[:200], frame=1, end=False, chunk=1)
    c.send_body(sid, data[200:], frame=4093, pad=17)
    status, body, reset = c.response(sid)
    echo_ok("padded odd-sized DATA", status, body, data)
    check(reset is None, "no reset after a complete upload")


def case_tiny(a):
    """Data integrity under small reads and partial tunnel writes: two bodies interleaved on one
    connection in DATA frames of random sizes (some padded), written to the socket in random pieces
    of 1..700 bytes (the server's reads split frames anywhere); one local service reads at 1 MiB/s,
    so the tunnel credit and the stream window run out mid-frame. Both digests and lengths must
    match what was sent."""
    c = Client(a.port, a.authority, timeout=60)
    rnd = random.Random(18)
    streams = {}
    for name, path, n, cl in (("slow", "/echo?read_rate=1048576", 3 << 20, False), ("fast", "/echo", 2 << 20, True)):
        data = body_of(n, "tiny-" + name)
        sid = c.headers(path, extra=[("content-length", str(n))] if cl else [])
        streams[sid] = [name, data, 0]
    while any(off < len(data) for _, data, off in streams.values()):
        if time.time() > c.deadline:
            raise TimeoutError("tiny: upload not done")
        progressed = False
        for sid, st in streams.items():
            name, data, off = st
            if off >= len(data):
                continue
            pad = rnd.choice([0, 0, 0, 1, 17, 255])
            win = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
            room = win - (pad + 1 if pad else 0)
            if room <= 0:
                continue
            n = min(room, rnd.choice([1, 7, 100, 1000, 4093, 16384]), len(data) - off)
            c.conn.send_data(sid, data[off:off + n], end_stream=off + n == len(data), pad_length=pad or None)
            c.flush(rnd.randint(1, 700))
            st[2] = off + n
            progressed = True
        if not progressed and not c.pump(0.2):
            raise ConnectionError("tiny: closed while sending")
    for sid, (name, data, _) in streams.items():
        status, body, reset = c.response(sid, wait=30)
        j = echo_ok("%s upload in tiny writes" % name, status, body, data)
        check(j is not None and j.get("body_length") == len(data),
              "%s: length at the local service %s == %d" % (name, j and j.get("body_length"), len(data)))


def case_trailers(a):
    c = Client(a.port, a.authority)
    data = body_of(300000, "trailers")
    sid = c.headers("/echo", extra=[("x-before", "1")])
    c.send_body(sid, data, end=False)
    big = body_of(20000, "trailer").hex()  # 40000 chars, ~22 KB Huffman-coded: HEADERS + CONTINUATION
    c.conn.send_headers(sid, [("x-trailer-one", big), ("x-trailer-two", "second")], end_stream=True)
    c.flush()
    status, body, reset = c.response(sid)
    j = echo_ok("body with trailers (CONTINUATION)", status, body, data)
    if j is not None:
        names = [h[0].lower() for h in j["headers"]]
        check("x-trailer-two" not in names, "trailers are not forwarded as headers")
    # the encoder indexed the trailer fields: reusing them only decodes if the server's table agrees
    sid2 = c.headers("/echo", method="GET", extra=[("x-trailer-two", "second"), ("x-trailer-one", big[:100])], end_stream=True)
    status, body, reset = c.response(sid2)
    check(status == 200, "the next request decodes with the same HPACK table (status %s)" % status)
    if status == 200:
        names = dict((h[0].lower(), h[1]) for h in json.loads(body)["headers"])
        check(names.get("x-trailer-two") == "second", "its indexed header arrived intact")


def case_rst(a):
    c = Client(a.port, a.authority)
    data = body_of(2 << 20, "rst")
    sid = c.headers("/echo", extra=[("content-length", str(len(data)))])
    c.send_body(sid, data[: 512 * 1024], end=False)
    c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    for _ in range(5):
        c.pump(0.1)
    data2 = body_of(700000, "after-rst")
    sid2 = c.headers("/echo")
    c.send_body(sid2, data2)
    status, body, reset = c.response(sid2)
    echo_ok("upload after a reset stream on the same connection", status, body, data2)


def case_early(a):
    c = Client(a.port, a.authority.replace(a.authority.split(".")[0], "nosuchname", 1))
    data = body_of(4 << 20, "early")
    sid = c.headers("/x", extra=[("content-length", str(len(data)))])
    try:
        c.send_body(sid, data)
    except Exception:
        pass  # the stream may be reset while we send: that is the point
    status, body, reset = c.response(sid)
    check(status == 404, "early answer: 404 for an unknown name while the body is sent (%s)" % status)
    check(reset == 0, "then RST_STREAM(NO_ERROR) stops the upload (%s)" % reset)
    c.authority = a.authority
    sid2 = c.headers("/echo", method="GET", end_stream=True)
    status, body, reset = c.response(sid2)
    check(status == 200, "the connection serves the next request (%s)" % status)


def case_hostage(a):
    c = Client(a.port, a.sink_authority)
    sid = c.headers("/sink")
    blob = body_of(1 << 20, "hostage")
    sent, blocked_since, t_end = 0, None, time.time() + 10
    while time.time() < t_end:  # what the windows allow (the sink never reads), until blocked for 1 s
        win = min(c.conn.local_flow_control_window(sid), 16384)
        if win > 0:
            c.conn.send_data(sid, blob[:win])
            c.flush()
            sent += win
            blocked_since = None
            continue
        blocked_since = blocked_since or time.time()
        if time.time() - blocked_since > 1:
            break
        c.pump(0.05)
    held = c.conn.local_flow_control_window(sid)
    print("the stalled upload got %d bytes out before blocking" % sent, flush=True)
    c.authority = a.authority
    data = body_of(8 << 20, "beside")
    sid2 = c.headers("/echo")
    t0 = time.time()
    c.send_body(sid2, data)
    status, body, reset = c.response(sid2)
    echo_ok("8 MiB upload beside a stalled one on the same connection (%.1f s)" % (time.time() - t0), status, body, data)
    check(held < 16384, "the stalled stream is blocked on its own window (%d left)" % held)


def case_stall(a):
    c = Client(a.port, a.authority, timeout=40)
    data = body_of(100000, "stall")
    sid = c.headers("/echo", extra=[("content-length", str(len(data) * 3))])
    c.send_body(sid, data, end=False)
    t0 = time.time()
    status, body, reset = c.response(sid, wait=35)
    print("answered after %.1f s" % (time.time() - t0), flush=True)
    check(status == 504, "a body that stops coming ends in 504 after READ_TIMEOUT (%s)" % status)
    check(reset == 0, "then RST_STREAM(NO_ERROR) (%s)" % reset)


def case_window(a):
    c = Client(a.port, a.authority)
    t = time.time() + 5
    while time.time() < t and len(c.settings_seen) < 2:
        c.pump(0.2)
    wins = [s.get(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE) for s in c.settings_seen]
    check(a.window in wins, "SETTINGS_INITIAL_WINDOW_SIZE %d announced (saw %s)" % (a.window, wins))
    check(c.conn.remote_settings.initial_window_size == a.window, "and in effect (%d)" % c.conn.remote_settings.initial_window_size)


def case_overrun(a):
    c = Client(a.port, a.authority)
    t = time.time() + 5
    while time.time() < t and len(c.settings_seen) < 2:
        c.pump(0.2)
    sid = c.headers("/sink")
    sent = 0
    goaway = None
    frame = DataFrame(sid)
    frame.data = b"x" * 16384
    raw = frame.serialize()
    deadline = time.time() + 20
    c.sock.settimeout(5)  # blocking writes from here on (the point is to ignore the server)
    try:
        while sent < (48 << 20) and time.time() < deadline:  # far beyond any window the server can grant
            c.sock.sendall(raw)
            sent += 16384
    except (ConnectionError, socket.timeout):
        pass
    t = time.time() + 5
    while time.time() < t and not c.closed:
        c.sock.settimeout(0.5)
        try:
            d = c.sock.recv(1 << 16)
        except socket.timeout:
            continue
        except ConnectionError:
            break
        if not d:
            break
        try:
            for ev in c.conn.receive_data(d):
                if isinstance(ev, h2.events.ConnectionTerminated):
                    goaway = ev.error_code
        except Exception:
            pass
    print("sent %d bytes; GOAWAY %s" % (sent, goaway), flush=True)
    check(sent < (48 << 20) or goaway is not None, "the server stopped taking DATA beyond the window")
    check(goaway in (None, h2.errors.ErrorCodes.FLOW_CONTROL_ERROR), "GOAWAY, if read, is FLOW_CONTROL_ERROR (%s)" % goaway)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--authority", required=True)
    ap.add_argument("--window", type=int, default=1 << 20)
    ap.add_argument("--sink-authority", default="")
    ap.add_argument("case")
    a = ap.parse_args()
    {"padding": case_padding, "trailers": case_trailers, "rst": case_rst, "early": case_early, "window": case_window, "hostage": case_hostage, "stall": case_stall,
     "overrun": case_overrun, "tiny": case_tiny}[a.case](a)
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
