#!/usr/bin/python3
# examples/health: a plain Python web app that speaks none of baton's protocols
# (no sd_notify): baton learns that it is ready by probing GET /health. It takes
# its listening socket from fd 3 and drains on SIGTERM. Standard library only.
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "1")
BOOT_SECONDS = float(os.environ.get("APP_BOOT_SECONDS", "0"))  # a simulated slow boot
HEALTH_FAILS = os.environ.get("APP_HEALTH") == "fail"  # a broken release
STARTED = time.monotonic()
IDLE_GRACE = 0.2  # seconds; see Server.drain()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection carries many requests
    # Send each reply in one write: headers and body as two small writes wait
    # on Nagle's algorithm and the client's delayed ACK (40 ms a request).
    wbufsize = -1

    def setup(self):
        super().setup()
        self.busy = False  # from reading a request line to sending its reply
        with self.server.lock:
            self.server.handlers.add(self)

    def finish(self):
        with self.server.lock:
            self.server.handlers.discard(self)
            self.server.lock.notify_all()
        super().finish()

    def parse_request(self):  # a request line has arrived: a drain lets it finish
        with self.server.lock:
            self.busy = True
        return super().parse_request()

    def handle_one_request(self):
        super().handle_one_request()
        with self.server.lock:
            self.busy = False

    def do_GET(self):
        if self.path == "/":
            self.reply(200, f"health example v{VERSION} (pid {os.getpid()})\n")
        elif self.path == "/health":
            ok = time.monotonic() - STARTED >= BOOT_SECONDS and not HEALTH_FAILS
            self.reply(200 if ok else 503, "ok\n" if ok else "not ready\n")
        else:
            self.reply(404, "not found\n")

    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.server.draining:  # tell the client not to send another request here
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # a line per request would flood baton's log under load


class Server(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close() waits for in-flight requests

    def __init__(self, sock):
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()  # the constructor made a socket of its own
        self.socket = sock
        self.lock = threading.Condition()  # notified when a connection closes
        self.handlers = set()  # open connections
        self.draining = False

    def drain(self):
        self.shutdown()  # stop accepting: serve_forever() returns
        with self.lock:
            self.draining = True  # replies now say "Connection: close"
            # A client may be sending its next request on a keep-alive
            # connection right now, and closing it would lose that request.
            # So every connection gets IDLE_GRACE to send one more (or to
            # close); then the ones still waiting in recv() for a request are
            # woken with SHUT_RD, which they read as end-of-file, and close.
            self.lock.wait_for(lambda: not self.handlers, IDLE_GRACE)
            for handler in self.handlers:
                if not handler.busy:
                    with contextlib.suppress(OSError):  # the peer may be gone
                        handler.connection.shutdown(socket.SHUT_RD)
        self.server_close()  # close our copy of the listener; join every handler


def listening_socket():
    if os.environ.get("LISTEN_FDS"):
        # From baton (or systemd), which holds it too, and with shared
        # listeners so do other generations: leave its flags alone. If it is
        # non-blocking, an accept() that another process won fails with
        # EAGAIN, which the server ignores.
        return socket.socket(fileno=3)
    return socket.create_server(("127.0.0.1", 8080))  # run by hand


def main():
    # Block the signals before any thread starts, so that every thread
    # inherits the mask and the main thread alone takes them, in sigwait().
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    server = Server(listening_socket())
    # A short poll interval: shutdown() waits for serve_forever() to notice.
    threading.Thread(target=server.serve_forever, args=(0.05,)).start()
    print(f"health example v{VERSION} (pid {os.getpid()}) serving", file=sys.stderr)
    signal.sigwait(signals)
    server.drain()
    print(f"health example v{VERSION} (pid {os.getpid()}) drained", file=sys.stderr)


if __name__ == "__main__":
    main()
