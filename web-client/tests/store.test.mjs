// Unit tests of the page's store (store.js): actions applied by their
// functions, the topics subscribers hear, and the counts the room list shows.
// No browser. Run: node --test web-client/tests/store.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Store, canDelete, canPin, handleOf, timelineOf, unreadCounts, userName } from '../store.js';

const ME = { id: 'me', username: 'me', display_name: 'Me' };
const ROOM = { id: 'r', kind: 'public', name: 'general', topic: '', last_seq: 10, last_read_seq: 8, unread: 2, unread_mentions: 1, role: 'member' };

function message(seq, extra = {}) {
  return { type: 'message', room_id: 'r', seq, id: `e${seq}`, sender: 'them', ts: `2026-01-01T00:00:0${seq % 10}Z`, body: `m${seq}`, ...extra };
}

function loggedIn() {
  const store = new Store();
  store.dispatch({ type: 'loggedIn', user: ME });
  store.dispatch({ type: 'roomUpserted', room: ROOM });
  return store;
}

const flushed = () => new Promise((done) => queueMicrotask(done));

test('subscribers hear once per turn which topics changed', async () => {
  const store = loggedIn();
  const heard = [];
  store.subscribe((_state, changed) => heard.push([...changed].sort()));
  await flushed();
  heard.length = 0;
  store.dispatch({ type: 'event', event: message(11) });
  store.dispatch({ type: 'presence', userId: 'them', status: 'online' });
  await flushed();
  assert.deepEqual(heard, [['presence', 'rooms', 'timeline:r', 'typing:r']]);
  store.dispatch({ type: 'presence', userId: 'them', status: 'online' });
  await flushed();
  assert.equal(heard.length, 1, 'nothing changed, nothing heard');
  assert.throws(() => store.dispatch({ type: 'nonsense' }), /no action/);
});

test("unread and mention counts: the list's until my marker passes its head, then the live messages of others", () => {
  const store = loggedIn();
  const { state } = store;
  const room = () => state.rooms.get('r');
  assert.deepEqual(unreadCounts(state, room()), { unread: 2, mentions: 1 });
  store.dispatch({ type: 'event', event: message(11, { mentions: ['me'] }) });
  store.dispatch({ type: 'event', event: message(12, { mentions_room: true }) });
  store.dispatch({ type: 'event', event: message(13) });
  store.dispatch({ type: 'event', event: message(14, { sender: 'me', mentions: ['me'] }) });
  store.dispatch({ type: 'event', event: { ...message(15), type: 'reaction_added', target: 'e13', emoji: '👍' } });
  // My own message read the room up to it (the server moved my marker too).
  assert.equal(room().last_read_seq, 14);
  assert.deepEqual(unreadCounts(state, room()), { unread: 0, mentions: 0 });
  store.dispatch({ type: 'event', event: message(16, { mentions: ['me'] }) });
  store.dispatch({ type: 'event', event: message(17, { mentions: ['me'] }) });
  store.dispatch({ type: 'event', event: { ...message(18), type: 'message_deleted', target: 'e17' } });
  assert.deepEqual(unreadCounts(state, room()), { unread: 2, mentions: 1 }, 'a deleted mention counts as a message, not a mention');
  store.dispatch({ type: 'readMarked', roomId: 'r', seq: 18 });
  assert.deepEqual(unreadCounts(state, room()), { unread: 0, mentions: 0 });
});

test('an ack shows my message delivered at once; its event brings the rest', () => {
  const store = loggedIn();
  const { state } = store;
  store.dispatch({
    type: 'acked',
    ack: { client_id: 'c1', room_id: 'r', seq: 11, id: 'e11', ts: 't', body: 'yes' },
    entry: { client_id: 'c1', reply_to: 'e10' },
  });
  const tl = timelineOf(state, 'r');
  assert.equal(tl.item(11).provisional, true);
  assert.equal(tl.item(11).reply_to, 'e10');
  store.dispatch({ type: 'event', event: message(11, { sender: 'me', client_id: 'c1', body: 'yes', reply_to: 'e10', reply_preview: { sender: 'them', body: 'm10' } }) });
  assert.equal(tl.item(11).provisional, undefined);
  assert.deepEqual(tl.item(11).reply_preview, { sender: 'them', body: 'm10' });
});

test('the pins follow pin, unpin, edit and delete events; a pin of a message not held here makes the list stale', () => {
  const store = loggedIn();
  const { state } = store;
  store.dispatch({ type: 'timelinePage', roomId: 'r', items: [message(9), message(10)], lastSeq: 10 });
  store.dispatch({ type: 'pinsLoaded', roomId: 'r', pins: [], after: 10 });
  const pins = () => state.pins.get('r').items.map((p) => `${p.id}:${p.body}`);
  store.dispatch({ type: 'event', event: { ...message(11), type: 'message_pinned', target: 'e9' } });
  store.dispatch({ type: 'event', event: { ...message(12), type: 'message_pinned', target: 'e10' } });
  assert.deepEqual(pins(), ['e10:m10', 'e9:m9'], 'the latest pin first');
  store.dispatch({ type: 'event', event: { ...message(13), type: 'message_edited', target: 'e9', body: 'm9, edited' } });
  assert.deepEqual(pins(), ['e10:m10', 'e9:m9, edited']);
  store.dispatch({ type: 'event', event: { ...message(14), type: 'message_unpinned', target: 'e10' } });
  store.dispatch({ type: 'event', event: { ...message(15), type: 'message_deleted', target: 'e9' } });
  assert.deepEqual(pins(), []);
  store.dispatch({ type: 'event', event: { ...message(16), type: 'message_pinned', target: 'e1' } });
  assert.equal(state.pins.get('r').stale, true);
});

test('a pin list read while changes came is brought up to date with them', () => {
  const store = loggedIn();
  const { state } = store;
  store.dispatch({ type: 'timelinePage', roomId: 'r', items: [message(9)], lastSeq: 10 });
  // Asked at seq 10; the unpin (11) came before the answer, which still has the pin.
  store.dispatch({ type: 'event', event: { ...message(11), type: 'message_unpinned', target: 'e9' } });
  store.dispatch({ type: 'pinsLoaded', roomId: 'r', pins: [{ ...message(9), pinned: { by: 'x', at: 't' } }], after: 10 });
  assert.deepEqual(state.pins.get('r').items, []);
});

test('members, roles and room changes from events, without reading anything again', () => {
  const store = loggedIn();
  const { state } = store;
  store.dispatch({
    type: 'membersLoaded',
    roomId: 'r',
    members: [ME, { id: 'them', username: 'them', display_name: 'Them' }].map((user) => ({ user, role: 'member', last_read_seq: 0 })),
  });
  store.dispatch({ type: 'event', event: { ...message(11), type: 'member_joined', user: 'new' } });
  store.dispatch({ type: 'event', event: { ...message(12), type: 'member_left', user: 'them', reason: 'left' } });
  store.dispatch({ type: 'event', event: { ...message(13), type: 'role_changed', user: 'me', role: 'admin' } });
  store.dispatch({ type: 'event', event: { ...message(14), type: 'room_updated', name: 'lobby', topic: 'hi' } });
  assert.deepEqual([...state.members.get('r')], [['me', 'admin'], ['new', 'member']]);
  const room = state.rooms.get('r');
  assert.equal(room.role, 'admin');
  assert.equal(room.name, 'lobby');
  assert.equal(canPin(room), true);
  assert.equal(canDelete(state, room, message(1)), true, "an admin deletes another's message");
  assert.equal(canDelete(state, { ...room, role: 'member' }, message(1)), false);
  assert.equal(canPin({ kind: 'direct', role: 'member' }), true, 'either member pins in a DM');
});

test('events of a room not in the list are left to the room list', () => {
  const store = loggedIn();
  store.dispatch({ type: 'event', event: { ...message(1), room_id: 'elsewhere' } });
  assert.equal(store.state.timelines.has('elsewhere'), false);
});

test('a profile update renames the user everywhere, me included, and a removed avatar is gone', async () => {
  const store = loggedIn();
  const heard = [];
  store.subscribe((_state, changed) => heard.push(...changed));
  store.dispatch({ type: 'profileUpdated', user: { ...ME, display_name: 'Me Again', avatar: '/v1/avatars/me/v1' } });
  await flushed();
  assert.equal(store.state.me.display_name, 'Me Again');
  assert.equal(store.state.me.avatar, '/v1/avatars/me/v1');
  assert.equal(userName(store.state, 'me'), 'Me Again');
  assert.ok(heard.includes('me') && heard.includes('users'));
  store.dispatch({ type: 'profileUpdated', user: { ...ME, display_name: 'Me Again' } });
  assert.equal(store.state.me.avatar, null);
  // Someone else's update leaves me alone.
  store.dispatch({ type: 'profileUpdated', user: { id: 'them', username: 'them', display_name: 'Them' } });
  assert.equal(store.state.me.display_name, 'Me Again');
  assert.equal(userName(store.state, 'them'), 'Them');
});

test('a deleted account shows no @handle; everyone else does', () => {
  const store = loggedIn();
  store.dispatch({ type: 'usersSeen', users: [{ id: 'gone', username: `deleted-${'0'.repeat(32)}`, display_name: 'deleted user' }] });
  assert.equal(handleOf(store.state, 'gone'), null);
  assert.equal(userName(store.state, 'gone'), 'deleted user');
  assert.equal(handleOf(store.state, 'me'), 'me');
  store.dispatch({ type: 'usersSeen', users: [{ id: 'dash', username: 'deleted-bob', display_name: 'Bob' }] });
  assert.equal(handleOf(store.state, 'dash'), 'deleted-bob', 'a real username that starts so is a handle');
  assert.equal(handleOf(store.state, 'nobody'), null);
});
