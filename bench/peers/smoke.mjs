// Self-check of the peer servers, speaking the raw frames the Rust
// generator speaks (README.md), with `ws` as a plain WebSocket client:
//
//   1. ws-server.mjs: members of a room each get every text frame once,
//      the sender's own copy included; another room gets nothing.
//   2. socketio-server.mjs, one node: the same over engine.io v4 /
//      socket.io v5 frames, and every `send` is acknowledged.
//   3. socketio-server.mjs, two nodes joined by the Redis adapter with one
//      prefix, the room's members spread over both.
//
// Each server runs as a child process on a free port and is stopped with
// SIGTERM. Exits non-zero on the first failure. `npm test` runs it.
// Options: --redis URL (default redis://127.0.0.1:6379), --no-redis.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

const here = new URL('.', import.meta.url);
const redisUrl = process.argv.includes('--redis')
  ? process.argv[process.argv.indexOf('--redis') + 1]
  : 'redis://127.0.0.1:6379';
const TIMEOUT_MS = 10_000;
const children = new Set();
let passed = 0;
let failed = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function within(ms, promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Starts a server, resolves once it printed exactly its `listening` line.
async function startServer(script, extra = []) {
  const port = await freePort();
  const child = spawn(process.execPath, [script, '--port', String(port), ...extra], {
    cwd: here,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  let stdout = '';
  await within(TIMEOUT_MS, new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.includes('\n')) resolve();
    });
    exited.then(({ code, signal }) =>
      reject(new Error(`${script} exited (${code ?? signal}) before listening: ${stderr}`)));
  }), `${script} to listen`);
  const expected = `listening on 127.0.0.1:${port}\n`;
  if (stdout !== expected) {
    throw new Error(`${script} printed ${JSON.stringify(stdout)}, not ${JSON.stringify(expected)}`);
  }
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      const { code, signal } = await within(TIMEOUT_MS, exited, `${script} to exit on SIGTERM`);
      if (code !== 0) throw new Error(`${script} exited ${code ?? signal} on SIGTERM: ${stderr}`);
      // What else it printed while running: one line, nothing more.
      if (stdout !== expected) throw new Error(`${script} printed more: ${JSON.stringify(stdout)}`);
    },
  };
}

function get(port, path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    }).on('error', reject);
  });
}

// A raw WebSocket that records every text frame it receives.
function connect(url) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.frames = [];
  ws.waiters = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.frames.push({ binary: true });
    } else {
      ws.frames.push(String(data));
    }
    ws.waiters = ws.waiters.filter((w) => !w());
  });
  ws.on('error', () => {});
  // Resolves once pred(frames) is true.
  ws.until = (pred, what) => within(TIMEOUT_MS, new Promise((resolve) => {
    const check = () => (pred(ws.frames) ? (resolve(), true) : false);
    if (!check()) ws.waiters.push(check);
  }), what);
  return within(TIMEOUT_MS, new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_, res) => reject(new Error(`${url}: HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  }), `connect ${url}`);
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function countOf(list, item) {
  return list.filter((x) => x === item).length;
}

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}: ${err.message}`);
  }
}

// ---------------------------------------------------------------- ws

async function wsScenario() {
  const server = await startServer('ws-server.mjs');
  const sockets = [];
  try {
    assert(await get(server.port, '/healthz') === 200, '/healthz is not 200');
    const url = (room) => `ws://127.0.0.1:${server.port}/?room=${room}`;
    const members = [];
    for (let i = 0; i < 3; i++) members.push(await connect(url('r')));
    const outsider = await connect(url('other'));
    sockets.push(...members, outsider);

    const sent = [];
    for (const [i, m] of members.entries()) {
      for (let k = 0; k < 3; k++) {
        // Short, medium (past the 126-byte length form) and one 70 KB body
        // (the 64-bit length form).
        const pad = k === 0 ? '' : 'x'.repeat(i === 0 && k === 2 ? 70_000 : 200);
        const text = JSON.stringify({ seq: i * 10 + k, body: `${Date.now()} from ${i} é ✓ ${pad}` });
        sent.push(text);
        m.send(text);
      }
    }
    for (const [i, m] of members.entries()) {
      await m.until((f) => f.length >= sent.length, `member ${i} to get ${sent.length} frames`);
    }
    await sleep(100); // anything extra would show up now
    for (const [i, m] of members.entries()) {
      assert(m.frames.length === sent.length, `member ${i} got ${m.frames.length} frames, not ${sent.length}`);
      for (const text of sent) {
        assert(countOf(m.frames, text) === 1, `member ${i} got ${text} ${countOf(m.frames, text)} times`);
      }
      // Frames from one sender arrive in the order it sent them.
      for (let s = 0; s < members.length; s++) {
        const mine = m.frames.filter((f) => JSON.parse(f).seq >= s * 10 && JSON.parse(f).seq < s * 10 + 10);
        assert(JSON.stringify(mine) === JSON.stringify(sent.slice(s * 3, s * 3 + 3)),
          `member ${i} got sender ${s}'s frames out of order`);
      }
    }
    assert(outsider.frames.length === 0, `the other room got ${outsider.frames.length} frames`);

    // A member that leaves is dropped from the room, the others still get frames.
    members[2].close();
    await sleep(100);
    members[0].send('after-leave');
    await members[1].until((f) => f.includes('after-leave'), 'a frame after a member left');
  } finally {
    for (const s of sockets) s.terminate();
    await server.stop();
  }
}

// ---------------------------------------------------------- socket.io

const OPEN = /^0\{"sid":"[^"]+","upgrades":\[\],"pingInterval":\d+,"pingTimeout":\d+,"maxPayload":\d+\}$/;
const CONNECTED = /^40\{"sid":"[^"]+"\}$/;

// Opens a raw engine.io v4 socket, joins the main namespace with `40`.
async function sioConnect(port, room) {
  const ws = await connect(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket&room=${room}`);
  ws.on('message', (d) => { if (String(d) === '2') ws.send('3'); }); // engine.io v4: server pings
  await ws.until((f) => f.length >= 1, 'the engine.io open packet');
  assert(OPEN.test(ws.frames[0]), `open packet is ${ws.frames[0]}`);
  ws.send('40');
  await ws.until((f) => f.length >= 2, 'the namespace connect reply');
  assert(CONNECTED.test(ws.frames[1]), `connect reply is ${ws.frames[1]}`);
  ws.frames.splice(0, 2);
  ws.nextAck = 1;
  ws.emitSend = (payload) => {
    const id = ws.nextAck++;
    ws.send(`42${id}${JSON.stringify(['send', payload])}`);
    return id;
  };
  return ws;
}

async function sioScenario(ports, roomPrefix) {
  const room = `${roomPrefix}-r`;
  const members = [];
  // Members spread over the nodes, round robin.
  for (let i = 0; i < 4; i++) members.push(await sioConnect(ports[i % ports.length], room));
  const outsiders = [];
  for (const port of ports) outsiders.push(await sioConnect(port, `${roomPrefix}-other`));
  try {
    const sent = [];
    const acks = members.map(() => []);
    for (const [i, m] of members.entries()) {
      for (let k = 0; k < 3; k++) {
        const pad = k === 2 ? 'x'.repeat(i === 0 ? 70_000 : 200) : '';
        const payload = { room, id: i * 10 + k, ts: Date.now() * 1000, body: `from ${i} é ✓ "quoted" ${pad}` };
        sent.push(payload);
        acks[i].push(m.emitSend(payload));
      }
    }
    const expected = sent.map((p) => `42${JSON.stringify(['message', p])}`);
    for (const [i, m] of members.entries()) {
      const want = expected.length + acks[i].length;
      await m.until((f) => f.length >= want, `member ${i} to get ${want} frames`);
    }
    await sleep(200);
    for (const [i, m] of members.entries()) {
      const messages = m.frames.filter((f) => f.startsWith('42'));
      const ackFrames = m.frames.filter((f) => f.startsWith('43'));
      const other = m.frames.filter((f) => !f.startsWith('42') && !f.startsWith('43') && f !== '2');
      assert(other.length === 0, `member ${i} got unexpected frames ${JSON.stringify(other)}`);
      assert(messages.length === expected.length,
        `member ${i} got ${messages.length} messages, not ${expected.length}`);
      for (const frame of expected) {
        assert(countOf(messages, frame) === 1, `member ${i} got ${frame} ${countOf(messages, frame)} times`);
      }
      assert(JSON.stringify(ackFrames) === JSON.stringify(acks[i].map((id) => `43${id}[{"ok":true}]`)),
        `member ${i} acks are ${JSON.stringify(ackFrames)}`);
      // Each ack comes after the sender's own copy of that message.
      for (const [k, id] of acks[i].entries()) {
        const own = m.frames.indexOf(expected[i * 3 + k]);
        const ack = m.frames.indexOf(`43${id}[{"ok":true}]`);
        assert(own >= 0 && own < ack, `member ${i}: ack ${id} came before its own message`);
      }
    }
    for (const [j, o] of outsiders.entries()) {
      assert(o.frames.filter((f) => f !== '2').length === 0,
        `the other room on node ${j} got ${JSON.stringify(o.frames)}`);
    }
  } finally {
    for (const s of [...members, ...outsiders]) s.terminate();
  }
}

async function sioSingle() {
  const server = await startServer('socketio-server.mjs');
  try {
    assert(await get(server.port, '/healthz') === 200, '/healthz is not 200');
    await sioScenario([server.port], 'single');
  } finally {
    await server.stop();
  }
}

async function sioRedis() {
  const prefix = `smoke-${process.pid}-${randomBytes(4).toString('hex')}`;
  const args = ['--redis', redisUrl, '--redis-prefix', prefix];
  const a = await startServer('socketio-server.mjs', args);
  let b;
  try {
    b = await startServer('socketio-server.mjs', args);
    assert(await get(b.port, '/healthz') === 200, '/healthz is not 200');
    await sioScenario([a.port, b.port], 'redis');
  } finally {
    await a.stop();
    if (b) await b.stop();
  }
}

process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

await check('ws-server: room broadcast, sender included, rooms apart', wsScenario);
await check('socketio-server: one node, raw engine.io v4 frames, acks', sioSingle);
if (!process.argv.includes('--no-redis')) {
  await check('socketio-server: two nodes over the Redis adapter', sioRedis);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
