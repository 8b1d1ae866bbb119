#!/usr/bin/python3
"""Attack fixtures for tests/security/*.sh (run with Debian's /usr/bin/python3: python3-h2).

Every subcommand is bounded in time and prints one result line (key=value ...) on stdout.

  evil PORT NAME TOKEN MODE [ZSTFILE]   hostile client daemon over /_tunnel: HELLO, then MODE =
        garbage | badver | unknown | bomb | bigmsg | wlog | none; prints refuse/welcome, GOAWAY code,
        close code, reset=1 when the server reset the connection (ECONNRESET) instead of closing it.
        MODE-keep (bigmsg-keep, wlog-keep): the attack, then 512 KiB more sent while reading, as a
        peer does that has data in flight (the server must still deliver GOAWAY and close: lingering
        close, PROTOCOL.md §8). hello2 sends a version-2 HELLO (REFUSE UNSUPPORTED_VERSION). hold:
        upgrade, print "upgraded", send the HELLO only after a line on stdin.
  peer PORT NAME TOKEN AUTHORITY SCENARIO   a minimal client daemon (no compression) that registers,
        makes a public request to AUTHORITY itself and answers the request head as SCENARIO says;
        prints what the public user got and which frames the server sent on that stream after the
        answer (1 s): upgrade-refused | info | badheader | reason | headers (docs/PROTOCOL.md §9)
  raw PORT HOSTNAME FILE                send FILE's bytes (with @HOST@ replaced) on one h1 connection,
                                        print the status line of every response until EOF/2 s
  flood PORT AUTHORITY N                h2c HEADERS+RST_STREAM x N (Rapid Reset); prints how long until
                                        the server closed the connection
  h2req PORT AUTHORITY PATH HDRS_JSON   one h2c request with raw (unvalidated) headers; prints status or reset
  hpack PORT AUTHORITY COUNT SIZE       h2c request whose header block references one SIZE-byte
                                        dynamic-table entry COUNT times (expansion attack)
  rate PORT AUTHORITY RPS SECONDS CONNS h1 keep-alive GETs paced to RPS total; prints counts by status
  h2burst PORT AUTHORITY N              N concurrent streams on one h2c connection; counts by status
  slow PORT AUTHORITY N PATH            N connections request PATH and never read; holds them open
                                        until stdin closes
"""
import json
import os
import select
import socket
import struct
import sys
import threading
import time

# ------------------------------------------------------------------ protobuf (hand-encoded, tiny)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((num << 3) | 2) + varint(len(b)) + b


def read_varint(buf, i):
    n = shift = 0
    while i < len(buf):
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i
    raise ValueError("truncated varint")


def parse_fields(buf):
    """protobuf message -> {field number: [values]} (varints as int, length-delimited as bytes)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            ln, i = read_varint(buf, i)
            v = bytes(buf[i:i + ln])
            i += ln
        elif wt == 1:
            v = buf[i:i + 8]
            i += 8
        elif wt == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def envelope(frames, header=0x10):
    body = b"".join(varint(len(f)) + f for f in frames)
    return bytes([header]) + body


# ------------------------------------------------------------------ WebSocket (client side)


def ws_frame(payload, opcode=2):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        hdr = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload)) if n < 65536 else _mask_big(payload, mask)
    return hdr + mask + masked


def _mask_big(payload, mask):
    # xor with the repeated mask via big-integer arithmetic (fast for large payloads)
    rep = (mask * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(rep, "big")).to_bytes(len(payload), "big")


class WsReader:
    def __init__(self, sock):
        self.s, self.buf = sock, bytearray()
        self.reset = False  # the peer reset the connection (ECONNRESET), not a FIN

    def _fill(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            return False
        r, _, _ = select.select([self.s], [], [], left)
        if not r:
            return False
        try:
            d = self.s.recv(1 << 16)
        except ConnectionResetError:
            self.reset = True
            d = b""
        except OSError:
            d = b""
        if not d:
            raise EOFError
        self.buf += d
        return True

    def frame(self, deadline):
        """-> (opcode, payload) or None on timeout; raises EOFError."""
        while True:
            b = self.buf
            if len(b) >= 2:
                n, off = b[1] & 0x7F, 2
                if n == 126 and len(b) >= 4:
                    n, off = struct.unpack(">H", b[2:4])[0], 4
                elif n == 127 and len(b) >= 10:
                    n, off = struct.unpack(">Q", b[2:10])[0], 10
                if (b[1] & 0x7F) < 126 or off > 2:
                    if len(b) >= off + n:
                        op, payload = b[0] & 0x0F, bytes(b[off:off + n])
                        del b[:off + n]
                        return op, payload
            if not self._fill(deadline):
                return None


def ws_connect(port, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=5)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    s.sendall(("GET /_tunnel HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, port, key)).encode())
    head = b""
    deadline = time.time() + 5
    while b"\r\n\r\n" not in head and time.time() < deadline:
        d = s.recv(4096)
        if not d:
            break
        head += d
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    rest = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
    return s, status, rest, head


def cmd_evil(port, name, token, mode, zst=None):
    s, status, rest, head = ws_connect(int(port))
    if " 101 " not in status + " ":
        retry = ""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"retry-after:"):
                retry = line.split(b":", 1)[1].strip().decode()
        print("upgrade=%s retry_after=%s" % (status.replace(" ", "_"), retry or "-"))
        return 0
    if mode == "hold":  # upgraded now, HELLO only when told (a line on stdin): a login racing a lockout
        print("upgraded", flush=True)
        sys.stdin.readline()
        mode = "none"
    rd = WsReader(s)
    rd.buf += rest
    keep = mode.endswith("-keep")
    mode = mode[:-5] if keep else mode
    hello = field_varint(1, 2 if mode == "hello2" else 1) + field_bytes(2, name) + (field_bytes(3, token) if token else b"") + \
        field_varint(4, 1)
    s.sendall(ws_frame(envelope([field_bytes(1, hello)])))
    result = {"welcome": 0, "refuse": "-", "retry_after_ms": "-", "goaway": "-", "close": "-", "eof_after_ms": "-", "reset": 0}
    deadline = time.time() + 5
    sent_attack = False
    t_attack = time.time()
    sender = None
    stop = threading.Event()
    try:
        while time.time() < deadline:
            fr = rd.frame(deadline)
            if fr is None:
                break
            op, payload = fr
            if op == 8:
                result["close"] = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                if sender is not None:
                    stop.set()
                    sender.join()
                try:
                    if mode == "bigmsg" and sent_attack:
                        s.shutdown(socket.SHUT_WR)  # inside the oversized frame: no close frame can follow, EOF says it
                    else:
                        s.sendall(ws_frame(payload[:2], 8))
                except (ConnectionResetError, OSError) as e:
                    if isinstance(e, ConnectionResetError) or e.errno == 107:  # ENOTCONN: reset meanwhile
                        result["reset"] = 1
                    raise EOFError()
                except BrokenPipeError:
                    # the server closed with our unread attack bytes in its queue (RST): that is the end
                    raise EOFError()
                continue
            if op != 2 or not payload:
                continue
            body = payload[1:]
            if payload[0] & 1:
                continue  # compressed: not needed by these checks
            i = 0
            while i < len(body):
                ln, i = read_varint(body, i)
                f = parse_fields(body[i:i + ln])
                i += ln
                if 2 in f:
                    result["welcome"] = 1
                if 3 in f:
                    r = parse_fields(f[3][0])
                    result["refuse"] = r.get(1, ["?"])[0]
                    result["retry_after_ms"] = r.get(3, [0])[0]
                if 10 in f:
                    g = parse_fields(f[10][0])
                    result["goaway"] = g.get(2, [0])[0]
            if result["welcome"] and not sent_attack:
                sent_attack = True
                t_attack = time.time()
                try:
                    # -keep: data already in flight behind the attack (sent in the same write)
                    s.sendall(attack(mode, zst) + (keep_bytes(mode, 256 << 10) if keep else b""))
                except ConnectionResetError:
                    result["reset"] = 1
                except BrokenPipeError:
                    pass  # refused while we were still sending: the replies (GOAWAY, close) are read next
                if keep:
                    sender = threading.Thread(target=keep_sending, args=(s, mode, stop, result))
                    sender.start()
    except EOFError:
        result["eof_after_ms"] = int((time.time() - t_attack) * 1000)
    stop.set()
    if sender is not None:
        sender.join()
    if rd.reset:
        result["reset"] = 1
    print(" ".join("%s=%s" % kv for kv in result.items()))
    return 0


def keep_bytes(mode, n):
    """|n| bytes that follow the attack: more of the oversized frame's payload (bigmsg), or whole
    further messages of 16 KiB (anything else; WebSocket framing stays intact)."""
    if mode == "bigmsg":
        return b"\0" * n
    return b"".join(ws_frame(bytes([0x10]) + b"\0" * ((16 << 10) - 1)) for _ in range(max(1, n // (16 << 10))))


def keep_sending(s, mode, stop, result, total=256 << 10, piece=16 << 10):
    """What a peer with data in flight sends after its fatal message: the rest of the oversized
    frame's payload (bigmsg) or whole further messages (anything else), paced, until |stop|."""
    sent = 0
    while sent < total and not stop.is_set():
        chunk = keep_bytes(mode, piece)
        try:
            s.sendall(chunk)
        except ConnectionResetError:
            result["reset"] = 1
            return
        except OSError:
            return
        sent += piece
        time.sleep(0)  # no pause: data is always in flight when the server fails us


def attack(mode, zst):
    if mode == "garbage":  # a record that is not a valid Frame
        return ws_frame(bytes([0x10]) + varint(5) + b"\xff\xff\xff\xff\xff")
    if mode == "badver":
        return ws_frame(bytes([0x20]) + b"")
    if mode == "unknown":  # DATA for a stream the server never opened
        data = field_varint(1, 99) + field_bytes(3, b"x")
        return ws_frame(envelope([field_bytes(5, data)]))
    if mode == "truncated":  # record length past the end
        return ws_frame(bytes([0x10]) + varint(100) + b"\x0a\x00")
    if mode == "bomb":  # compressed message expanding far past MAX_MESSAGE_SIZE
        with open(zst, "rb") as f:
            return ws_frame(bytes([0x13]) + f.read())
    if mode == "wlog":  # a compressed message whose zstd frame announces a window above 2^20
        with open(zst, "rb") as f:
            return ws_frame(bytes([0x13]) + f.read())
    if mode == "bigmsg":  # one uncompressed WebSocket message over MAX_MESSAGE_SIZE
        n = int(os.environ.get("BIGMSG", str(11 << 20)))
        hdr = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", n) + b"\0\0\0\0"
        return hdr + b"\x10" + b"\0" * 65536  # the server must refuse on the header, before the payload
    return b""


# ------------------------------------------------------------------ a scripted client daemon


def open_frame(sid, status=0, reason=b"", headers=(), flags=0):
    body = field_varint(1, sid) + (field_varint(2, flags) if flags else b"") + field_varint(7, status)
    body += field_bytes(8, reason) if reason else b""
    for n, v in headers:
        body += field_bytes(9, field_bytes(1, n) + field_bytes(2, v))
    return field_bytes(4, body)


def data_frame(sid, payload=b"", fin=False):
    return field_bytes(5, field_varint(1, sid) + (field_varint(2, 1) if fin else b"") + field_bytes(3, payload))


def close_frame(sid, code, reason=b""):
    return field_bytes(7, field_varint(1, sid) + field_varint(2, code) + field_bytes(3, reason))


PEER_REQUESTS = {
    "upgrade-refused": "GET /ws HTTP/1.1\r\nHost: {a}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "headers": "GET /h HTTP/1.1\r\nHost: {a}\r\nAuthorization: Basic dXNlcjpwdw==\r\nForward-Authorization: Bearer inner\r\n"
               "X-Forwarded-Proto: gopher\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-For: 198.51.100.1\r\n"
               "Forwarded: for=198.51.100.1\r\n\r\n",
}


def peer_answer(scenario, sid):
    """The frames the scripted client answers request |sid| with."""
    if scenario == "upgrade-refused":
        return [open_frame(sid, 403, b"Forbidden", [(b"content-length", b"5")]), data_frame(sid, b"nope\n", True)]
    if scenario == "info":  # 103 Early Hints, then the final head
        return [open_frame(sid, 103, b"Early Hints", [(b"link", b"</s.css>; rel=preload")]),
                open_frame(sid, 200, b"OK", [(b"content-length", b"2")]), data_frame(sid, b"ok", True)]
    if scenario == "badheader":  # a value no HTTP/1.1 serialisation may carry
        return [open_frame(sid, 200, b"OK", [(b"x-bad", b"a\r\nInjected: 1")], flags=1)]
    if scenario == "reason":  # a CLOSE whose reason names an internal address
        return [close_frame(sid, 9, b"dial 10.9.8.7:8080: connection refused")]
    return [open_frame(sid, 204, b"No Content", flags=1)]


def cmd_peer(port, name, token, authority, scenario):
    s, status, rest, head = ws_connect(int(port))
    if " 101 " not in status + " ":
        print("upgrade=%s" % status.replace(" ", "_"))
        return 0
    rd = WsReader(s)
    rd.buf += rest
    hello = field_varint(1, 1) + field_bytes(2, name) + (field_bytes(3, token) if token else b"")
    s.sendall(ws_frame(envelope([field_bytes(1, hello)])))
    res = {"welcome": 0, "status": "-", "statuses": [], "server_fin": 0, "close": "-", "user_eof": 0, "body": "",
           "headers": {}}
    user, sid, t_answered, got = None, None, None, b""
    deadline = time.time() + 8
    while time.time() < deadline:
        if t_answered is not None and time.time() > t_answered + 1.0:
            break
        if user is not None:  # the public user's side
            r, _, _ = select.select([user], [], [], 0)
            if r:
                try:
                    d = user.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    res["user_eof"] = 1
                    user.close()
                    user = None
                else:
                    got += d
        fr = rd.frame(time.time() + 0.05)
        if fr is None:
            continue
        op, payload = fr
        if op == 8:
            res["close_ws"] = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
            break
        if op != 2 or not payload or payload[0] & 1:
            continue
        body, i = payload[1:], 0
        while i < len(body):
            ln, i = read_varint(body, i)
            f = parse_fields(body[i:i + ln])
            i += ln
            if 2 in f and not res["welcome"]:
                res["welcome"] = 1
                user = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
                req = PEER_REQUESTS.get(scenario, "GET / HTTP/1.1\r\nHost: {a}\r\n\r\n").format(a=authority)
                user.sendall(req.encode())
            if 4 in f and sid is None:
                o = parse_fields(f[4][0])
                sid = o[1][0]
                for h in o.get(9, []):
                    hf = parse_fields(h)
                    res["headers"].setdefault(hf[1][0].decode(), []).append(hf[2][0].decode(errors="replace"))
                s.sendall(ws_frame(envelope(peer_answer(scenario, sid))))
                t_answered = time.time()
            if 5 in f and sid is not None:
                dfr = parse_fields(f[5][0])
                if dfr[1][0] == sid and dfr.get(2, [0])[0]:
                    res["server_fin"] = 1
            if 7 in f and sid is not None:
                c = parse_fields(f[7][0])
                if c[1][0] == sid:
                    res["close"] = c.get(2, [0])[0]
    text = got.decode(errors="replace")
    res["statuses"] = [ln.split(" ")[1] for ln in text.split("\r\n") if ln.startswith("HTTP/1.1 ")]
    res["status"] = res["statuses"][-1] if res["statuses"] else "-"
    res["connection_close"] = int("\r\nconnection: close" in text.lower())
    res["body"] = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else ""
    print(json.dumps(res, sort_keys=True))
    return 0


# ------------------------------------------------------------------ HTTP/1.1 raw


def cmd_raw(port, hostname, path):
    with open(path, "rb") as f:
        data = f.read().replace(b"@HOST@", hostname.encode())
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    s.sendall(data)  # no half-close: the server decides when the connection ends
    got = b""
    deadline = time.time() + 3
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], deadline - time.time())
        if not r:
            break
        try:
            d = s.recv(65536)
        except OSError:
            break
        if not d:
            break
        got += d
    statuses = [ln.split(b" ")[1].decode() for ln in got.split(b"\r\n") if ln.startswith(b"HTTP/1.1 ")]
    print("statuses=%s" % (",".join(statuses) or "none"))
    return 0


# ------------------------------------------------------------------ HTTP/2 helpers (python3-h2)


def h2_open(port):
    import h2.config
    import h2.connection
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False,
                                    validate_inbound_headers=False)
    c = h2.connection.H2Connection(cfg)
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def h2_collect(s, c, deadline, want=None):
    """Reads events until |want| streams ended or the deadline; -> ({sid: status or 'reset:N'}, eof, goaway)."""
    import h2.events
    res, eof, goaway = {}, False, None
    while time.time() < deadline and (want is None or len(res) < want):
        r, _, _ = select.select([s], [], [], max(0, deadline - time.time()))
        if not r:
            break
        try:
            d = s.recv(1 << 20)
        except OSError:
            d = b""
        if not d:
            eof = True
            break
        try:
            evs = c.receive_data(d)
        except Exception as e:  # protocol error from the server side
            res.setdefault("error", repr(e)[:80])
            break
        for ev in evs:
            if isinstance(ev, h2.events.ResponseReceived):
                res[ev.stream_id] = dict(ev.headers).get(b":status", b"?").decode()
            elif isinstance(ev, h2.events.StreamReset):
                res.setdefault(ev.stream_id, "reset:%d" % ev.error_code)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                goaway = ev.error_code
            elif isinstance(ev, h2.events.DataReceived):
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        try:
            s.sendall(c.data_to_send())
        except OSError:
            pass
        if goaway is not None:
            break
    return res, eof, goaway


def cmd_h2req(port, authority, path, hdrs_json):
    s, c = h2_open(port)
    hdrs = [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", authority)]
    hdrs += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(hdrs_json)]
    c.send_headers(1, hdrs, end_stream=True)
    s.sendall(c.data_to_send())
    res, eof, goaway = h2_collect(s, c, time.time() + 5, want=1)
    print("status=%s goaway=%s" % (res.get(1, res.get("error", "none")), goaway))
    return 0


def cmd_hpack(port, authority, count, size):
    """Header block: one literal-with-incremental-indexing of a SIZE-byte value, then COUNT one-byte
    references to it (index 62): ~COUNT*SIZE bytes after decoding from a block of ~SIZE+COUNT bytes."""
    from hyperframe.frame import ContinuationFrame, HeadersFrame
    from hpack import Encoder
    s, c = h2_open(port)
    s.recv(65536)  # server SETTINGS
    enc = Encoder()
    block = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", authority)])
    value = b"v" * int(size)
    name = b"x-bomb"
    lit = bytes([0x40]) + bytes([len(name)]) + name  # literal with incremental indexing, new name
    vl = len(value)
    lit += bytes([0x7F]) + varint(vl - 127) + value if vl >= 127 else bytes([vl]) + value
    block += lit + bytes([0x80 | 62]) * int(count)
    chunks = [block[i:i + 16000] for i in range(0, len(block), 16000)]
    out = b""
    for i, ch in enumerate(chunks):
        if i == 0:
            f = HeadersFrame(1)
            f.flags.add("END_STREAM")
        else:
            f = ContinuationFrame(1)
        if i == len(chunks) - 1:
            f.flags.add("END_HEADERS")
        f.data = ch
        out += f.serialize()
    s.sendall(out)
    # read raw: the h2 state machine of this connection does not know about stream 1
    got, deadline, eof = b"", time.time() + 5, False
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], deadline - time.time())
        if not r:
            break
        try:
            d = s.recv(65536)
        except OSError:
            d = b""
        if not d:
            eof = True
            break
        got += d
        # stop at the first frame that answers the request (h2o's SETTINGS and the upload hook's
        # SETTINGS, issue 18, may arrive first and in separate segments)
        j, answered = 0, False
        while j + 9 <= len(got):
            if got[j + 3] not in (4, 8):
                answered = True
            j += 9 + int.from_bytes(got[j:j + 3], "big")
        if answered:
            break
    kinds = []
    i = 0
    status = "-"
    from hpack import Decoder
    dec = Decoder()
    while i + 9 <= len(got):
        ln = int.from_bytes(got[i:i + 3], "big")
        if got[i + 3] == 1 and status == "-":
            try:
                status = dict(dec.decode(bytes(got[i + 9:i + 9 + ln]))).get(":status", "?")
            except Exception:
                status = "?"
        kinds.append({1: "HEADERS", 3: "RST_STREAM", 7: "GOAWAY", 4: "SETTINGS", 0: "DATA", 8: "WINDOW_UPDATE"}.get(got[i + 3], str(got[i + 3])))
        i += 9 + ln
    print("block_bytes=%d expanded_bytes=%d frames=%s status=%s eof=%d" % (len(block), int(count) * (int(size) + 38), ",".join(kinds) or "none",
                                                                        status, eof))
    return 0


def cmd_flood(port, authority, n):
    from hyperframe.frame import HeadersFrame, RstStreamFrame
    from hpack import Encoder
    s, c = h2_open(port)
    enc = Encoder()
    n = int(n)
    t0 = time.time()
    sid, sent, eof_ms = 1, 0, None
    s.setblocking(False)
    deadline = t0 + 10
    batch = []
    while sent < n and time.time() < deadline:
        for _ in range(100):
            if sent >= n:
                break
            h = HeadersFrame(sid)
            h.flags.add("END_HEADERS")
            h.flags.add("END_STREAM")
            h.data = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/flood/%d" % sid), (":authority", authority)])
            r = RstStreamFrame(sid)
            r.error_code = 8
            batch.append(h.serialize() + r.serialize())
            sid += 2
            sent += 1
        data = b"".join(batch)
        batch = []
        try:
            while data:
                k = s.send(data)
                data = data[k:]
        except BlockingIOError:
            select.select([s], [s], [], 0.05)
        except OSError:
            eof_ms = int((time.time() - t0) * 1000)
            break
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    eof_ms = int((time.time() - t0) * 1000)
                    break
        except BlockingIOError:
            pass
        except OSError:
            eof_ms = int((time.time() - t0) * 1000)
        if eof_ms is not None:
            break
    if eof_ms is None:  # all sent: wait up to 2 s for the close
        end = time.time() + 2
        while time.time() < end and eof_ms is None:
            select.select([s], [], [], 0.05)
            try:
                d = s.recv(1 << 20)
                if not d:
                    eof_ms = int((time.time() - t0) * 1000)
            except BlockingIOError:
                pass
            except OSError:
                eof_ms = int((time.time() - t0) * 1000)
    print("sent=%d closed_after_ms=%s" % (sent, eof_ms if eof_ms is not None else "never"))
    return 0


def cmd_h2burst(port, authority, n):
    s, c = h2_open(port)
    n = int(n)
    # streams beyond the server's MAX_CONCURRENT_STREAMS would be refused locally by python-h2: stay under it
    for i in range(n):
        c.send_headers(1 + 2 * i, [(":method", "GET"), (":scheme", "http"), (":path", "/b/%d" % i), (":authority", authority)],
                       end_stream=True)
    s.sendall(c.data_to_send())
    res, eof, goaway = h2_collect(s, c, time.time() + 10, want=n)
    counts = {}
    for v in res.values():
        counts[v] = counts.get(v, 0) + 1
    print(" ".join("%s=%d" % kv for kv in sorted(counts.items())))
    return 0


# ------------------------------------------------------------------ rate and slow readers


def cmd_rate(port, authority, rps, seconds, conns):
    rps, seconds, conns = float(rps), float(seconds), int(conns)
    socks = [socket.create_connection(("127.0.0.1", int(port)), timeout=5) for _ in range(conns)]
    req = ("GET /rate HTTP/1.1\r\nHost: %s\r\n\r\n" % authority).encode()
    counts, retry_after_missing = {}, 0
    t0 = time.time()
    total = int(rps * seconds)
    bufs = [b""] * conns

    def read_response(k):
        nonlocal retry_after_missing
        s = socks[k]
        while b"\r\n\r\n" not in bufs[k]:
            d = s.recv(65536)
            if not d:
                raise EOFError
            bufs[k] += d
        head, rest = bufs[k].split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ")[1].decode()
        cl = 0
        ra = False
        for ln in lines[1:]:
            low = ln.lower()
            if low.startswith(b"content-length:"):
                cl = int(ln.split(b":", 1)[1])
            if low.startswith(b"retry-after:"):
                ra = True
        while len(rest) < cl:
            d = s.recv(65536)
            if not d:
                raise EOFError
            rest += d
        bufs[k] = rest[cl:]
        if status == "429" and not ra:
            retry_after_missing += 1
        counts[status] = counts.get(status, 0) + 1

    for i in range(total):
        target = t0 + i / rps
        now = time.time()
        if target > now:
            time.sleep(target - now)
        k = i % conns
        socks[k].sendall(req)
        if i >= conns - 1:  # keep up to |conns| requests in flight: read the oldest
            read_response((i - conns + 1) % conns)
        if time.time() - t0 > seconds * 3 + 10:
            break
    for j in range(max(0, total - conns + 1), total):
        read_response(j % conns)
    elapsed = time.time() - t0
    print("elapsed_ms=%d %s retry_after_missing=%d" % (elapsed * 1000, " ".join("s%s=%d" % kv for kv in sorted(counts.items())),
                                                       retry_after_missing))
    return 0


def cmd_slow(port, authority, n, path):
    n = int(n)
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", int(port)))
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, authority)).encode())
        socks.append(s)
    print("opened=%d" % len(socks), flush=True)
    sys.stdin.read()  # hold until the test closes our stdin
    return 0


def main():
    cmds = {"evil": cmd_evil, "peer": cmd_peer, "raw": cmd_raw, "flood": cmd_flood, "h2req": cmd_h2req, "hpack": cmd_hpack, "rate": cmd_rate,
            "h2burst": cmd_h2burst, "slow": cmd_slow}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        return 2
    return cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
