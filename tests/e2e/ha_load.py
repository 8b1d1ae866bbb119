#!/usr/bin/env python3
"""tunnelmux e2e fixture: a bounded HTTP/1.1 request load through a balancer (python3 stdlib only).

Usage: ha_load.py --port P --host HOST --requests N [--concurrency C] [--max-seconds S]
                  [--path /who] [--stop-file F]
Sends up to N GET requests (keep-alive per worker, reconnect after any error) to 127.0.0.1:P with
Host: HOST, C at a time, for at most S seconds or until F exists. Prints one JSON line:
  {"sent": n, "ok": n2xx, "failed": n_other, "statuses": {"200": n, "502": n, "error": n},
   "identities": {"a": n, "b": n}, "first_failure_s": t|null, "last_failure_s": t|null, "seconds": t}
where an identity is the "server" field of the echo service's JSON answer.
"""
import argparse
import http.client
import json
import os
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--path", default="/who")
    ap.add_argument("--stop-file", default="")
    a = ap.parse_args()
    lock = threading.Lock()
    st = {"sent": 0, "ok": 0, "failed": 0, "statuses": {}, "identities": {}, "first_failure_s": None, "last_failure_s": None}
    t0 = time.monotonic()

    def take():
        with lock:
            if st["sent"] >= a.requests or time.monotonic() - t0 > a.max_seconds:
                return False
            if a.stop_file and os.path.exists(a.stop_file):
                return False
            st["sent"] += 1
            return True

    def record(status, ident):
        with lock:
            st["statuses"][status] = st["statuses"].get(status, 0) + 1
            if status.startswith("2"):
                st["ok"] += 1
                if ident:
                    st["identities"][ident] = st["identities"].get(ident, 0) + 1
            else:
                st["failed"] += 1
                now = round(time.monotonic() - t0, 3)
                if st["first_failure_s"] is None:
                    st["first_failure_s"] = now
                st["last_failure_s"] = now

    def worker():
        conn = None
        while take():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=20)
                conn.request("GET", a.path, headers={"Host": a.host})
                r = conn.getresponse()
                body = r.read()
                ident = None
                if r.status == 200:
                    try:
                        ident = json.loads(body).get("server")
                    except ValueError:
                        pass
                record(str(r.status), ident)
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                record("error", None)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()

    ts = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    st["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(st, sort_keys=True))


if __name__ == "__main__":
    main()
