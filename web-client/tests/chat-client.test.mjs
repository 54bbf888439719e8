// Unit tests of the protocol client (chat-client.js) against a scripted
// fake socket: the client's half of the delivery contract, with no server
// and no browser. Run: node --test web-client/tests/chat-client.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff, ChatClient, Outbox, jwtTimes } from '../chat-client.js';

const ROOM = 'room-1';
const OTHER_ROOM = 'room-2';
const ME = { id: 'me', username: 'me', display_name: 'Me' };

/** A Storage in memory (what localStorage offers). */
class MemoryStorage {
  #items = new Map();
  getItem(key) {
    return this.#items.has(key) ? this.#items.get(key) : null;
  }
  setItem(key, value) {
    this.#items.set(key, String(value));
  }
  removeItem(key) {
    this.#items.delete(key);
  }
}

/** A WebSocket class whose instances the test drives as the server. */
function fakeSocketClass() {
  const sockets = [];
  class FakeSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      this.readyState = 1;
      sockets.push(this);
    }
    send(text) {
      const frame = JSON.parse(text);
      this.sent.push(frame);
      // A live server answers pings at once.
      if (frame.type === 'ping' && this.autoPong) queueMicrotask(() => this.receive({ type: 'pong' }));
    }
    close(code = 1000) {
      this.readyState = 3;
      this.closedWith = code;
    }
    /** The server sends a frame. */
    receive(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    /** The server (or the network) closes the connection. */
    drop(code = 1006) {
      this.readyState = 3;
      this.onclose?.({ code });
    }
    sentOf(type) {
      return this.sent.filter((frame) => frame.type === type);
    }
  }
  return { FakeSocket, sockets };
}

const tick = (ms = 5) => new Promise((done) => setTimeout(done, ms));

/** A started client on fake sockets, with every emitted event recorded;
 *  stopped when the test ends, pass or fail (its timers would keep node up). */
async function connected(t, { cursors = {}, heads = [{ room_id: ROOM, last_seq: 0 }], storage = new MemoryStorage(), heartbeatMs = 20_000, rescueSend = null } = {}) {
  const { FakeSocket, sockets } = fakeSocketClass();
  const client = new ChatClient({
    url: ['ws://a/v1/ws', 'ws://b/v1/ws'],
    getToken: async () => 'header.eyJleHAiOjR9.signature',
    outbox: new Outbox({ key: 'outbox', storage }),
    rescueSend,
    backoff: new Backoff({ baseMs: 2, maxMs: 4, random: () => 0 }),
    WebSocket: FakeSocket,
  });
  const seen = [];
  for (const type of ['event', 'ack', 'sendFailed', 'changed', 'changeFailed', 'roomAdded', 'roomRemoved', 'synced', 'pending']) {
    client.on(type, (detail) => seen.push({ type, detail }));
  }
  t.after(() => client.stop());
  client.start(cursors);
  await tick();
  const hello = (socket, rooms = heads) =>
    socket.receive({ type: 'hello', session_id: '1', user: ME, rooms, heartbeat_ms: heartbeatMs });
  hello(sockets[0]);
  const events = () => seen.filter((e) => e.type === 'event').map((e) => e.detail.seq);
  return { client, sockets, seen, events, hello, storage };
}

function message(seq, extra = {}) {
  return { type: 'message', room_id: ROOM, seq, id: `e${seq}`, sender: 'them', ts: '2026-01-01T00:00:00Z', body: `m${seq}`, ...extra };
}

test('connects with the token as a subprotocol and syncs first, from the cursors it has', async (t) => {
  const { client, sockets } = await connected(t, {
    cursors: { [ROOM]: 7 },
    heads: [{ room_id: ROOM, last_seq: 9 }, { room_id: OTHER_ROOM, last_seq: 4 }],
  });
  const [socket] = sockets;
  assert.deepEqual(socket.protocols, ['chat.v1', 'bearer.header.eyJleHAiOjR9.signature']);
  assert.deepEqual(socket.sent[0], { type: 'sync', rooms: { [ROOM]: 7, [OTHER_ROOM]: 4 } });
  assert.equal(client.state, 'online');
});

test('hands each event over once, in seq order, and re-syncs a room when a gap shows', async (t) => {
  const { client, sockets, events } = await connected(t, { cursors: { [ROOM]: 0 } });
  const [socket] = sockets;
  socket.receive(message(1));
  socket.receive(message(1)); // a repeat
  socket.receive(message(3)); // 2 is missing
  socket.receive(message(4));
  assert.deepEqual(events(), [1]);
  assert.deepEqual(socket.sentOf('sync').at(-1), { type: 'sync', rooms: { [ROOM]: 1 } });
  assert.equal(socket.sentOf('sync').length, 2, 'one re-sync per gap, not one per event');
  for (const seq of [2, 3, 4]) socket.receive(message(seq)); // the replay
  socket.receive({ type: 'synced', room_id: ROOM, seq: 4 });
  socket.receive(message(4)); // live, already replayed
  assert.deepEqual(events(), [1, 2, 3, 4]);
  assert.equal(client.cursor(ROOM), 4);
});

test('a send stays pending until its ack, and is re-sent with the same client_id after a reconnect', async (t) => {
  const { client, sockets, seen, hello } = await connected(t);
  const entry = client.send(ROOM, 'hello');
  assert.deepEqual(client.pending(ROOM), [entry]);
  const first = sockets[0].sentOf('send');
  assert.equal(first.length, 1);
  sockets[0].drop(1012); // the gateway restarts before acknowledging
  assert.equal(client.state, 'waiting');
  await tick(20);
  assert.equal(sockets.length, 2, 'reconnected');
  assert.notEqual(sockets[1].url, sockets[0].url, 'to the next gateway');
  hello(sockets[1]);
  const again = sockets[1].sentOf('send');
  assert.equal(sockets[1].sent[0].type, 'sync', 'the sync still comes first');
  assert.deepEqual(again, first, 'the same frame, the same client_id');
  sockets[1].receive({ type: 'ack', client_id: entry.client_id, room_id: ROOM, seq: 1, id: 'e1', ts: 't' });
  assert.deepEqual(client.pending(), []);
  const acks = seen.filter((e) => e.type === 'ack');
  assert.equal(acks.length, 1);
  assert.equal(acks[0].detail.body, 'hello');
});

test('pending sends survive a reload: a new client on the same storage sends them', async (t) => {
  const storage = new MemoryStorage();
  const before = await connected(t, { storage });
  before.sockets[0].drop(1006);
  before.client.stop();
  const entry = before.client.send(ROOM, 'written offline');
  const after = await connected(t, { storage });
  assert.deepEqual(after.sockets[0].sentOf('send'), [
    { type: 'send', room_id: ROOM, client_id: entry.client_id, body: 'written offline' },
  ]);
});

test("a room's sends go one at a time, so a retried one never lands after a later one", async (t) => {
  const { client, sockets, seen } = await connected(t, {
    heads: [{ room_id: ROOM, last_seq: 0 }, { room_id: OTHER_ROOM, last_seq: 0 }],
  });
  const [socket] = sockets;
  const one = client.send(ROOM, 'one');
  const two = client.send(ROOM, 'two');
  const elsewhere = client.send(OTHER_ROOM, 'elsewhere');
  assert.deepEqual(socket.sentOf('send').map((f) => f.body), ['one', 'elsewhere'], 'rooms do not wait for each other');
  socket.receive({ type: 'error', code: 'rate_limited', message: 'slow down', ref: one.client_id });
  assert.deepEqual(socket.sentOf('send').map((f) => f.body), ['one', 'elsewhere'], '"two" waits for "one"');
  await new Promise((done) => setTimeout(done, 1100)); // the retry delay (1 s step)
  assert.deepEqual(socket.sentOf('send').map((f) => f.body), ['one', 'elsewhere', 'one']);
  socket.receive({ type: 'ack', client_id: one.client_id, room_id: ROOM, seq: 1, id: 'e1', ts: 't' });
  assert.deepEqual(socket.sentOf('send').map((f) => f.body), ['one', 'elsewhere', 'one', 'two']);
  socket.receive({ type: 'error', code: 'not_member', message: 'no', ref: two.client_id });
  const failed = seen.filter((e) => e.type === 'sendFailed');
  assert.equal(failed.length, 1);
  assert.equal(failed[0].detail.code, 'not_member');
  assert.deepEqual(client.pending().map((e) => e.client_id), [elsewhere.client_id]);
});

test('a send carries its files by id, with or without text; more files than a message takes are refused before queueing', async (t) => {
  const { client, sockets, seen } = await connected(t);
  const entry = client.send(ROOM, '', { attachments: ['a1', { id: 'a2', name: 'b.png', local: 'k/1' }] });
  assert.deepEqual(sockets[0].sentOf('send'), [{ type: 'send', room_id: ROOM, client_id: entry.client_id, body: '', attachments: ['a1', 'a2'] }]);
  sockets[0].receive({ type: 'ack', client_id: entry.client_id, room_id: ROOM, seq: 1, id: 'e1', ts: 't' });
  const ack = seen.find((e) => e.type === 'ack').detail;
  assert.deepEqual(ack.attachments, [{ id: 'a1' }, { id: 'a2', name: 'b.png', local: 'k/1' }], 'the ack says what the app kept of each file');
  assert.throws(() => client.send(ROOM, ''), RangeError, 'no text and no file');
  assert.throws(() => client.send(ROOM, '', { attachments: Array.from({ length: 11 }, (_, i) => `a${i}`) }), RangeError);
});

test('a send with files not yet uploaded is held, its room waits behind it, and it goes with its ids, after a reload too', async (t) => {
  const storage = new MemoryStorage();
  const before = await connected(t, { storage, heads: [{ room_id: ROOM, last_seq: 0 }, { room_id: OTHER_ROOM, last_seq: 0 }] });
  const held = before.client.send(ROOM, 'look', { attachments: [{ name: 'a.png', local: 'k/0' }] });
  before.client.send(ROOM, 'after it');
  before.client.send(OTHER_ROOM, 'elsewhere');
  assert.deepEqual(before.sockets[0].sentOf('send').map((f) => f.body), ['elsewhere'], 'held, and the room waits');
  before.client.stop();
  const after = await connected(t, { storage, heads: [{ room_id: ROOM, last_seq: 0 }, { room_id: OTHER_ROOM, last_seq: 0 }] });
  assert.deepEqual(after.sockets[0].sentOf('send').map((f) => f.body), ['elsewhere'], 'still held after a reload');
  assert.equal(after.client.setAttachments(held.client_id, [{ id: 'up1', name: 'a.png', local: 'k/0' }]), true);
  const sent = after.sockets[0].sentOf('send');
  assert.deepEqual(sent.at(-1), { type: 'send', room_id: ROOM, client_id: held.client_id, body: 'look', attachments: ['up1'] });
  after.sockets[0].receive({ type: 'ack', client_id: held.client_id, room_id: ROOM, seq: 1, id: 'e1', ts: 't' });
  assert.equal(after.sockets[0].sentOf('send').at(-1).body, 'after it', 'then the next one');
});

test('a send refused for its files may be held again in its place (same client_id); failSend gives one up with the reason', async (t) => {
  const asked = [];
  const { client, sockets, seen } = await connected(t, {
    rescueSend: (entry, error) => {
      asked.push(error.code);
      return asked.length === 1 ? { ...entry, attachments: entry.attachments.map(({ id, ...kept }) => kept) } : null;
    },
  });
  const entry = client.send(ROOM, 'x', { attachments: [{ id: 'old', name: 'a.txt', local: 'k/0' }] });
  client.send(ROOM, 'next');
  sockets[0].receive({ type: 'error', code: 'validation_failed', message: 'unknown attachment', ref: entry.client_id });
  assert.deepEqual(client.pending().map((e) => e.client_id), [entry.client_id, client.pending()[1].client_id], 'kept first in its room');
  assert.equal(client.pending()[0].attachments[0].id, undefined, 'held for a new upload');
  assert.equal(sockets[0].sentOf('send').length, 1, 'nothing more went out: the room waits');
  assert.equal(seen.filter((e) => e.type === 'sendFailed').length, 0);
  client.failSend(entry.client_id, 'file_lost', 'a.txt is no longer kept on this device');
  const failed = seen.filter((e) => e.type === 'sendFailed');
  assert.deepEqual([failed.length, failed[0].detail.code, failed[0].detail.entry.client_id], [1, 'file_lost', entry.client_id]);
  assert.equal(sockets[0].sentOf('send').at(-1).body, 'next', 'the room goes on');
});

test('my own message coming back settles its send even if the ack was lost', async (t) => {
  const { client, sockets, seen } = await connected(t, { cursors: { [ROOM]: 0 } });
  const entry = client.send(ROOM, 'mine');
  sockets[0].receive(message(1, { sender: ME.id, client_id: entry.client_id, body: 'mine' }));
  assert.deepEqual(client.pending(), []);
  assert.equal(seen.filter((e) => e.type === 'ack').length, 1);
});

test('the changes of a message are room events: handed over in seq order with the messages', async (t) => {
  const { sockets, seen } = await connected(t, { cursors: { [ROOM]: 0 } });
  const [socket] = sockets;
  socket.receive(message(1));
  socket.receive(message(2, { type: 'message_edited', target: 'e1', body: 'm1, edited' }));
  socket.receive(message(3, { type: 'reaction_added', target: 'e1', emoji: '👍' }));
  socket.receive(message(4, { type: 'reaction_removed', target: 'e1', emoji: '👍' }));
  socket.receive(message(5, { type: 'message_pinned', target: 'e1' }));
  socket.receive(message(6, { type: 'message_unpinned', target: 'e1' }));
  socket.receive(message(7, { type: 'message_deleted', target: 'e1' }));
  socket.receive(message(8));
  const events = seen.filter((e) => e.type === 'event').map((e) => e.detail.type);
  assert.deepEqual(events, ['message', 'message_edited', 'reaction_added', 'reaction_removed', 'message_pinned', 'message_unpinned', 'message_deleted', 'message']);
  assert.equal(socket.sentOf('sync').length, 1, 'no gap seen, so no re-sync');
});

test('a reply names the message it answers; a plain send does not', async (t) => {
  const { client, sockets } = await connected(t);
  const reply = client.send(ROOM, 'yes', { replyTo: 'e1' });
  sockets[0].receive({ type: 'ack', client_id: reply.client_id, room_id: ROOM, seq: 2, id: 'e2', ts: 't' });
  const plain = client.send(ROOM, 'no');
  assert.deepEqual(sockets[0].sentOf('send'), [
    { type: 'send', room_id: ROOM, client_id: reply.client_id, body: 'yes', reply_to: 'e1' },
    { type: 'send', room_id: ROOM, client_id: plain.client_id, body: 'no' },
  ]);
});

test('changes go out like sends: in order, one at a time per room, retried with their client_id, settled by ack or refusal', async (t) => {
  const { client, sockets, seen, hello } = await connected(t);
  const sent = client.send(ROOM, 'hello');
  const edit = client.edit(ROOM, 'e1', 'hello, edited');
  const react = client.react(ROOM, 'e1', '👍');
  assert.deepEqual(client.pending(ROOM).map((e) => e.client_id), [sent.client_id], 'pending() lists sends only');
  assert.deepEqual(client.pendingChanges(ROOM).map((e) => e.type), ['edit', 'react']);
  assert.deepEqual(sockets[0].sent.slice(1).map((f) => f.type), ['send'], 'the edit waits for the send');
  sockets[0].receive({ type: 'ack', client_id: sent.client_id, room_id: ROOM, seq: 1, id: 'e1', ts: 't' });
  assert.deepEqual(sockets[0].sent.at(-1), { type: 'edit', room_id: ROOM, client_id: edit.client_id, target: 'e1', body: 'hello, edited' });
  sockets[0].drop(1012); // the gateway restarts before acknowledging the edit
  await tick(20);
  hello(sockets[1]);
  assert.deepEqual(sockets[1].sent.slice(1), [{ type: 'edit', room_id: ROOM, client_id: edit.client_id, target: 'e1', body: 'hello, edited' }]);
  // The edit itself comes back before its ack: it is settled by it.
  sockets[1].receive(message(2, { type: 'message_edited', sender: ME.id, client_id: edit.client_id, target: 'e1', body: 'hello, edited' }));
  sockets[1].receive({ type: 'ack', client_id: edit.client_id, room_id: ROOM, seq: 2, id: 'e2', ts: 't' });
  assert.deepEqual(sockets[1].sent.at(-1), { type: 'react', room_id: ROOM, client_id: react.client_id, target: 'e1', emoji: '👍' });
  sockets[1].receive({ type: 'error', code: 'already_reacted', message: 'you already reacted', ref: react.client_id });
  const changed = seen.filter((e) => e.type === 'changed');
  assert.equal(changed.length, 1, 'settled once');
  assert.equal(changed[0].detail.entry.type, 'edit');
  assert.equal(changed[0].detail.seq, 2);
  const failed = seen.filter((e) => e.type === 'changeFailed');
  assert.deepEqual(failed.map((e) => [e.detail.entry.type, e.detail.code]), [['react', 'already_reacted']]);
  assert.equal(seen.filter((e) => e.type === 'sendFailed').length, 0);
  assert.deepEqual(client.pendingChanges(), []);
  const unpin = client.unpin(ROOM, 'e1');
  assert.deepEqual(sockets[1].sent.at(-1), { type: 'unpin', room_id: ROOM, client_id: unpin.client_id, target: 'e1' });
});

test('a change that could never be accepted is refused before it is queued', async (t) => {
  const { client } = await connected(t);
  assert.throws(() => client.change(ROOM, 'shout', 'e1'), RangeError);
  assert.throws(() => client.edit(ROOM, 'e1', '   '), RangeError);
  assert.throws(() => client.react(ROOM, 'e1', ''), RangeError);
  assert.throws(() => client.pin(ROOM, ''), RangeError);
  assert.deepEqual(client.pendingChanges(), []);
});

test('rooms come and go: room_added starts at its event, a room missing from hello is removed', async (t) => {
  const { client, sockets, seen, events, hello } = await connected(t, { cursors: { [ROOM]: 0 } });
  const room = { id: OTHER_ROOM, kind: 'private', name: 'g', topic: '', last_seq: 5 };
  sockets[0].receive({ type: 'room_added', room, seq: 5 });
  assert.equal(client.cursor(OTHER_ROOM), 4);
  sockets[0].receive({ ...message(5), room_id: OTHER_ROOM, type: 'member_joined', user: ME.id });
  assert.deepEqual(events(), [5]);
  sockets[0].drop(1006);
  await tick(20);
  hello(sockets[1], [{ room_id: OTHER_ROOM, last_seq: 5 }]);
  assert.deepEqual(seen.filter((e) => e.type === 'roomRemoved').map((e) => e.detail.room_id), [ROOM]);
  assert.deepEqual(sockets[1].sent[0], { type: 'sync', rooms: { [OTHER_ROOM]: 5 } });
});

test('follow() makes the session follow a room joined over REST, once', async (t) => {
  const { client, sockets } = await connected(t);
  client.follow(OTHER_ROOM, 3);
  client.follow(OTHER_ROOM, 9);
  assert.deepEqual(sockets[0].sentOf('sync').slice(1), [{ type: 'sync', rooms: { [OTHER_ROOM]: 3 } }]);
  assert.equal(client.cursor(OTHER_ROOM), 3);
});

test('a ping left unanswered for a heartbeat ends the connection; answered ones keep it', async (t) => {
  const { client, sockets } = await connected(t, { heartbeatMs: 40 });
  const [socket] = sockets;
  socket.autoPong = true;
  await tick(150);
  assert.ok(socket.sentOf('ping').length >= 2, 'it pings');
  assert.equal(client.state, 'online', 'answered pings keep it');
  socket.autoPong = false;
  const pings = socket.sentOf('ping').length;
  await tick(400);
  assert.equal(socket.closedWith, 4000);
  assert.ok(socket.sentOf('ping').length <= pings + 1, 'no new pings while one is unanswered');
  assert.notEqual(client.state, 'online');
});

test('calls: the session id from hello, call frames and signals out, call frames and call events in', async (t) => {
  const { client, sockets, events } = await connected(t, { cursors: { [ROOM]: 0 } });
  const [socket] = sockets;
  assert.equal(client.sessionId, '1');
  const calls = [];
  client.on('call', (frame) => calls.push(frame.call.id));
  assert.equal(client.callFrame('call_place', { room_id: ROOM, video: true }), true);
  assert.equal(client.signal('c1', 'ice', { candidate: 'x' }), true);
  assert.deepEqual(socket.sentOf('call_place'), [{ type: 'call_place', room_id: ROOM, video: true }]);
  assert.deepEqual(socket.sentOf('signal'), [{ type: 'signal', call_id: 'c1', kind: 'ice', payload: { candidate: 'x' } }]);
  socket.receive({ type: 'call', call: { id: 'c1', state: 'ringing' } });
  assert.deepEqual(calls, ['c1']);
  // The log's call events are room events like any other, carried by seq.
  socket.receive({ type: 'call_started', room_id: ROOM, seq: 1, id: 'e1', sender: 'me', ts: 't', call_id: 'c1', caller: 'me', callee: 'them', video: true });
  socket.receive({ type: 'call_ended', room_id: ROOM, seq: 2, id: 'e2', sender: 'me', ts: 't', call_id: 'c1', caller: 'me', callee: 'them', reason: 'missed' });
  assert.deepEqual(events(), [1, 2]);
  socket.drop(1006);
  assert.equal(client.sessionId, null, 'no session without its socket');
  assert.equal(client.callFrame('call_hangup', { call_id: 'c1' }), false, 'not queued');
});

test('Outbox: tabs sharing a storage add and remove without losing each other’s sends', () => {
  const storage = new MemoryStorage();
  const tabA = new Outbox({ key: 'k', storage });
  const tabB = new Outbox({ key: 'k', storage });
  tabA.add({ client_id: 'a1', room_id: ROOM, body: 'a', created_at: 1 });
  tabB.add({ client_id: 'b1', room_id: ROOM, body: 'b', created_at: 2 });
  tabA.remove('a1');
  assert.deepEqual(tabB.list().map((e) => e.client_id), ['b1']);
});

test('Backoff: exponential, jittered within the upper half, capped, and reset', () => {
  const backoff = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 1 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => backoff.next()), [100, 200, 400, 800, 1000, 1000]);
  backoff.reset();
  backoff.random = () => 0;
  assert.equal(backoff.next(), 50, 'never below half the step');
});

test('jwtTimes reads iat and exp without verifying', () => {
  const payload = Buffer.from(JSON.stringify({ iat: 100, exp: 1000 })).toString('base64url');
  assert.deepEqual(jwtTimes(`h.${payload}.s`), { issuedAt: 100_000, expiresAt: 1_000_000 });
  assert.equal(jwtTimes('not a token'), null);
});
