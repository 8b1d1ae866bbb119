#!/usr/bin/env python3
"""A public HTTP/1.1 reader through the tunnel, with a fixed receive buffer (no autotuning).
  stall_reader.py stall PORT HOST PATH FIRST PAUSE
      reads FIRST bytes, then nothing for PAUSE seconds, then drains and prints how the connection
      ended: 'reset' or 'eof BYTES' (cut by the server), 'complete BYTES' (the body arrived whole);
      with STALL_READY=FILE in the environment, creates FILE when the pause begins
  stall_reader.py slow PORT HOST PATH RATE SECONDS OUT
      reads at RATE bytes/s for SECONDS into OUT (the body only) and prints 'alive BYTES', or
      'reset' / 'eof BYTES' when the server cut it"""
import os
import socket
import sys
import time

mode, port, host, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384 if mode == "stall" else 65536)
s.settimeout(60)
s.connect(("127.0.0.1", port))
s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
buf = b""
while b"\r\n\r\n" not in buf:
    b = s.recv(4096)
    if not b:
        print("eof 0")
        sys.exit(0)
    buf += b
head, _, body = buf.partition(b"\r\n\r\n")
length = None
for line in head.split(b"\r\n")[1:]:
    k, _, v = line.partition(b":")
    if k.strip().lower() == b"content-length":
        length = int(v)
try:
    if mode == "stall":
        first, pause = int(sys.argv[5]), float(sys.argv[6])
        got = len(body)
        while got < first:
            b = s.recv(65536)
            if not b:
                print(f"eof {got}")
                sys.exit(0)
            got += len(b)
        if os.environ.get("STALL_READY"):
            open(os.environ["STALL_READY"], "w").close()
        time.sleep(pause)
        while length is None or got < length:
            b = s.recv(1 << 20)
            if not b:
                print(f"eof {got}")
                sys.exit(0)
            got += len(b)
        print(f"complete {got}")
    else:
        rate, seconds, out = float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
        with open(out, "wb") as f:
            f.write(body)
            got, t0 = len(body), time.time()
            while time.time() - t0 < seconds:
                b = s.recv(8192)
                if not b:
                    print(f"eof {got}")
                    sys.exit(0)
                f.write(b)
                got += len(b)
                time.sleep(max(0.0, got / rate - (time.time() - t0)))
        print(f"alive {got}")
except ConnectionResetError:
    print("reset")
