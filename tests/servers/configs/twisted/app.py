# The twisted.web resource of the twisted recipe. It names the instance that
# answers (its process group: the pid baton started). GET /hold answers only
# once a file named "release" exists in the working directory (at most 10 s),
# to keep a request in flight across a drain.
#
# The reactor drops every connection when it stops, with what it has not
# sent yet. A "before shutdown" trigger holds the stop until the requests in
# progress are answered, with "Connection: close", and those connections
# have closed (the listening port is still open then, but baton sends it no
# new connections).
import os

from twisted.internet import reactor, task
from twisted.web import resource, server

draining = False
pending = {}  # request -> its connection, until it is answered
closing = set()  # connections answered while draining, until they close


def answered(request):
    connection = pending.pop(request, None)
    if draining and connection is not None:
        closing.add(connection)


def drained():
    closing.difference_update([c for c in closing if c.disconnected])
    if not pending and not closing:
        return None
    return task.deferLater(reactor, 0.01, drained)


def drain():
    global draining
    draining = True
    return drained()


reactor.addSystemEventTrigger("before", "shutdown", drain)


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        body = f"served by pid {os.getpgrp()}\n".encode()
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"content-length", str(len(body)).encode())
        if request.path != b"/hold":
            if draining:
                request.setHeader(b"connection", b"close")
            return body
        pending[request] = request.channel.transport
        request.notifyFinish().addBoth(lambda _: answered(request))

        def answer(tries=1000):
            if os.path.exists("release") or tries == 0:
                if draining:
                    request.setHeader(b"connection", b"close")
                request.write(body)
                request.finish()
            else:
                reactor.callLater(0.01, answer, tries - 1)

        answer()
        return server.NOT_DONE_YET
