/**
 * The open room's timeline: messages (formatted, with replies, reactions,
 * pins, edits and tombstones), their files (`view-attachments.js`), room
 * notices (a call as one line: how it ended, or its start while it
 * lasts), my pending and failed sends, and each message's actions (reply,
 * react, edit, delete, pin), shown on hover, keyboard focus or a long press. Rows are keyed, and only those
 * whose data changed are built again.
 *
 * @module view-messages
 */

import { byId, h, reconcile } from './dom.js';
import { callSummary, format, plainText } from './format.js';
import { requestReport } from './view-admin.js';
import { canDelete, canPin, currentRoom, handleOf, mentionsMe, timelineOf, userName } from './store.js';
import { createAttachmentViews } from './view-attachments.js';
import { filesText } from './attachments.js';

/** Within this distance of the bottom the view follows new messages. */
const NEAR_BOTTOM_PX = 80;
/** A press this long on a touch screen shows a message's actions. */
const LONG_PRESS_MS = 500;
/** How long a jumped-to message stays highlighted. */
const HIGHLIGHT_MS = 2500;

/** The emoji the picker offers first. */
export const COMMON_EMOJI = Object.freeze(['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀']);

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(text: string, ok: string) => Promise<boolean>} deps.confirm
 * @param {(text: string) => void} deps.notify
 */
export function mountMessages({ store, actions, confirm, notify }) {
  const { state } = store;
  const { attachmentList, closeLightbox } = createAttachmentViews({ links: actions.links, notify });
  const el = {
    box: byId('messages'),
    list: byId('message-list'),
    loadOlder: byId('load-older'),
    historyStart: byId('history-start'),
    picker: byId('reaction-picker'),
    choices: byId('reaction-choices'),
    reactionForm: byId('reaction-form'),
    reactionInput: byId('reaction-input'),
  };
  /** Rows on screen, by key: `c:<client_id>` for my messages (pending and
   *  delivered share it, so the row just changes state), `s:<seq>` else. */
  const rows = new Map();
  let shownRoomId = null;
  let shownPrepends = 0;
  let forceBottom = false;
  /** Texts being edited, by seq, so a row built again keeps what was typed. */
  const drafts = new Map();
  /** The message the picker reacts to. */
  let pickerFor = null;
  /** The message jumped to, highlighted until then (kept if its row is built again). */
  let highlighted = null;
  /** Messages of people I block that I chose to see anyway, by event id. */
  const revealed = new Set();

  // --- rendering -------------------------------------------------------------------

  function render(_state, changed) {
    const room = currentRoom(state);
    if (!room) {
      shownRoomId = null;
      rows.clear();
      el.list.replaceChildren();
      closePicker();
      closeLightbox();
      return;
    }
    const id = room.id;
    if (id !== shownRoomId) {
      shownRoomId = id;
      rows.clear();
      drafts.clear();
      el.list.replaceChildren();
      forceBottom = true;
      shownPrepends = timelineOf(state, id).prepends;
      closePicker();
    } else if (!['current', `timeline:${id}`, `members:${id}`, 'outbox', 'users', 'ui', 'blocks'].some((t) => changed.has(t))) {
      return;
    }
    const tl = timelineOf(state, id);
    const box = el.box;
    const fromBottom = box.scrollHeight - box.scrollTop;
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
    const prepending = tl.prepends !== shownPrepends;
    shownPrepends = tl.prepends;
    const editorFocused = document.activeElement?.classList.contains('edit-input');
    reconcile(el.list, messageItems(room), (item) => buildRow(room.id, item), rows);
    el.loadOlder.hidden = !tl.hasOlder || !tl.loadedLatest;
    el.loadOlder.disabled = tl.loading;
    el.historyStart.hidden = tl.hasOlder;
    if (forceBottom || (nearBottom && !prepending)) box.scrollTop = box.scrollHeight;
    else if (prepending) box.scrollTop = box.scrollHeight - fromBottom;
    forceBottom = false;
    focusEditor(editorFocused);
    if (highlighted && highlighted.until > Date.now()) rowOf(highlighted.id)?.classList.add('highlight');
    if (isReading()) actions.seen(id);
  }

  /** What the list shows: the room's items in seq order, then my pending and failed sends. */
  function messageItems(room) {
    const tl = timelineOf(state, room.id);
    const items = [];
    const mine = new Set();
    let previous = null;
    const direct = room.kind === 'direct';
    const edits = new Map();
    const deletes = new Set();
    for (const entry of state.outbox) {
      if (entry.room_id !== room.id) continue;
      if (entry.type === 'edit') edits.set(entry.target, entry.body);
      if (entry.type === 'delete') deletes.add(entry.target);
    }
    // A call is one line: its start is folded into its end once that is
    // held, which names it with its length (and as a video call, from its start).
    const endedCalls = new Set();
    const videoCalls = new Set();
    for (const event of tl.items()) {
      if (event.type === 'call_ended') endedCalls.add(event.call_id);
      if (event.type === 'call_started' && event.video) videoCalls.add(event.call_id);
    }
    for (const event of tl.items()) {
      // A DM's two members arrive with it; "X added Y" there says nothing.
      if (direct && event.type === 'member_joined') continue;
      if (event.type === 'call_started' && endedCalls.has(event.call_id)) continue;
      if (event.type === 'message' && state.blocked.has(event.sender) && !revealed.has(event.id)) {
        // The log is the log, but what people I block write stays folded.
        previous = { key: `s:${event.seq}`, kind: 'blocked', seq: event.seq, id: event.id };
        items.push(previous);
        continue;
      }
      const item =
        event.type === 'message'
          ? messageItem(room, tl, event, previous, edits, deletes)
          : event.type === 'call_started' || event.type === 'call_ended'
            ? callItem(event, videoCalls.has(event.call_id))
            : noticeItem(event);
      if (item.mine && event.client_id) mine.add(event.client_id);
      items.push(item);
      previous = item;
    }
    for (const entry of state.outbox) {
      // Committed already (seen in history) even if its ack is still to come.
      if (entry.type || entry.room_id !== room.id || mine.has(entry.client_id)) continue;
      previous = pendingItem(tl, entry, 'pending', previous);
      items.push(previous);
    }
    for (const failure of state.failed.values()) {
      if (failure.entry.room_id !== room.id) continue;
      previous = pendingItem(tl, failure.entry, 'failed', previous, failure.message);
      items.push(previous);
    }
    return items;
  }

  function messageItem(room, tl, event, previous, edits, deletes) {
    const mine = event.sender === state.me.id;
    const editing = state.ui.editing?.roomId === room.id && state.ui.editing.seq === event.seq && !event.deleted;
    const pendingBody = edits.get(event.id);
    const live = !event.deleted && !deletes.has(event.id);
    return {
      key: mine && event.client_id ? `c:${event.client_id}` : `s:${event.seq}`,
      kind: 'message',
      mine,
      sender: event.sender,
      name: userName(state, event.sender),
      username: handleOf(state, event.sender),
      body: pendingBody ?? event.body,
      attachments: event.deleted ? [] : (event.attachments ?? []),
      deleted: event.deleted,
      deleting: deletes.has(event.id) && !event.deleted,
      saving: pendingBody !== undefined && !event.deleted,
      edited: event.edited_at ?? null,
      ts: event.ts,
      seq: event.seq,
      id: event.id,
      state: mine ? 'delivered' : 'received',
      seen: mine && seenByOthers(room.id, event.seq),
      continued: continues(previous, event.sender, event.ts) && !event.reply_to,
      reply: replyOf(tl, event.reply_to, event.reply_preview),
      reactions: event.deleted ? [] : event.reactions.map((r) => ({ emoji: r.emoji, count: r.count, me: r.me, who: reactors(r) })),
      pinned: Boolean(event.pinned),
      mentioned: mentionsMe(state, event),
      mentionNames: mentionNames(event),
      editing,
      can: live && !event.provisional
        ? { reply: true, react: true, edit: mine, delete: canDelete(state, room, event), pin: canPin(room), report: !mine && !event.deleted }
        : null,
    };
  }

  function pendingItem(tl, entry, sendState, previous, reason) {
    return {
      key: `c:${entry.client_id}`,
      kind: 'message',
      mine: true,
      sender: state.me.id,
      name: userName(state, state.me.id),
      username: state.me.username,
      body: entry.body,
      // Names, sizes and types (what only this page keeps stays out of the row's signature).
      attachments: (entry.attachments ?? []).map(({ local, ...file }) => file),
      upload: state.uploads.get(entry.client_id),
      ts: new Date(entry.created_at).toISOString(),
      clientId: entry.client_id,
      state: sendState,
      reason,
      reply: replyOf(tl, entry.reply_to, null),
      reactions: [],
      continued: continues(previous, state.me.id, entry.created_at) && !entry.reply_to,
    };
  }

  /** What a reply shows of the message it answers: the preview, or the message if held. */
  function replyOf(tl, replyTo, preview) {
    if (!replyTo) return null;
    const quoted = preview ?? tl.byId(replyTo) ?? null;
    if (!quoted) return { id: replyTo, name: '', text: 'a message', deleted: false };
    return {
      id: replyTo,
      name: userName(state, quoted.sender),
      text: quoted.deleted ? 'message deleted' : plainText(quoted.body ?? '') || filesText(quoted.attachments),
      deleted: Boolean(quoted.deleted),
    };
  }

  function reactors(reaction) {
    const names = reaction.users.map((id) => (id === state.me.id ? 'you' : userName(state, id)));
    const others = reaction.count - names.length;
    return others > 0 ? `${names.join(', ')} and ${others} more` : names.join(', ');
  }

  function mentionNames(event) {
    const names = (event.mentions ?? []).map((id) => state.users.get(id)?.username?.toLowerCase()).filter(Boolean);
    if (event.mentions_room) names.push('room');
    return names;
  }

  function noticeItem(event) {
    return { key: `s:${event.seq}`, kind: 'notice', seq: event.seq, text: noticeText(event) };
  }

  /** A call's line in the timeline: started (ringing or in progress), or how it ended. */
  function callItem(event, video) {
    const text =
      event.type === 'call_started'
        ? `${userName(state, event.caller)} started a ${video ? 'video ' : ''}call`
        : callSummary(event, { video, iAmCaller: event.caller === state.me.id });
    return { key: `s:${event.seq}`, kind: 'notice', call: event.type, seq: event.seq, text };
  }

  function noticeText(event) {
    const who = userName(state, event.user);
    const by = userName(state, event.sender);
    switch (event.type) {
      case 'member_joined':
        return event.sender && event.sender !== event.user ? `${by} added ${who}` : `${who} joined`;
      case 'member_left':
        if (event.reason === 'kicked') return `${by} removed ${who}`;
        if (event.reason === 'banned') return `${by} banned ${who}`;
        return `${who} left`;
      case 'role_changed':
        return event.role === 'owner' ? `${who} now owns the room` : `${who} is now ${event.role === 'admin' ? 'an admin' : 'a member'}`;
      case 'room_updated':
        return `${by} renamed the room to “${event.name}”${event.topic ? ` — ${event.topic}` : ''}`;
      case 'member_muted':
        return `${by} muted ${who} until ${new Date(event.until).toLocaleString()}`;
      case 'member_unmuted':
        return `${by} unmuted ${who}`;
      // An invitee shares no room with us yet: their name may be unknown.
      case 'member_invited':
        return `${by} invited ${state.users.has(event.user) ? who : 'someone'}`;
      case 'invite_declined':
        return `${state.users.has(event.user) ? who : 'someone'} declined the invitation`;
      case 'invite_cancelled':
        return `${by} withdrew the invitation of ${state.users.has(event.user) ? who : 'someone'}`;
      case 'slow_mode_changed':
        return event.seconds ? `${by} turned slow mode on: one message every ${event.seconds} s` : `${by} turned slow mode off`;
      default:
        return `${by}: ${event.type}`;
    }
  }

  function seenByOthers(roomId, seq) {
    const marks = state.readMarks.get(roomId);
    if (!marks) return false;
    return [...marks].some(([userId, read]) => userId !== state.me.id && read >= seq);
  }

  // --- rows ---------------------------------------------------------------------------

  function buildRow(roomId, item) {
    if (item.kind === 'blocked') return blockedRow(roomId, item);
    if (item.kind !== 'notice') return messageRow(roomId, item);
    return item.call
      ? h('li', { className: 'notice call-notice', dataset: { key: item.key, seq: item.seq, call: item.call, testid: 'call-event' } }, item.text)
      : h('li', { className: 'notice', dataset: { key: item.key, seq: item.seq } }, item.text);
  }

  /** A message from someone I block, folded: shown only when asked. */
  function blockedRow(roomId, item) {
    return h(
      'li',
      { className: 'blocked-message', dataset: { key: item.key, seq: item.seq, id: item.id } },
      h('span', { className: 'hint' }, 'Message from a blocked user'),
      ' — ',
      h(
        'button',
        {
          type: 'button',
          className: 'link',
          on: {
            click: () => {
              revealed.add(item.id);
              store.touch(`timeline:${roomId}`);
            },
          },
        },
        'show',
      ),
    );
  }

  function messageRow(roomId, item) {
    const dataset = { key: item.key, state: item.state };
    if (item.seq) dataset.seq = item.seq;
    if (item.id) dataset.id = item.id;
    const classes = ['msg'];
    if (item.mine) classes.push('mine');
    if (item.mentioned) classes.push('mentioned');
    if (item.pinned) classes.push('pinned');
    if (item.deleted) classes.push('deleted');
    const time = h('time', { className: 'time', dateTime: item.ts }, formatTime(item.ts));
    const row = h(
      'li',
      { className: classes.join(' '), dataset },
      item.continued
        ? null
        : h(
            'div',
            { className: 'meta' },
            h('span', { className: 'sender' }, item.name),
            item.username ? h('small', { className: 'handle' }, `@${item.username}`) : null,
            time,
          ),
      h(
        'div',
        { className: 'bubble', title: new Date(item.ts).toLocaleString() },
        item.reply ? replyPreview(item.reply) : null,
        item.editing ? editor(roomId, item) : body(item),
        attachmentList(item),
        item.pinned ? h('span', { className: 'pin-mark', title: 'Pinned in this room' }, 'pinned') : null,
        item.edited && !item.deleted ? h('span', { className: 'edited', title: `Edited ${new Date(item.edited).toLocaleString()}` }, '(edited)') : null,
        item.saving ? h('span', { className: 'status' }, 'saving…') : null,
        item.deleting ? h('span', { className: 'status' }, 'deleting…') : null,
        item.mine && !item.deleted ? statusBadge(item) : null,
      ),
      item.reactions.length ? reactionChips(roomId, item) : null,
      item.can && !item.editing ? toolbar(roomId, item) : null,
    );
    if (item.can) longPress(row);
    return row;
  }

  function body(item) {
    if (item.deleted) return h('div', { className: 'body tombstone' }, 'message deleted');
    const names = new Set(item.mentionNames ?? []);
    return h('div', { className: 'body' }, format(item.body, { isMention: (name) => names.has(name) }));
  }

  function replyPreview(reply) {
    return h(
      'button',
      {
        type: 'button',
        className: `reply-preview${reply.deleted ? ' deleted' : ''}`,
        title: 'Show the message this answers',
        dataset: { target: reply.id },
        on: { click: () => jumpTo(reply.id) },
      },
      h('span', { className: 'reply-sender' }, reply.name),
      h('span', { className: 'reply-text' }, reply.text),
    );
  }

  function reactionChips(roomId, item) {
    return h(
      'div',
      { className: 'reactions' },
      item.reactions.map((reaction) =>
        h(
          'button',
          {
            type: 'button',
            className: `reaction${reaction.me ? ' mine' : ''}`,
            title: reaction.who,
            disabled: !item.can,
            dataset: { emoji: reaction.emoji },
            attrs: { 'aria-pressed': String(reaction.me), 'aria-label': `${reaction.emoji} ${reaction.count}: ${reaction.who}` },
            on: { click: () => withItem(roomId, item.seq, (current) => actions.message.react(roomId, current, reaction.emoji)) },
          },
          h('span', { className: 'emoji' }, reaction.emoji),
          h('span', { className: 'count' }, String(reaction.count)),
        ),
      ),
    );
  }

  function toolbar(roomId, item) {
    const act = (name, label, title, run) =>
      h(
        'button',
        {
          type: 'button',
          className: 'ghost small',
          title,
          dataset: { action: name },
          attrs: { 'aria-label': title },
          on: { click: (event) => withItem(roomId, item.seq, (current) => run(current, event)) },
        },
        label,
      );
    const { can } = item;
    return h(
      'div',
      { className: 'msg-actions', attrs: { role: 'toolbar', 'aria-label': 'Message actions' } },
      can.reply ? act('reply', 'Reply', 'Reply', (current) => actions.message.reply(roomId, current)) : null,
      can.react ? act('react', 'React', 'React', (current, event) => openPicker(event.currentTarget, roomId, current.seq)) : null,
      can.edit ? act('edit', 'Edit', 'Edit', (current) => actions.message.startEdit(roomId, current)) : null,
      can.pin
        ? act(item.pinned ? 'unpin' : 'pin', item.pinned ? 'Unpin' : 'Pin', item.pinned ? 'Unpin' : 'Pin', (current) => actions.message.pin(roomId, current))
        : null,
      can.delete
        ? act('delete', 'Delete', 'Delete', async (current) => {
            const others = current.sender !== state.me.id;
            const question = others ? `Delete this message by ${userName(state, current.sender)} for everyone?` : 'Delete this message for everyone?';
            if (await confirm(question, 'Delete')) actions.message.delete(roomId, current);
          })
        : null,
      can.report
        ? act('report', 'Report', 'Report this message', (current) =>
            requestReport({ kind: 'message', room_id: roomId, event_id: current.id }, `A message by ${userName(state, current.sender)}`),
          )
        : null,
    );
  }

  /** Runs `run` with the message as the store has it now (the row may be older). */
  function withItem(roomId, seq, run) {
    const item = timelineOf(state, roomId).item(seq);
    if (item) run(item);
  }

  function editor(roomId, item) {
    const input = h('textarea', {
      className: 'edit-input',
      value: drafts.get(item.seq) ?? item.body,
      rows: Math.min(8, item.body.split('\n').length),
      attrs: { 'aria-label': 'Edit the message', maxlength: '4000' },
    });
    input.addEventListener('input', () => drafts.set(item.seq, input.value));
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        drafts.delete(item.seq);
        actions.message.cancelEdit();
      } else if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        drafts.delete(item.seq);
        withItem(roomId, item.seq, (current) => actions.message.saveEdit(roomId, current, input.value));
      }
    });
    return h('div', { className: 'editor' }, input, h('small', { className: 'hint' }, 'Enter to save, Escape to cancel'));
  }

  function focusEditor(wasFocused) {
    const input = el.list.querySelector('.edit-input');
    if (!input || document.activeElement === input) return;
    input.focus();
    if (!wasFocused) input.setSelectionRange(input.value.length, input.value.length);
  }

  function statusBadge(item) {
    switch (item.state) {
      case 'pending':
        return h('span', { className: 'status', title: 'Sending… (kept until the server confirms it)' }, '◷ sending');
      case 'failed':
        return h(
          'span',
          { className: 'status', title: item.reason },
          `not sent: ${item.reason} `,
          h('button', { type: 'button', className: 'link', on: { click: () => actions.message.dismissFailed(item.clientId) } }, 'dismiss'),
        );
      default:
        return h('span', { className: 'status', title: `Delivered (#${item.seq})` }, item.seen ? '✓✓ seen' : '✓');
    }
  }

  /** A long press on a touch screen shows the row's actions. */
  function longPress(row) {
    let timer = null;
    const cancel = () => clearTimeout(timer);
    row.addEventListener('touchstart', () => {
      cancel();
      timer = setTimeout(() => {
        for (const open of el.list.querySelectorAll('.msg.show-actions')) open.classList.remove('show-actions');
        row.classList.add('show-actions');
      }, LONG_PRESS_MS);
    }, { passive: true });
    for (const type of ['touchend', 'touchmove', 'touchcancel']) row.addEventListener(type, cancel, { passive: true });
  }

  // --- the reaction picker ------------------------------------------------------------------

  function openPicker(anchor, roomId, seq) {
    pickerFor = { roomId, seq };
    el.picker.hidden = false;
    const box = anchor.getBoundingClientRect();
    const width = el.picker.offsetWidth;
    const height = el.picker.offsetHeight;
    el.picker.style.left = `${Math.max(8, Math.min(window.innerWidth - width - 8, box.right - width))}px`;
    el.picker.style.top = `${box.top - height - 6 >= 8 ? box.top - height - 6 : box.bottom + 6}px`;
    el.reactionInput.value = '';
    el.choices.querySelector('button')?.focus();
  }

  function closePicker() {
    pickerFor = null;
    el.picker.hidden = true;
  }

  function pick(emoji) {
    const target = pickerFor;
    closePicker();
    if (!target || !emoji) return;
    withItem(target.roomId, target.seq, (current) => actions.message.react(target.roomId, current, emoji));
  }

  for (const emoji of COMMON_EMOJI) {
    el.choices.append(h('button', { type: 'button', className: 'ghost', title: emoji, dataset: { emoji }, on: { click: () => pick(emoji) } }, emoji));
  }
  el.reactionForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const emoji = el.reactionInput.value.trim();
    if (!emoji || /\s/.test(emoji)) {
      notify('Type one emoji to react with.');
      return;
    }
    pick(emoji);
  });
  el.picker.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') closePicker();
  });
  document.addEventListener('pointerdown', (event) => {
    if (!el.picker.hidden && !el.picker.contains(event.target) && !event.target.closest?.('[data-action="react"]')) closePicker();
    if (!event.target.closest?.('.msg.show-actions')) {
      for (const open of el.list.querySelectorAll('.msg.show-actions')) open.classList.remove('show-actions');
    }
  });

  // --- jumping to a message -------------------------------------------------------------------

  /**
   * Scrolls to a message of the open room and highlights it.
   * @param {string} id the message's id
   * @returns {boolean} whether it is loaded (and so shown)
   */
  function jumpTo(id) {
    const row = rowOf(id);
    if (!row) {
      notify('That message is not loaded: scroll up to find it.');
      return false;
    }
    row.scrollIntoView({ block: 'center' });
    for (const lit of el.list.querySelectorAll('.msg.highlight')) lit.classList.remove('highlight');
    row.classList.add('highlight');
    highlighted = { id, until: Date.now() + HIGHLIGHT_MS };
    setTimeout(() => {
      if (highlighted?.id !== id) return;
      highlighted = null;
      rowOf(id)?.classList.remove('highlight');
    }, HIGHLIGHT_MS);
    return true;
  }

  function rowOf(id) {
    return [...el.list.children].find((li) => li.dataset.id === id) ?? null;
  }

  // --- scrolling and reading -------------------------------------------------------------------

  /** Whether the reader can see the newest messages of the open room. */
  function isReading() {
    if (document.visibilityState !== 'visible' || !state.currentRoomId) return false;
    const box = el.box;
    return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
  }

  el.loadOlder.addEventListener('click', () => state.currentRoomId && actions.loadOlder(state.currentRoomId));
  el.box.addEventListener('scroll', () => {
    const roomId = state.currentRoomId;
    if (!roomId) return;
    if (el.box.scrollTop < 40 && timelineOf(state, roomId).loadedLatest) actions.loadOlder(roomId);
    if (isReading()) actions.seen(roomId);
  });
  document.addEventListener('visibilitychange', () => {
    if (isReading()) actions.seen(state.currentRoomId);
  });

  store.subscribe(render);

  return {
    jumpTo,
    /** The next render scrolls to the bottom (a message of mine was sent). */
    stickToBottom() {
      forceBottom = true;
      store.touch('ui');
    },
  };
}

/** A message right after one of the same sender's (within 5 minutes) drops its header. */
function continues(previous, sender, ts) {
  return previous?.kind === 'message' && previous.sender === sender && new Date(ts) - new Date(previous.ts) < 5 * 60_000;
}

function formatTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
