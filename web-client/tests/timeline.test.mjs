// Unit tests of the room timeline (timeline.js): pages and live events
// merged by seq, and the changes of messages applied once each, whatever
// order pages and the socket deliver them in.
// Run: node --test web-client/tests/timeline.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RoomTimeline, applyChange, previewAfter } from '../timeline.js';

const ME = 'me';
const ROOM = 'r';

function message(seq, extra = {}) {
  return { type: 'message', room_id: ROOM, seq, id: `e${seq}`, sender: 'them', ts: `t${seq}`, body: `m${seq}`, ...extra };
}

function change(seq, type, target, extra = {}) {
  return { type, room_id: ROOM, seq, id: `e${seq}`, sender: 'them', ts: `t${seq}`, target: `e${target}`, ...extra };
}

test('live messages and pages merge by seq, each shown once', () => {
  const tl = new RoomTimeline(ME);
  tl.addEvent(message(3));
  tl.addPage([message(1), message(2), message(3)], { lastSeq: 3, isOldest: true });
  tl.addEvent(message(3));
  tl.addEvent(message(4));
  assert.deepEqual(tl.items().map((i) => i.seq), [1, 2, 3, 4]);
  assert.equal(tl.hasOlder, false);
  assert.equal(tl.headSeq, 4);
});

test('an edit, a deletion, reactions and pins change the message they target', () => {
  const tl = new RoomTimeline(ME);
  tl.addPage([message(1)], { lastSeq: 1 });
  tl.addEvent(change(2, 'message_edited', 1, { body: 'hello @me', mentions: [ME] }));
  tl.addEvent(change(3, 'reaction_added', 1, { emoji: '👍' }));
  tl.addEvent(change(4, 'reaction_added', 1, { emoji: '👍', sender: ME }));
  tl.addEvent(change(5, 'message_pinned', 1));
  let item = tl.byId('e1');
  assert.equal(item.body, 'hello @me');
  assert.equal(item.edited_at, 't2');
  assert.deepEqual(item.mentions, [ME]);
  assert.deepEqual(item.reactions, [{ emoji: '👍', count: 2, me: true, users: ['them', ME] }]);
  assert.deepEqual(item.pinned, { by: 'them', at: 't5' });
  tl.addEvent(change(6, 'reaction_removed', 1, { emoji: '👍', sender: ME }));
  assert.deepEqual(item.reactions, [{ emoji: '👍', count: 1, me: false, users: ['them'] }]);
  tl.addEvent(change(7, 'message_unpinned', 1));
  assert.equal(item.pinned, null);
  tl.addEvent(change(8, 'message_deleted', 1));
  item = tl.byId('e1');
  assert.equal(item.deleted, true);
  assert.equal(item.body, '');
  assert.deepEqual(item.reactions, []);
  assert.equal(tl.items().length, 1, 'changes are not items');
  assert.equal(tl.headSeq, 8);
});

test('a page read after a change already has it: the change is not applied twice', () => {
  const tl = new RoomTimeline(ME);
  // The reaction comes live first, before the room's page is read…
  tl.addEvent(message(1));
  tl.addEvent(change(2, 'reaction_added', 1, { emoji: '🎉' }));
  // …and the page (read after it) counts it already.
  tl.addPage([{ ...message(1), reactions: [{ emoji: '🎉', count: 1, me: false, users: ['them'] }] }], { lastSeq: 2 });
  assert.deepEqual(tl.byId('e1').reactions, [{ emoji: '🎉', count: 1, me: false, users: ['them'] }]);
  // A repeat of the change (seq at or below the page's) changes nothing.
  tl.addEvent(change(2, 'reaction_added', 1, { emoji: '🎉' }));
  assert.equal(tl.byId('e1').reactions[0].count, 1);
});

test('a page read before a change came gets the change replayed onto it', () => {
  const tl = new RoomTimeline(ME);
  tl.addEvent(change(5, 'message_edited', 1, { body: 'new text' }));
  tl.addEvent(change(6, 'reaction_added', 1, { emoji: '👍' }));
  // The page was read at seq 4, before either.
  tl.addPage([message(1)], { lastSeq: 4 });
  const item = tl.byId('e1');
  assert.equal(item.body, 'new text');
  assert.equal(item.reactions[0].count, 1);
  assert.equal(item.asOf, 6);
});

test('a message the ack showed is replaced by its event, with what changed it since', () => {
  const tl = new RoomTimeline(ME);
  tl.addEvent(message(1, { sender: ME, client_id: 'c1', reply_to: 'e0' }), { provisional: true });
  assert.equal(tl.item(1).provisional, true);
  tl.addEvent(message(1, { sender: ME, client_id: 'c1', reply_to: 'e0', reply_preview: { sender: 'them', body: 'q' }, mentions: ['x'] }));
  assert.equal(tl.item(1).provisional, undefined);
  assert.deepEqual(tl.item(1).reply_preview, { sender: 'them', body: 'q' });
});

test('replies quote the answered message as it is now', () => {
  const tl = new RoomTimeline(ME);
  tl.addPage([message(1), message(2, { reply_to: 'e1', reply_preview: { sender: 'them', body: 'm1' } })], { lastSeq: 2 });
  tl.addEvent(change(3, 'message_edited', 1, { body: 'm1, better' }));
  assert.deepEqual(tl.item(2).reply_preview, { sender: 'them', body: 'm1, better' });
  tl.addEvent(change(4, 'message_deleted', 1));
  assert.deepEqual(tl.item(2).reply_preview, { sender: 'them', body: '', deleted: true });
  assert.equal(previewAfter({ sender: 'a', body: 'x' }, { type: 'message_edited', body: 'y'.repeat(300) }).body.length, 100);
});

test('nothing changes a tombstone, and erased changes (sync after a deletion) change nothing', () => {
  const item = { type: 'message', id: 'e1', body: '', deleted: true, reactions: [], mentions: [] };
  assert.equal(applyChange(item, { type: 'reaction_added', emoji: '👍', sender: 'x' }, ME), false);
  const live = { type: 'message', id: 'e1', body: 'hi', deleted: false, reactions: [], mentions: [] };
  assert.equal(applyChange(live, { type: 'message_edited', body: '', deleted: true }, ME), false);
  assert.equal(live.body, 'hi');
});

test('reactions beyond the named users count right, and a removal not counted here is ignored', () => {
  const item = { type: 'message', reactions: [{ emoji: '👍', count: 5, me: false, users: ['a', 'b', 'c'] }], mentions: [] };
  applyChange(item, { type: 'reaction_added', emoji: '👍', sender: 'd' }, ME);
  assert.deepEqual(item.reactions[0], { emoji: '👍', count: 6, me: false, users: ['a', 'b', 'c'] });
  applyChange(item, { type: 'reaction_removed', emoji: '👍', sender: 'a' }, ME);
  assert.deepEqual(item.reactions[0], { emoji: '👍', count: 5, me: false, users: ['b', 'c'] });
  applyChange(item, { type: 'reaction_removed', emoji: '👍', sender: ME }, ME);
  assert.equal(item.reactions[0].count, 5, 'I had not reacted');
  applyChange(item, { type: 'reaction_added', emoji: '👍', sender: 'b' }, ME);
  assert.equal(item.reactions[0].count, 5, 'b is counted already');
});

test('older pages grow the timeline backwards and say so', () => {
  const tl = new RoomTimeline(ME);
  tl.addPage([message(51), message(52)], { lastSeq: 60 });
  assert.equal(tl.hasOlder, true);
  tl.addPage([message(1), message(2)], { lastSeq: 60, isOldest: true, older: true });
  assert.equal(tl.prepends, 1);
  assert.equal(tl.hasOlder, false);
  assert.deepEqual(tl.items().map((i) => i.seq), [1, 2, 51, 52]);
  assert.deepEqual(tl.changesAfter(0), []);
});

test("a message's files stay with it until it is deleted, which takes them away", () => {
  const tl = new RoomTimeline(ME);
  const file = { id: 'a1', name: 'a.png', content_type: 'image/png', size: 10, width: 2, height: 1, thumbnail: true };
  tl.addPage([message(1, { body: '', attachments: [file] }), message(2)], { lastSeq: 2 });
  assert.deepEqual(tl.byId('e1').attachments, [file]);
  assert.deepEqual(tl.byId('e2').attachments, [], 'none: an empty list');
  tl.addEvent(change(3, 'message_edited', 1, { body: 'with words now' }));
  assert.deepEqual(tl.byId('e1').attachments, [file], 'an edit keeps them');
  tl.addEvent(change(4, 'message_deleted', 1));
  assert.deepEqual(tl.byId('e1').attachments, []);
});
