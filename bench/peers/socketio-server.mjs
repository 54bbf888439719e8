// What users pick instead: Socket.IO 4 over the websocket transport. The
// room comes from the handshake query; `send` with an ack callback emits
// `message` to the room, then acknowledges. With --redis, nodes share
// rooms through @socket.io/redis-adapter (Redis pub/sub).
//
//   node socketio-server.mjs --port P [--redis redis://127.0.0.1:6379 --redis-prefix PREFIX]
//   clients: ws://127.0.0.1:P/socket.io/?EIO=4&transport=websocket&room=NAME
import http from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

function option(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const port = Number(option('--port'));
if (!Number.isInteger(port)) {
  console.error('usage: node socketio-server.mjs --port P [--redis URL --redis-prefix PREFIX]');
  process.exit(2);
}

// engine.io takes /socket.io/ and hands every other request to this one.
const server = http.createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404).end();
});
const io = new Server(server, {
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
});

const redisUrl = option('--redis');
const clients = [];
if (redisUrl) {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  clients.push(pub, sub);
  io.adapter(createAdapter(pub, sub, { key: option('--redis-prefix') ?? 'socket.io' }));
  // The adapter subscribes without a promise to wait on; replies come in
  // order, so once a later subscription is confirmed, its are too, and a
  // message published by another node from now on reaches this one.
  const probe = `${option('--redis-prefix') ?? 'socket.io'}-ready#${process.pid}`;
  await sub.subscribe(probe, () => {});
  await sub.unsubscribe(probe);
}

io.on('connection', (socket) => {
  const room = String(socket.handshake.query.room ?? '');
  socket.join(room);
  socket.on('send', (payload, ack) => {
    io.to(payload?.room ?? room).emit('message', payload);
    if (typeof ack === 'function') ack({ ok: true });
  });
});

server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
process.on('SIGTERM', async () => {
  io.close();
  await Promise.all(clients.map((c) => c.quit().catch(() => {})));
  process.exit(0);
});
