#!/usr/bin/python3
"""bench/syn_burst.py — why LOCAL_MAX_CONNECTING counts connections until their first answer byte
(docs/PERFORMANCE.md §6). Opens TOTAL connections to a fresh `python3 -m http.server` (listen
backlog 5), each sending one small GET and reading the answer (as tunnelmux-client does), with at
most K of them either connecting (TCP handshake in progress) or unanswered (connected, no byte
back yet), and prints the slowest connect and the time until all were answered.

Usage: syn_burst.py TOTAL:K[:a] ...   (K 0 = no limit; ':a' = count until answered, else until
connected), e.g. syn_burst.py 120:0 120:4 120:1 120:4:a 120:5:a 120:6:a
Every run is bounded (60 s) and uses loopback only.
"""
import os, random, selectors, socket, subprocess, sys, tempfile, time

SITE = tempfile.mkdtemp(prefix="syn_burst.")
with open(os.path.join(SITE, "a.css"), "w") as f:
    f.write("x" * 2000)

def server():
    port = random.randint(20000, 30000)
    p = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], cwd=SITE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); break
        except OSError:
            time.sleep(0.1)
    return p, port

def run(port, total, inflight, until_answer=False):
    """opens |total| connections, at most |inflight| connects in progress; each sends a GET once
    connected; returns (max connect seconds, all-done seconds)."""
    sel = selectors.DefaultSelector()
    pending = total; connecting = 0; maxc = 0; t0 = time.monotonic(); done = 0
    socks = {}
    def start():
        nonlocal pending, connecting
        s = socket.socket(); s.setblocking(False)
        try: s.connect(("127.0.0.1", port))
        except BlockingIOError: pass
        socks[s] = [time.monotonic(), "c", b""]
        sel.register(s, selectors.EVENT_WRITE)
        pending -= 1; connecting += 1
    while done < total and time.monotonic() - t0 < 60:
        while pending > 0 and (inflight == 0 or connecting < inflight):
            start()
        for key, ev in sel.select(0.5):
            s = key.fileobj; st = socks[s]
            if st[1] == "c":
                if not until_answer: connecting -= 1
                maxc = max(maxc, time.monotonic() - st[0])
                st[1] = "r"
                s.send(b"GET /a.css HTTP/1.0\r\n\r\n")
                sel.modify(s, selectors.EVENT_READ)
            else:
                b = s.recv(65536)
                if b and until_answer and st[1] == "r":
                    st[1] = "a"; connecting -= 1
                if not b:
                    sel.unregister(s); s.close(); done += 1
    return maxc, time.monotonic() - t0

for a in sys.argv[1:]:
    total, inflight = int(a.split(":")[0]), int(a.split(":")[1])
    ua = a.endswith(":a")
    p, port = server()
    try:
        mc, tt = run(port, total, inflight, ua)
        print("connections %3d  %s <= %-3s  slowest connect %.3f s  all answered %.3f s" % (total, "unanswered connections" if ua else "connects in progress  ", inflight or "all", mc, tt), flush=True)
    finally:
        p.terminate(); p.wait()

import shutil
shutil.rmtree(SITE, ignore_errors=True)
