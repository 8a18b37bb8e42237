#!/usr/bin/env python3
"""py_echo.py - Python's own socketserver echo, for the benchmark table.

    python3 py_echo.py threading|forking 127.0.0.1:0

ThreadingTCPServer or ForkingTCPServer with a StreamRequestHandler that
echoes what arrives, as a Python user would write it.  Prints
"listening on ADDRESS" when ready and stops on SIGTERM / SIGINT.  The one
change from the defaults: request_queue_size is the kernel's SOMAXCONN
(Python's default of 5 would measure the SYN retransmission timer at 1,000
connections, not the server); the C servers use SOMAXCONN too.  Everything
else is Python's default, max_children = 40 of ForkingMixIn included (the
C forking model has the same limit).
"""
import signal
import socket
import socketserver
import sys


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            data = self.rfile.read1(65536)
            if not data:
                return
            self.wfile.write(data)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("threading", "forking"):
        sys.exit("usage: py_echo.py threading|forking 127.0.0.1:PORT")
    host, _, port = sys.argv[2].rpartition(":")
    if not host.startswith("127."):
        sys.exit("py_echo.py: loopback addresses only")
    base = (socketserver.ThreadingTCPServer if sys.argv[1] == "threading"
            else socketserver.ForkingTCPServer)

    class Server(base):
        allow_reuse_address = True
        request_queue_size = socket.SOMAXCONN

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with Server((host, int(port)), Echo) as server:
        print("listening on %s:%d" % server.server_address[:2], flush=True)
        try:
            server.serve_forever()
        finally:
            server.block_on_close = False


if __name__ == "__main__":
    main()
