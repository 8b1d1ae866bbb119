#!/usr/bin/python3
"""Local services that never answer, for the connection-budget e2e test (test_local_queue.sh).

  local_stall.py silent PORT_FILE
      accepts every connection, reads what comes, never answers (a hung application)
  local_stall.py noaccept PORT_FILE
      listens with backlog 0 and never accepts; it fills its own accept queue first, so the
      kernel drops every further SYN: a connect to it hangs (SYN retransmission) as against an
      overloaded service with a full backlog

Writes the port to PORT_FILE once ready; runs until killed (at most 10 minutes).
"""
import socket
import sys
import threading
import time


def main():
    mode, port_file = sys.argv[1], sys.argv[2]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    held = []
    if mode == "silent":
        ls.listen(128)

        def serve():
            while True:
                c, _ = ls.accept()
                held.append(c)
                threading.Thread(target=drain, args=(c,), daemon=True).start()

        def drain(c):
            try:
                while c.recv(65536):
                    pass
            except OSError:
                pass

        threading.Thread(target=serve, daemon=True).start()
    elif mode == "noaccept":
        ls.listen(0)
        port = ls.getsockname()[1]
        for _ in range(8):  # fill the accept queue (backlog 0 holds about one)
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            held.append(c)
        time.sleep(0.5)
    else:
        sys.exit("mode must be silent or noaccept")
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    import os
    os.rename(port_file + ".tmp", port_file)
    time.sleep(600)


if __name__ == "__main__":
    main()
