// The floor of a JavaScript stack: a `ws` server that relays every text
// frame a client sends to every socket of its room (the sender's own copy
// is its acknowledgement). No storage, no ordering guarantee, no auth.
//
//   node ws-server.mjs --port P        clients connect to ws://127.0.0.1:P/?room=NAME
import http from 'node:http';
import { Sender, WebSocket, WebSocketServer } from 'ws';

const port = Number(process.argv[process.argv.indexOf('--port') + 1]);
if (!Number.isInteger(port)) {
  console.error('usage: node ws-server.mjs --port P');
  process.exit(2);
}

const rooms = new Map();
const server = http.createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404).end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });

wss.on('connection', (socket, req) => {
  const room = new URL(req.url, 'http://x').searchParams.get('room') ?? '';
  if (!rooms.has(room)) rooms.set(room, new Set());
  const members = rooms.get(room);
  members.add(socket);
  socket.on('message', (data, isBinary) => {
    if (isBinary) return;
    // The frame is built once and written as is to every member, the way
    // Socket.IO's broadcast does it (ws issue 617): no compression, so
    // ws's send would only rebuild this same header per socket.
    const frame = Sender.frame(data, {
      readOnly: false, mask: false, rsv1: false, opcode: 1, fin: true,
    });
    for (const member of members) {
      if (member.readyState === WebSocket.OPEN) member._sender.sendFrame(frame);
    }
  });
  socket.on('error', () => {}); // a bad frame closes that socket, not the server
  socket.on('close', () => {
    members.delete(socket);
    if (members.size === 0) rooms.delete(room);
  });
});

server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
process.on('SIGTERM', () => {
  for (const client of wss.clients) client.terminate();
  server.close(() => process.exit(0));
});
