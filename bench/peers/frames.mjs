// Prints every frame a real socket.io server sends and receives over a raw
// WebSocket, to check the frames README.md documents (run: node frames.mjs).
// Waits for the server's first ping unless --no-ping is given (25 s).
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import WebSocket from 'ws';

const port = await new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const child = spawn(process.execPath, ['socketio-server.mjs', '--port', String(port)], {
  cwd: new URL('.', import.meta.url), stdio: ['ignore', 'pipe', 'inherit'],
});
process.on('exit', () => child.kill('SIGTERM'));
process.stdout.on('error', () => process.exit(0)); // e.g. piped into head
await new Promise((resolve) => child.stdout.once('data', (d) => { process.stdout.write(`server: ${d}`); resolve(); }));

function open(label, query = 'room=r') {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket&${query}`, { perMessageDeflate: false });
  ws.on('message', (d, bin) => console.log(`${label} <- ${bin ? '(binary) ' : ''}${d}`));
  ws.on('close', (code, reason) => console.log(`${label} closed ${code} ${reason}`));
  ws.on('error', (e) => console.log(`${label} error ${e.code ?? ''} ${e.message}`));
  ws.out = (f) => { console.log(`${label} -> ${f}`); ws.send(f); };
  return new Promise((resolve) => ws.once('open', () => resolve(ws)));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const a = await open('A');
await sleep(100);
a.out('40');
await sleep(100);
const b = await open('B');
await sleep(100);
b.out('40{}');                     // does a trailing payload matter?
await sleep(100);
a.out('421["send",{"room":"r","id":1,"ts":123,"body":"hello"}]');
await sleep(100);
b.out('421["send",{"room":"r","id":2,"ts":124,"body":"ack ids are per socket?"}]');
await sleep(100);
a.out('42["send",{"room":"r","id":3,"ts":125,"body":"no ack id"}]');
await sleep(100);
const d = await open('D');
d.out('40');
await sleep(100);
d.out('2');                        // a client ping in EIO 4: the server closes the socket
await sleep(100);
if (!process.argv.includes('--no-ping')) {
  console.log('waiting for the server ping (pingInterval) …');
  await new Promise((resolve) => a.on('message', (d) => { if (String(d) === '2') { a.out('3'); resolve(); } }));
  await sleep(200);
}
a.close(); b.close(); d.close();
await sleep(100);
child.kill('SIGTERM');
child.on('exit', (code, sig) => console.log(`server exited ${code ?? sig}`));
