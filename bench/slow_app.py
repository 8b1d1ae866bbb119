#!/usr/bin/python3
"""An app-server stand-in for bench/local_queue.sh: threaded HTTP/1.1 with keep-alive, a listen
backlog of 1024 (like gunicorn/uvicorn/node, unlike http.server's 5) and DELAY_MS of waiting per
request (a database call): throughput is bounded by how many requests it is given at once.

Usage: slow_app.py PORT [DELAY_MS]
"""
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(DELAY_S)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    DELAY_S = (int(sys.argv[2]) if len(sys.argv) > 2 else 20) / 1000.0
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
