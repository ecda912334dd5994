// The Node.js `ws` echo server the benchmarks compare wsfn with: what Laf's WebSocket
// function runs on. Every message goes back as it came, text as text and binary as binary.
'use strict';
const { WebSocketServer } = require('ws');

const [host, port] = (process.argv[2] || '127.0.0.1:9002').split(':');
const server = new WebSocketServer({ host, port: Number(port), perMessageDeflate: false });
server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
});
server.on('listening', () => {
  const address = server.address();
  console.log(`node-ws-echo listening on ws://${address.address}:${address.port}`);
});
