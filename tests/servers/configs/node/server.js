// A node HTTP server on baton's socket (fd 3) that drains on SIGTERM. It
// names the instance that answers (its pid). GET /hold answers only once a
// file named "release" exists in the working directory (at most 10 s), to
// keep a request in flight across a drain.
"use strict";
const fs = require("fs");
const http = require("http");
const net = require("net");

let draining = false;

function answer(res) {
  const body = `served by pid ${process.pid}\n`;
  // Once draining, every answer tells the client not to send another request here.
  if (draining) res.setHeader("Connection", "close");
  res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.url !== "/hold") return answer(res);
  let tries = 1000;
  const wait = setInterval(() => {
    if (fs.existsSync("release") || --tries === 0) {
      clearInterval(wait);
      answer(res);
    }
  }, 10);
});

// listen() applies a backlog to the socket (511 unless given; listen({fd})
// ignores a backlog option): the kernel caps this one at net.core.somaxconn,
// as baton's own default does.
server.listen({ fd: 3 }, 65535);

process.on("SIGTERM", () => {
  console.log("draining");
  draining = true;
  // Stop accepting, without closing idle keep-alive connections as
  // http.Server.close() does; exit once every connection has closed.
  net.Server.prototype.close.call(server, () => process.exit(0));
  // A client may be sending its next request on an idle connection right
  // now: each gets a second to send one more, then the idle ones are closed.
  setTimeout(() => server.closeIdleConnections(), 1000).unref();
});
