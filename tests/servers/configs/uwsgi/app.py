# The WSGI app of the gunicorn and uwsgi recipes. It names the instance that
# answers: its process group, which is the pid baton started (workers share
# it). GET /hold answers only once a file named "release" exists in the
# working directory (at most 10 s), to keep a request in flight across a
# drain.
import os
import time


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/hold":
        deadline = time.monotonic() + 10
        while not os.path.exists("release") and time.monotonic() < deadline:
            time.sleep(0.01)
    body = f"served by pid {os.getpgrp()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
