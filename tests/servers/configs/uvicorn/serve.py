# Runs uvicorn on baton's socket, fd 3. socket.socket(fileno=3) reads the
# socket's real family (uvicorn --fd 3 calls it AF_UNIX, and asyncio then
# never sets TCP_NODELAY on its connections).
import socket

import uvicorn

config = uvicorn.Config("app:app", backlog=4096, access_log=False)
uvicorn.Server(config).run(sockets=[socket.socket(fileno=3)])
