// The floor of a JavaScript stack: a `ws` server that relays every text
// frame a client sends to every socket of its room (the sender's own copy
// is its acknowledgement). No storage, no ordering guarantee, no auth.
//
//   node ws-server.mjs --port P        clients connect to ws://127.0.0.1:P/?room=NAME
import http from 'node:http';
import { WebSocketServer } from 'ws';

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
    // Sent as the same Buffer to every member: ws frames it per socket.
    for (const member of members) member.send(data, { binary: false });
  });
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
