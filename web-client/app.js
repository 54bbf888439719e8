/**
 * The chat page: a thin view over `chat-client.js` (the socket, with every
 * delivery guarantee) and `api.js` (REST and the login session). It keeps
 * what the page shows — rooms, their timelines, names, presence, typing —
 * and renders it. User text only ever becomes text nodes (see `dom.js`).
 *
 * @module app
 */

import { AuthRequiredError, ChatClient, Outbox } from './chat-client.js';
import { Api, ApiError, AuthSession } from './api.js';
import { byId, h, reconcile, replace } from './dom.js';
import { RoomTimeline } from './timeline.js';
import { loadSettings } from './settings.js';

/** Events per history page. */
const PAGE = 50;
/** How long a `typing` frame keeps its "is typing…" line. */
const TYPING_SHOWN_MS = 5000;
/** Within this distance of the bottom the view follows new messages. */
const NEAR_BOTTOM_PX = 80;

const settings = await loadSettings();
const auth = new AuthSession({ apiBase: settings.apiBase });
const api = new Api({ apiBase: settings.apiBase, auth });

// --- state -----------------------------------------------------------------

/** Everything the page shows, outside the DOM. */
const state = {
  /** @type {ChatClient|null} */
  client: null,
  me: null,
  /** @type {Map<string, object>} room id → room (`GET /v1/rooms` shape) */
  rooms: new Map(),
  /** @type {Map<string, RoomTimeline>} */
  timelines: new Map(),
  /** @type {Map<string, object>} user id → user */
  users: new Map(),
  /** @type {Map<string, Map<string, string>>} room id → (user id → role) */
  members: new Map(),
  /** @type {Map<string, Map<string, number>>} room id → (user id → last read seq) */
  readMarks: new Map(),
  /** @type {Map<string, Promise<void>>} member lists being fetched */
  membersLoading: new Map(),
  /** @type {Map<string, 'online'|'offline'>} */
  presence: new Map(),
  /** @type {Map<string, Map<string, number>>} room id → (user id → shown until) */
  typing: new Map(),
  /** @type {Map<string, object>} client id → a send the server refused for good */
  failed: new Map(),
  currentRoomId: null,
  connection: { state: 'idle' },
  /** Scroll to the bottom at the next render (room opened, own message sent). */
  forceBottom: false,
  /** Older events are being prepended: keep the view where the reader is. */
  prepending: false,
  /** Rooms I asked to leave: their `room_removed` needs no notice. */
  leaving: new Set(),
};

function timeline(roomId) {
  if (!state.timelines.has(roomId)) state.timelines.set(roomId, new RoomTimeline());
  return state.timelines.get(roomId);
}

function currentRoom() {
  return state.rooms.get(state.currentRoomId) ?? null;
}

// --- elements --------------------------------------------------------------

const el = {
  authScreen: byId('auth-screen'),
  authForm: byId('auth-form'),
  authError: byId('auth-error'),
  authSubmit: byId('auth-submit'),
  displayNameField: byId('display-name-field'),
  tabLogin: byId('tab-login'),
  tabRegister: byId('tab-register'),
  chatScreen: byId('chat-screen'),
  connection: byId('connection'),
  connectionLabel: byId('connection-label'),
  reconnectNow: byId('reconnect-now'),
  me: byId('me'),
  roomList: byId('room-list'),
  dmList: byId('dm-list'),
  noRoom: byId('no-room'),
  roomHeader: byId('room-header'),
  roomTitle: byId('room-title'),
  roomTopic: byId('room-topic'),
  invite: byId('invite'),
  leave: byId('leave'),
  messages: byId('messages'),
  messageList: byId('message-list'),
  loadOlder: byId('load-older'),
  historyStart: byId('history-start'),
  typing: byId('typing'),
  composer: byId('composer'),
  composerInput: byId('composer-input'),
  memberList: byId('member-list'),
  browseDialog: byId('browse-dialog'),
  publicRooms: byId('public-rooms'),
  groupDialog: byId('group-dialog'),
  groupForm: byId('group-form'),
  groupSearch: byId('group-search'),
  groupResults: byId('group-results'),
  groupChosen: byId('group-chosen'),
  groupError: byId('group-error'),
  peopleDialog: byId('people-dialog'),
  peopleTitle: byId('people-title'),
  peopleSearch: byId('people-search'),
  peopleResults: byId('people-results'),
  toasts: byId('toasts'),
};

// --- names and small views ---------------------------------------------------

function userName(userId) {
  if (!userId) return 'someone';
  return state.users.get(userId)?.display_name ?? 'a former member';
}

/** `@username`, shown beside every display name: names may repeat, usernames never do. */
function handle(userId) {
  const username = state.users.get(userId)?.username;
  return username ? h('small', { className: 'handle' }, `@${username}`) : null;
}

/** The other person of a direct room, if known. */
function dmPartner(room) {
  const members = state.members.get(room.id);
  if (!members) return null;
  return [...members.keys()].find((id) => id !== state.me?.id) ?? null;
}

function roomName(room) {
  if (room.kind !== 'direct') return room.name;
  const partner = dmPartner(room);
  return partner ? userName(partner) : 'Direct message';
}

function isOnline(userId) {
  if (userId === state.me?.id) return state.connection.state === 'online';
  return state.presence.get(userId) === 'online';
}

function presenceDot(userId) {
  const online = isOnline(userId);
  return h('span', {
    className: `presence${online ? ' online' : ''}`,
    title: online ? 'online' : 'offline',
    attrs: { 'aria-label': online ? 'online' : 'offline' },
  });
}

/**
 * Unread messages from others, as the api counts them. Up to `base_seq`
 * (the head when the room was listed) that is the list's `unread`, until
 * my marker passes `base_seq`; every later event reaches the timeline over
 * the socket, and of those only others' messages count, not joins or my
 * own sends (a send of mine reads the room up to it, on the server too).
 */
function unreadCount(room) {
  const read = room.last_read_seq;
  let unread = read < room.base_seq ? room.base_unread : 0;
  const from = Math.max(read, room.base_seq);
  const events = timeline(room.id).events();
  for (let i = events.length - 1; i >= 0 && events[i].seq > from; i -= 1) {
    if (events[i].type === 'message' && events[i].sender !== state.me.id) unread += 1;
  }
  return unread;
}

function formatTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function toast(message) {
  const item = h('div', { className: 'toast' }, message);
  el.toasts.append(item);
  setTimeout(() => item.remove(), 5000);
}

/** Says what went wrong, in words; a lost login is handled by the auth listener. */
function report(error, what) {
  if (error instanceof AuthRequiredError) return;
  if (error instanceof ApiError && error.code === 'network') {
    toast(`${what}: cannot reach the server.`);
  } else {
    toast(`${what}: ${error.message}`);
  }
  console.warn(what, error);
}

// --- rendering ---------------------------------------------------------------

let renderQueued = false;

/** Renders once for any number of changes in the same turn. */
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    render();
  }, 0);
}

function render() {
  if (!state.me) return;
  renderConnection();
  renderSidebar();
  renderConversation();
  renderMembers();
  const unread = [...state.rooms.values()].reduce((sum, room) => sum + unreadCount(room), 0);
  document.title = unread ? `(${unread}) chat` : 'chat';
}

function renderConnection() {
  const status = state.connection;
  el.connection.dataset.state = status.state;
  el.reconnectNow.hidden = status.state !== 'waiting';
  el.connectionLabel.textContent = connectionLabel(status);
}

function connectionLabel(status) {
  switch (status.state) {
    case 'online':
      return 'Connected';
    case 'connecting':
      return 'Connecting…';
    case 'waiting': {
      const seconds = Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000));
      return `Reconnecting in ${seconds}s`;
    }
    case 'offline':
      return 'Offline: waiting for the network';
    case 'stopped':
      return 'Disconnected';
    default:
      return 'Not connected';
  }
}

/** Last signatures, so unchanged lists are not rebuilt (a rebuild can swallow a click). */
const lastRendered = { sidebar: '', members: '' };

function renderSidebar() {
  const rooms = [...state.rooms.values()];
  const byName = (a, b) => roomName(a).localeCompare(roomName(b));
  const groups = rooms.filter((room) => room.kind !== 'direct').sort(byName);
  const dms = rooms.filter((room) => room.kind === 'direct').sort(byName);
  const rows = [...groups, ...dms].map(roomRowData);
  const signature = JSON.stringify(rows);
  if (signature === lastRendered.sidebar) return;
  lastRendered.sidebar = signature;
  replace(el.roomList, ...rows.filter((row) => row.kind !== 'direct').map(roomRow));
  replace(el.dmList, ...rows.filter((row) => row.kind === 'direct').map(roomRow));
}

function roomRowData(room) {
  const partner = room.kind === 'direct' ? dmPartner(room) : null;
  return {
    id: room.id,
    kind: room.kind,
    name: roomName(room),
    unread: room.id === state.currentRoomId && isReading() ? 0 : unreadCount(room),
    current: room.id === state.currentRoomId,
    partner,
    handle: partner ? (state.users.get(partner)?.username ?? null) : null,
    online: partner ? isOnline(partner) : false,
  };
}

function roomRow(row) {
  const glyph =
    row.kind === 'direct'
      ? presenceDot(row.partner)
      : h('span', { className: 'glyph', attrs: { 'aria-hidden': 'true' } }, row.kind === 'private' ? '◆' : '#');
  return h(
    'li',
    {},
    h(
      'button',
      {
        type: 'button',
        className: row.unread ? 'unread' : '',
        dataset: { roomId: row.id },
        attrs: { 'aria-current': row.current ? 'true' : 'false' },
        on: { click: () => openRoom(row.id) },
      },
      glyph,
      h('span', { className: 'name' }, row.name, row.handle ? h('small', { className: 'handle' }, ` @${row.handle}`) : null),
      row.unread ? h('span', { className: 'badge', title: `${row.unread} unread` }, String(row.unread)) : null,
    ),
  );
}

function renderMembers() {
  const room = currentRoom();
  const members = room ? state.members.get(room.id) : null;
  const rows = members
    ? [...members].map(([id, role]) => ({ id, role, name: userName(id), online: isOnline(id) }))
    : [];
  rows.sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name));
  const signature = JSON.stringify(rows);
  if (signature === lastRendered.members) return;
  lastRendered.members = signature;
  replace(
    el.memberList,
    ...rows.map((row) =>
      h(
        'li',
        { dataset: { userId: row.id } },
        presenceDot(row.id),
        h('span', { className: 'name' }, row.name, row.id === state.me.id ? ' (you)' : '', ' ', handle(row.id)),
        row.role === 'member' ? null : h('span', { className: 'role' }, row.role),
      ),
    ),
  );
}

function renderConversation() {
  const room = currentRoom();
  el.noRoom.hidden = Boolean(room);
  el.roomHeader.hidden = el.messages.hidden = el.composer.hidden = !room;
  if (!room) {
    el.typing.textContent = '';
    return;
  }
  el.roomTitle.textContent = room.kind === 'direct' ? roomName(room) : `${room.kind === 'private' ? '◆' : '#'} ${room.name}`;
  const partner = room.kind === 'direct' ? state.users.get(dmPartner(room)) : null;
  el.roomTopic.textContent =
    room.kind === 'direct' ? `Direct message${partner ? ` with @${partner.username}` : ''}` : room.topic;
  el.invite.hidden = !canInvite(room);
  el.leave.hidden = room.kind === 'direct' || room.role === 'owner';
  renderMessages(room);
  renderTyping(room);
  markReadIfSeen(room);
}

function canInvite(room) {
  if (room.kind === 'direct') return false;
  return room.kind === 'public' || room.role === 'owner' || room.role === 'admin';
}

// --- the message list --------------------------------------------------------

/** Rows on screen, by key: `c:<client_id>` for my messages (pending and
 *  delivered share it, so the row just changes state), `s:<seq>` else. */
const rows = new Map();

function renderMessages(room) {
  const box = el.messages;
  const fromBottom = box.scrollHeight - box.scrollTop;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
  reconcile(el.messageList, messageItems(room.id), buildRow, rows);
  const tl = timeline(room.id);
  el.loadOlder.hidden = !tl.hasOlder || !tl.loadedLatest;
  el.loadOlder.disabled = tl.loading;
  el.historyStart.hidden = tl.hasOlder;
  if (state.forceBottom || (nearBottom && !state.prepending)) {
    box.scrollTop = box.scrollHeight;
  } else if (state.prepending) {
    box.scrollTop = box.scrollHeight - fromBottom;
  }
  state.forceBottom = state.prepending = false;
}

/** What the list shows: the room's events in seq order, then my pending and failed sends. */
function messageItems(roomId) {
  const items = [];
  const mine = new Set();
  let previous = null;
  const direct = state.rooms.get(roomId)?.kind === 'direct';
  for (const event of timeline(roomId).events()) {
    // A DM's two members arrive with it; "X added Y" there says nothing.
    if (direct && event.type === 'member_joined') continue;
    const item = event.type === 'message' ? messageItem(event, previous) : noticeItem(event);
    if (item.mine) mine.add(event.client_id);
    items.push(item);
    previous = item;
  }
  for (const entry of state.client?.pending(roomId) ?? []) {
    // Committed already (seen in history) even if its ack is still to come.
    if (mine.has(entry.client_id)) continue;
    previous = pendingItem(entry, 'pending', previous);
    items.push(previous);
  }
  for (const failure of state.failed.values()) {
    if (failure.entry.room_id !== roomId) continue;
    previous = pendingItem(failure.entry, 'failed', previous, failure.message);
    items.push(previous);
  }
  return items;
}

function messageItem(event, previous) {
  const mine = event.sender === state.me.id;
  return {
    key: mine && event.client_id ? `c:${event.client_id}` : `s:${event.seq}`,
    kind: 'message',
    mine,
    sender: event.sender,
    name: userName(event.sender),
    username: state.users.get(event.sender)?.username ?? null,
    body: event.body,
    ts: event.ts,
    seq: event.seq,
    state: mine ? 'delivered' : 'received',
    seen: mine && seenByOthers(event.room_id, event.seq),
    continued: continues(previous, event.sender, event.ts),
  };
}

function pendingItem(entry, sendState, previous, reason) {
  return {
    key: `c:${entry.client_id}`,
    kind: 'message',
    mine: true,
    sender: state.me.id,
    name: userName(state.me.id),
    username: state.me.username,
    body: entry.body,
    ts: new Date(entry.created_at).toISOString(),
    clientId: entry.client_id,
    state: sendState,
    reason,
    continued: continues(previous, state.me.id, entry.created_at),
  };
}

function noticeItem(event) {
  return { key: `s:${event.seq}`, kind: 'notice', seq: event.seq, text: noticeText(event) };
}

/** A message right after one of the same sender's (within 5 minutes) drops its header. */
function continues(previous, sender, ts) {
  return (
    previous?.kind === 'message' &&
    previous.sender === sender &&
    new Date(ts) - new Date(previous.ts) < 5 * 60_000
  );
}

function seenByOthers(roomId, seq) {
  const marks = state.readMarks.get(roomId);
  if (!marks) return false;
  return [...marks].some(([userId, read]) => userId !== state.me.id && read >= seq);
}

function noticeText(event) {
  const who = userName(event.user);
  const by = userName(event.sender);
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
    default:
      return `${by}: ${event.type}`;
  }
}

function buildRow(item) {
  return item.kind === 'notice' ? noticeRow(item) : messageRow(item);
}

function messageRow(item) {
  const dataset = { key: item.key, state: item.state };
  if (item.seq) dataset.seq = item.seq;
  const time = h('time', { className: 'time', dateTime: item.ts }, formatTime(item.ts));
  return h(
    'li',
    { className: `msg${item.mine ? ' mine' : ''}`, dataset },
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
      h('span', { className: 'body' }, item.body),
      item.mine ? statusBadge(item) : null,
    ),
  );
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
        h('button', { type: 'button', className: 'link', on: { click: () => dismissFailed(item.clientId) } }, 'dismiss'),
      );
    default:
      return h('span', { className: 'status', title: `Delivered (#${item.seq})` }, item.seen ? '✓✓ seen' : '✓');
  }
}

function noticeRow(item) {
  return h('li', { className: 'notice', dataset: { key: item.key, seq: item.seq } }, item.text);
}

function dismissFailed(clientId) {
  state.failed.delete(clientId);
  scheduleRender();
}

function renderTyping(room) {
  const now = Date.now();
  const typers = [...(state.typing.get(room.id) ?? new Map())]
    .filter(([userId, until]) => until > now && userId !== state.me.id)
    .map(([userId]) => userName(userId));
  el.typing.textContent =
    typers.length === 0
      ? ''
      : typers.length === 1
        ? `${typers[0]} is typing…`
        : typers.length === 2
          ? `${typers[0]} and ${typers[1]} are typing…`
          : 'Several people are typing…';
}

/** Whether the reader can see the newest messages of the open room. */
function isReading() {
  if (document.visibilityState !== 'visible' || !currentRoom()) return false;
  const box = el.messages;
  return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
}

/** Moves my read marker to the newest event on screen (not the head: that may not be shown yet). */
function markReadIfSeen(room) {
  const shown = timeline(room.id).newestSeq;
  if (!isReading() || room.last_read_seq >= shown) return;
  room.last_read_seq = shown;
  state.client?.markRead(room.id, shown);
}

// --- rooms and history -------------------------------------------------------------

/** @type {Promise<object[]|null>|null} the room list request in flight */
let roomsLoading = null;

/**
 * Reads my rooms over REST and merges them in; null if that failed.
 * Callers at the same time share one request.
 */
function loadRooms() {
  roomsLoading ??= api
    .myRooms()
    .then((rooms) => {
      for (const room of rooms) addRoom(room);
      scheduleRender();
      return rooms;
    })
    .catch((error) => {
      report(error, 'Loading your rooms');
      return null;
    })
    .finally(() => {
      roomsLoading = null;
    });
  return roomsLoading;
}

/**
 * Adds or refreshes a room; heads and read markers only move forward.
 * @param {object} room as the api describes it
 * @param {number} [afterSeq] the socket delivers the room's events after
 *   this seq (default: its head now; history comes over REST)
 */
function addRoom(room, afterSeq = room.last_seq ?? 0) {
  const known = state.rooms.get(room.id);
  // Before the client has started this only sets the cursor its first
  // `sync` resumes from; later it also makes the session follow the room.
  if (!known) state.client?.follow(room.id, afterSeq);
  state.rooms.set(room.id, {
    ...known,
    ...room,
    role: room.role ?? known?.role ?? 'member',
    last_seq: Math.max(room.last_seq ?? 0, known?.last_seq ?? 0),
    last_read_seq: Math.max(room.last_read_seq ?? 0, known?.last_read_seq ?? 0),
    base_seq: known?.base_seq ?? afterSeq,
    base_unread: known?.base_unread ?? room.unread ?? 0,
  });
  // A DM is named after the other person: their name comes with the members.
  if (room.kind === 'direct') loadMembers(room.id);
}

/**
 * Nothing before my own joining is unread to me; the server starts a new
 * member's read marker at 0, so move it (it only ever moves forward).
 */
function markJoined(roomId, joinSeq) {
  state.client?.markRead(roomId, joinSeq);
}

function forgetRoom(roomId) {
  state.rooms.delete(roomId);
  state.timelines.delete(roomId);
  state.members.delete(roomId);
  if (state.currentRoomId === roomId) {
    state.currentRoomId = null;
    const next = state.rooms.keys().next();
    if (!next.done) openRoom(next.value);
  }
  scheduleRender();
}

/** Fetches a room's members (names, roles, read markers); one request at a time per room. */
function loadMembers(roomId) {
  if (state.membersLoading.has(roomId)) return state.membersLoading.get(roomId);
  const loading = api
    .members(roomId)
    .then((members) => {
      state.members.set(roomId, new Map(members.map((m) => [m.user.id, m.role])));
      state.readMarks.set(roomId, new Map(members.map((m) => [m.user.id, m.last_read_seq])));
      for (const member of members) state.users.set(member.user.id, member.user);
      scheduleRender();
    })
    .catch((error) => {
      if (!(error instanceof ApiError && error.status === 403)) report(error, 'Loading members');
    })
    .finally(() => state.membersLoading.delete(roomId));
  state.membersLoading.set(roomId, loading);
  return loading;
}

function lastRoomKey() {
  return `chat.lastRoom:${settings.apiBase}:${state.me.id}`;
}

/** Shows a room, loading its newest page of history the first time. */
async function openRoom(roomId) {
  if (!state.rooms.has(roomId)) return;
  if (state.currentRoomId !== roomId) {
    state.currentRoomId = roomId;
    rows.clear();
    el.messageList.replaceChildren();
    state.forceBottom = true;
    localStorage.setItem(lastRoomKey(), roomId);
  }
  scheduleRender();
  loadMembers(roomId);
  if (!timeline(roomId).loadedLatest) await loadLatest(roomId);
  el.composerInput.focus();
}

async function loadLatest(roomId) {
  const tl = timeline(roomId);
  if (tl.loading) return;
  tl.loading = true;
  try {
    const page = await api.events(roomId, { limit: PAGE });
    tl.loadedLatest = true;
    tl.addPage(page.events, { isOldest: page.events.length < PAGE || page.events[0]?.seq === 1 });
    const room = state.rooms.get(roomId);
    if (room) room.last_seq = Math.max(room.last_seq, page.last_seq);
    if (roomId === state.currentRoomId) state.forceBottom = true;
  } catch (error) {
    report(error, 'Loading messages');
  } finally {
    tl.loading = false;
    scheduleRender();
  }
}

/** Scroll-back: the page before the oldest event held. */
async function loadOlder(roomId) {
  const tl = timeline(roomId);
  if (tl.loading || !tl.hasOlder) return;
  if (tl.oldestSeq === undefined) return loadLatest(roomId);
  tl.loading = true;
  try {
    const page = await api.events(roomId, { before: tl.oldestSeq, limit: PAGE });
    state.prepending = roomId === state.currentRoomId;
    tl.addPage(page.events, { isOldest: page.events.length < PAGE || page.events[0]?.seq === 1 });
  } catch (error) {
    report(error, 'Loading older messages');
  } finally {
    tl.loading = false;
    scheduleRender();
  }
}

// --- what the socket tells -------------------------------------------------------

function wireClient(client) {
  client.on('status', (status) => {
    state.connection = status;
    scheduleRender();
  });
  client.on('hello', onHello);
  client.on('event', onRoomEvent);
  client.on('pending', scheduleRender);
  client.on('ack', onAck);
  client.on('sendFailed', onSendFailed);
  client.on('typing', onTyping);
  client.on('presence', ({ user_id, status }) => {
    state.presence.set(user_id, status);
    scheduleRender();
  });
  client.on('read', onRead);
  client.on('roomAdded', ({ room, seq }) => {
    addRoom({ ...room, last_read_seq: seq }, seq - 1);
    markJoined(room.id, seq);
    loadRooms(); // my role and read marker
  });
  client.on('roomRemoved', onRoomRemoved);
  client.on('error', (error) => {
    // Refusals tied to a room (typing, read, sync in a room just left) need no words.
    if (!error.ref) toast(`The server said: ${error.message}`);
  });
  client.on('authFailed', () => leaveChat('Your session has ended. Please log in again.'));
}

function onHello(hello) {
  state.users.set(hello.user.id, hello.user);
  // Rooms joined elsewhere while we were away, with their names.
  loadRooms();
  const room = currentRoom();
  if (room && !timeline(room.id).loadedLatest) loadLatest(room.id);
}

function onRoomEvent(event) {
  const room = state.rooms.get(event.room_id);
  if (!room) {
    // A room just left (its last events trail behind), or one the list
    // does not have yet: the list decides, and history fills in on opening.
    if (!(event.type === 'member_left' && event.user === state.me.id)) loadRooms();
    return;
  }
  timeline(event.room_id).add(event);
  room.last_seq = Math.max(room.last_seq, event.seq);
  switch (event.type) {
    case 'message':
      state.typing.get(event.room_id)?.delete(event.sender);
      // Sending reads the room up to my message (the server moved my
      // marker in the same commit).
      if (event.sender === state.me.id) room.last_read_seq = Math.max(room.last_read_seq, event.seq);
      if (!state.users.has(event.sender)) loadMembers(event.room_id);
      break;
    case 'member_left':
      // Mine: I am out (room_removed follows) and may no longer ask.
      if (event.user !== state.me.id) loadMembers(event.room_id);
      break;
    case 'member_joined':
    case 'role_changed':
      loadMembers(event.room_id);
      break;
    case 'room_updated':
      Object.assign(room, { name: event.name, topic: event.topic });
      break;
    default:
      break;
  }
  scheduleRender();
}

/** Durable: show it delivered now, without waiting for the event to come round. */
function onAck(ack) {
  timeline(ack.room_id).add({
    type: 'message',
    room_id: ack.room_id,
    seq: ack.seq,
    id: ack.id,
    ts: ack.ts,
    sender: state.me.id,
    client_id: ack.client_id,
    body: ack.body,
  });
  const room = state.rooms.get(ack.room_id);
  if (room) room.last_seq = Math.max(room.last_seq, ack.seq);
  scheduleRender();
}

function onSendFailed(failure) {
  state.failed.set(failure.entry.client_id, failure);
  toast(`A message was not sent: ${failure.message}`);
  scheduleRender();
}

function onTyping({ room_id, user_id }) {
  if (user_id === state.me.id) return;
  if (!state.typing.has(room_id)) state.typing.set(room_id, new Map());
  state.typing.get(room_id).set(user_id, Date.now() + TYPING_SHOWN_MS);
  scheduleRender();
  setTimeout(scheduleRender, TYPING_SHOWN_MS + 50);
}

function onRead({ room_id, user_id, seq }) {
  if (!state.readMarks.has(room_id)) state.readMarks.set(room_id, new Map());
  const marks = state.readMarks.get(room_id);
  marks.set(user_id, Math.max(seq, marks.get(user_id) ?? 0));
  const room = state.rooms.get(room_id);
  // Read in another tab of mine.
  if (room && user_id === state.me.id) room.last_read_seq = Math.max(room.last_read_seq, seq);
  scheduleRender();
}

function onRoomRemoved({ room_id }) {
  const room = state.rooms.get(room_id);
  if (!room) return;
  if (!state.leaving.has(room_id)) toast(`You are no longer in ${roomName(room)}.`);
  forgetRoom(room_id);
}

// --- sending ---------------------------------------------------------------------------

function sendComposed() {
  const room = currentRoom();
  const text = el.composerInput.value;
  if (!room || !text.trim()) return;
  try {
    state.client.send(room.id, text);
  } catch (error) {
    toast(error.message);
    return;
  }
  el.composerInput.value = '';
  fitComposer();
  state.forceBottom = true;
  scheduleRender();
}

function fitComposer() {
  const input = el.composerInput;
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight + 2, 160)}px`;
}

// --- finding people, rooms and groups ----------------------------------------------------

/**
 * Wires a search box to `GET /v1/users?q=`, debounced; `row(user)` builds
 * each result (me excluded).
 */
function peopleSearch(input, results, row) {
  let timer = null;
  let latest = 0;
  const run = async () => {
    const q = input.value.trim();
    const ticket = ++latest;
    if (!q) return replace(results);
    try {
      const users = (await api.searchUsers(q)).filter((user) => user.id !== state.me.id);
      if (ticket !== latest) return; // a newer search is under way
      for (const user of users) state.users.set(user.id, user);
      replace(results, ...(users.length ? users.map(row) : [h('li', { className: 'hint' }, 'No one by that name.')]));
    } catch (error) {
      report(error, 'Searching');
    }
  };
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(run, 250);
  });
  return () => {
    input.value = '';
    replace(results);
  };
}

function personLabel(user) {
  return h('span', { className: 'who' }, user.display_name, h('small', {}, `@${user.username}`));
}

/** A button that runs `action` once, showing its outcome in its label. */
function actionButton(label, action) {
  const button = h('button', { type: 'button', className: 'small' }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      button.textContent = (await action()) ?? label;
    } catch (error) {
      button.disabled = false;
      report(error, label);
    }
  });
  return button;
}

let peopleMode = 'dm';
let clearPeople = () => {};

function openPeople(mode) {
  peopleMode = mode;
  const room = currentRoom();
  el.peopleTitle.textContent = mode === 'dm' ? 'New message' : `Invite to ${room ? roomName(room) : 'room'}`;
  clearPeople();
  el.peopleDialog.showModal();
  el.peopleSearch.focus();
}

function personRow(user) {
  const action =
    peopleMode === 'dm'
      ? actionButton('Message', () => startDm(user))
      : actionButton('Invite', () => inviteToCurrent(user));
  return h('li', {}, presenceDot(user.id), personLabel(user), action);
}

async function startDm(user) {
  const room = await api.openDm(user.id);
  // Read markers come with the room list; opening the DM marks it read.
  addRoom({ ...room, role: 'member', last_read_seq: 0 });
  state.members.set(room.id, new Map([[state.me.id, 'member'], [user.id, 'member']]));
  el.peopleDialog.close();
  openRoom(room.id);
  return 'Opened';
}

async function inviteToCurrent(user) {
  const room = currentRoom();
  try {
    await api.invite(room.id, user.id);
    return 'Invited';
  } catch (error) {
    if (error instanceof ApiError && error.code === 'already_member') return 'Already in';
    throw error;
  }
}

async function openBrowse() {
  replace(el.publicRooms, h('li', { className: 'hint' }, 'Loading…'));
  el.browseDialog.showModal();
  try {
    const rooms = await api.publicRooms();
    replace(
      el.publicRooms,
      ...rooms.map((room) =>
        h(
          'li',
          { dataset: { roomId: room.id } },
          h('span', { className: 'who' }, `# ${room.name}`, h('small', {}, room.topic || ' ')),
          state.rooms.has(room.id)
            ? actionButton('Open', () => {
                el.browseDialog.close();
                openRoom(room.id);
              })
            : actionButton('Join', () => joinRoom(room)),
        ),
      ),
    );
    if (!rooms.length) replace(el.publicRooms, h('li', { className: 'hint' }, 'No public rooms yet.'));
  } catch (error) {
    replace(el.publicRooms);
    report(error, 'Listing rooms');
  }
}

async function joinRoom(room) {
  try {
    const event = await api.joinRoom(room.id);
    addRoom({ ...room, role: 'member', last_read_seq: event.seq, last_seq: Math.max(room.last_seq, event.seq) }, event.seq - 1);
    markJoined(room.id, event.seq);
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 'already_member')) throw error;
    await loadRooms();
  }
  el.browseDialog.close();
  openRoom(room.id);
  return 'Joined';
}

/** People chosen in the group dialog, by id. */
const chosen = new Map();

function renderChosen() {
  replace(
    el.groupChosen,
    ...[...chosen.values()].map((user) =>
      h(
        'span',
        { className: 'chip' },
        user.display_name,
        h('button', { type: 'button', title: 'Remove', on: { click: () => { chosen.delete(user.id); renderChosen(); } } }, '×'),
      ),
    ),
  );
}

function groupCandidate(user) {
  return h(
    'li',
    {},
    presenceDot(user.id),
    personLabel(user),
    h('button', { type: 'button', className: 'small', on: { click: () => { chosen.set(user.id, user); renderChosen(); } } }, 'Add'),
  );
}

async function createGroup(event) {
  event.preventDefault();
  const form = new FormData(el.groupForm);
  const submit = el.groupForm.querySelector('[type=submit]');
  el.groupError.textContent = '';
  submit.disabled = true;
  try {
    const kind = form.get('public') ? 'public' : 'private';
    const room = await api.createRoom({ name: String(form.get('name')).trim(), topic: String(form.get('topic')).trim(), kind });
    addRoom({ ...room, role: 'owner', last_read_seq: room.last_seq });
    markJoined(room.id, room.last_seq);
    const invites = await Promise.allSettled([...chosen.keys()].map((id) => api.invite(room.id, id)));
    const refused = invites.filter((result) => result.status === 'rejected').length;
    if (refused) toast(`${refused} invitation(s) could not be sent.`);
    el.groupDialog.close();
    openRoom(room.id);
  } catch (error) {
    el.groupError.textContent = error.message;
  } finally {
    submit.disabled = false;
  }
}

async function leaveCurrent() {
  const room = currentRoom();
  if (!room || !confirm(`Leave ${roomName(room)}?`)) return;
  state.leaving.add(room.id);
  try {
    await api.leaveRoom(room.id);
    forgetRoom(room.id);
  } catch (error) {
    report(error, 'Leaving');
  } finally {
    state.leaving.delete(room.id);
  }
}

// --- signing in and out -------------------------------------------------------------------

let authMode = 'login';

function setAuthMode(mode) {
  authMode = mode;
  el.tabLogin.setAttribute('aria-selected', String(mode === 'login'));
  el.tabRegister.setAttribute('aria-selected', String(mode === 'register'));
  el.displayNameField.hidden = mode === 'login';
  el.authSubmit.textContent = mode === 'login' ? 'Log in' : 'Create account';
  el.authForm.elements.password.autocomplete = mode === 'login' ? 'current-password' : 'new-password';
  el.authError.textContent = '';
}

async function submitAuth(event) {
  event.preventDefault();
  if (!el.authForm.reportValidity()) return;
  const form = new FormData(el.authForm);
  const credentials = { username: String(form.get('username')).trim(), password: String(form.get('password')) };
  el.authSubmit.disabled = true;
  el.authError.textContent = '';
  try {
    if (authMode === 'login') await auth.login(credentials);
    else await auth.register({ ...credentials, display_name: String(form.get('display_name')).trim() });
  } catch (error) {
    el.authError.textContent = authErrorText(error);
  } finally {
    el.authSubmit.disabled = false;
  }
}

function authErrorText(error) {
  switch (error.code) {
    case 'invalid_credentials':
      return 'Wrong username or password.';
    case 'username_taken':
      return 'That username is taken.';
    case 'rate_limited':
      return 'Too many attempts. Wait a minute and try again.';
    case 'network':
      return `Cannot reach the server at ${settings.apiBase}.`;
    default:
      return error.message;
  }
}

function showAuth(message = '') {
  el.chatScreen.hidden = true;
  el.authScreen.hidden = false;
  el.authError.textContent = message;
  document.title = 'chat';
  el.authForm.elements.username.focus();
}

/** Logged in: connect, list rooms, open the last one. */
async function enterChat() {
  if (state.client) return;
  state.me = auth.user;
  state.users.set(state.me.id, state.me);
  el.authScreen.hidden = true;
  el.chatScreen.hidden = false;
  el.me.textContent = `${state.me.display_name} (@${state.me.username})`;
  const outbox = new Outbox({ key: `chat.outbox:${settings.apiBase}:${state.me.id}` });
  const client = new ChatClient({ url: settings.wsUrls, getToken: socketToken, outbox });
  state.client = client;
  wireClient(client);
  render();
  // Each room listed gives the client its head as REST shows it now; the
  // first sync replays whatever happens after, so nothing falls between.
  await loadRooms();
  if (state.client !== client) return; // logged out meanwhile
  client.start();
  const last = localStorage.getItem(lastRoomKey());
  const first = state.rooms.has(last) ? last : state.rooms.keys().next().value;
  if (first) openRoom(first);
}

/** The socket's token; when handshakes keep failing a REST call tells whether the login is the reason. */
async function socketToken({ reason }) {
  if (reason === 'suspect') {
    await api.me().catch((error) => {
      if (error instanceof AuthRequiredError) throw error;
    });
  }
  const token = await auth.accessToken();
  return { token, expiresAt: auth.expiresAt };
}

function leaveChat(message) {
  state.client?.stop();
  state.client = null;
  state.me = null;
  for (const key of ['rooms', 'timelines', 'users', 'members', 'readMarks', 'presence', 'typing', 'failed']) {
    state[key].clear();
  }
  state.currentRoomId = null;
  rows.clear();
  el.messageList.replaceChildren();
  lastRendered.sidebar = lastRendered.members = '';
  el.toasts.replaceChildren();
  setAuthMode('login');
  el.authForm.elements.password.value = '';
  showAuth(message);
}

async function logout() {
  const unsent = state.client?.pending().length ?? 0;
  if (unsent && !confirm(`${unsent} message(s) are not sent yet and will be lost. Log out anyway?`)) return;
  state.client?.outbox.clear();
  await auth.logout();
}

// --- wiring ---------------------------------------------------------------------------------

function wire() {
  el.tabLogin.addEventListener('click', () => setAuthMode('login'));
  el.tabRegister.addEventListener('click', () => setAuthMode('register'));
  el.authForm.addEventListener('submit', submitAuth);
  byId('logout').addEventListener('click', logout);
  el.reconnectNow.addEventListener('click', () => state.client?.reconnectNow());

  byId('browse-rooms').addEventListener('click', openBrowse);
  byId('new-dm').addEventListener('click', () => openPeople('dm'));
  el.invite.addEventListener('click', () => openPeople('invite'));
  el.leave.addEventListener('click', leaveCurrent);
  byId('new-group').addEventListener('click', () => {
    el.groupForm.reset();
    chosen.clear();
    renderChosen();
    replace(el.groupResults);
    el.groupError.textContent = '';
    el.groupDialog.showModal();
  });
  el.groupForm.addEventListener('submit', createGroup);
  peopleSearch(el.groupSearch, el.groupResults, groupCandidate);
  clearPeople = peopleSearch(el.peopleSearch, el.peopleResults, personRow);
  for (const button of document.querySelectorAll('dialog [data-close]')) {
    button.addEventListener('click', () => button.closest('dialog').close());
  }

  el.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    sendComposed();
  });
  el.composerInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendComposed();
    }
  });
  el.composerInput.addEventListener('input', () => {
    fitComposer();
    const room = currentRoom();
    if (room && el.composerInput.value.trim()) state.client?.typing(room.id);
  });

  el.loadOlder.addEventListener('click', () => state.currentRoomId && loadOlder(state.currentRoomId));
  el.messages.addEventListener('scroll', () => {
    const room = currentRoom();
    if (!room) return;
    if (el.messages.scrollTop < 40 && timeline(room.id).loadedLatest) loadOlder(room.id);
    markReadIfSeen(room);
    scheduleRender(); // this room's unread badge may have changed
  });
  document.addEventListener('visibilitychange', scheduleRender);
  // The reconnect countdown.
  setInterval(() => state.connection.state === 'waiting' && renderConnection(), 1000);

  auth.onChange((change) => {
    if (change === 'loggedIn') enterChat();
    if (change === 'loggedOut') leaveChat(state.me ? 'You have been logged out.' : '');
  });
}

wire();
setAuthMode('login');
if (auth.user) enterChat();
else showAuth();
