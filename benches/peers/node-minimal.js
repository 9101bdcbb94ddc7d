// The floor of a Node.js worker: the smallest HTTP server that answers GET / with 200, nothing
// loaded beyond node:http. scripts/bench times exec -> first 200 for it beside `handler`.
"use strict";
const http = require("node:http");
const port = Number(process.env.FUNCTIONS_CUSTOMHANDLER_PORT || 0);
http
  .createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("ok");
  })
  .listen(port, "127.0.0.1");
