// Unit tests of moderation in the page's state (store.js) and of the
// invite link addresses (view-invites.js): mutes from the member list and
// from events, mine on the room, who may moderate whom, slow mode from its
// event, and the `#join=<code>` route. No browser.
// Run: node --test web-client/tests/moderation.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Store, canModerate, canSetSlowMode, mutedUntil } from '../store.js';
import { joinCode, joinUrl } from '../view-invites.js';

const ME = { id: 'me', username: 'me', display_name: 'Me' };
const ROOM = { id: 'r', kind: 'public', name: 'general', topic: '', last_seq: 3, last_read_seq: 3, role: 'admin' };
const LATER = new Date(Date.now() + 600_000).toISOString();

function member(id, role, muted_until) {
  return { user: { id, username: id, display_name: id }, role, last_read_seq: 0, ...(muted_until ? { muted_until } : {}) };
}

function loggedIn(room = ROOM) {
  const store = new Store();
  store.dispatch({ type: 'loggedIn', user: ME });
  store.dispatch({ type: 'roomUpserted', room });
  store.dispatch({
    type: 'membersLoaded',
    roomId: 'r',
    members: [member('me', room.role), member('bob', 'member', LATER), member('owner', 'owner')],
  });
  return store;
}

function event(seq, type, fields) {
  return { type, room_id: 'r', seq, id: `e${seq}`, sender: 'owner', ts: new Date().toISOString(), ...fields };
}

test('mutes come from the member list and from events; an ended one is none', () => {
  const store = loggedIn();
  const { state } = store;
  assert.equal(mutedUntil(state, 'r', 'bob')?.toISOString(), LATER);
  store.dispatch({ type: 'event', event: event(4, 'member_unmuted', { user: 'bob' }) });
  assert.equal(mutedUntil(state, 'r', 'bob'), null);
  store.dispatch({ type: 'event', event: event(5, 'member_muted', { user: 'bob', until: LATER }) });
  assert.ok(mutedUntil(state, 'r', 'bob'));
  assert.equal(mutedUntil(state, 'r', 'bob', Date.parse(LATER) + 1), null, 'over once its time has passed');
});

test('my own mute is on my room, set and lifted by events', () => {
  const store = loggedIn({ ...ROOM, role: 'member', muted_until: LATER });
  const { state } = store;
  assert.equal(mutedUntil(state, 'r', 'me')?.toISOString(), LATER);
  store.dispatch({ type: 'event', event: event(4, 'member_unmuted', { user: 'me' }) });
  assert.equal(mutedUntil(state, 'r', 'me'), null);
  assert.equal(state.rooms.get('r').muted_until, undefined);
});

test('owners and admins moderate members below them only, never in a DM', () => {
  const { state } = loggedIn();
  const room = state.rooms.get('r');
  assert.equal(canModerate(state, room, 'bob'), true);
  assert.equal(canModerate(state, room, 'owner'), false);
  assert.equal(canModerate(state, room, 'me'), false);
  assert.equal(canSetSlowMode(room), true);
  assert.equal(canModerate(state, { ...room, kind: 'direct' }, 'bob'), false);
  assert.equal(canModerate(state, { ...room, role: 'member' }, 'bob'), false);
});

test('slow mode follows its event', () => {
  const store = loggedIn();
  store.dispatch({ type: 'event', event: event(4, 'slow_mode_changed', { seconds: 30 }) });
  assert.equal(store.state.rooms.get('r').slow_mode_seconds, 30);
});

test('an invite link address carries its code, and only a well-formed one is taken', () => {
  const code = 'AbC-_0123456789abcdefgh';
  const url = joinUrl(code, 'https://chat.example');
  assert.equal(url, `https://chat.example/#join=${code}`);
  assert.equal(joinCode(new URL(url).hash), code);
  assert.equal(joinCode('#join='), null);
  assert.equal(joinCode('#join=a/b'), null);
  assert.equal(joinCode('#other=abc'), null);
});
