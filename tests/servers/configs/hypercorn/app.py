# The ASGI app of the uvicorn and hypercorn recipes. It names the instance
# that answers (its process group: the pid baton started). GET /hold answers
# only once a file named "release" exists in the working directory (at most
# 10 s), to keep a request in flight across a drain.
import asyncio
import os


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/hold":
        for _ in range(1000):
            if os.path.exists("release"):
                break
            await asyncio.sleep(0.01)
    body = f"served by pid {os.getpgrp()}\n".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
