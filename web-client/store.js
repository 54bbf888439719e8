/**
 * The page's state, in one place, changed only by {@link Store#dispatch}:
 * the protocol client's events and the user's actions become actions, and
 * each action type has one small function that applies it. Subscribers
 * hear once per turn which parts changed (topics such as `rooms`,
 * `timeline:<room id>`, `members:<room id>`), so each view redraws only
 * what it shows, and only the rows that changed.
 *
 * Nothing here talks to the network or the DOM.
 *
 * @module store
 */

import { CHANGE_TYPES, RoomTimeline, applyChange } from './timeline.js';

/** How long a `typing` frame keeps its "is typing…" line. */
export const TYPING_SHOWN_MS = 5000;

/** A fresh, empty state (logged out). */
function emptyState() {
  return {
    /** @type {object|null} the logged-in user */
    me: null,
    /** @type {{state: string, retryAt?: number}} the socket's status */
    connection: { state: 'idle' },
    /** @type {Map<string, object>} room id → room (`GET /v1/rooms` shape, plus base_seq/base_unread/base_mentions) */
    rooms: new Map(),
    /** @type {Map<string, RoomTimeline>} */
    timelines: new Map(),
    /** @type {Map<string, object>} user id → user */
    users: new Map(),
    /** @type {Map<string, Map<string, string>>} room id → (user id → role) */
    members: new Map(),
    /** @type {Map<string, Map<string, number>>} room id → (user id → last read seq) */
    readMarks: new Map(),
    /** @type {Map<string, Map<string, string>>} room id → (user id → muted until, RFC 3339) */
    mutes: new Map(),
    /** @type {Map<string, 'online'|'offline'>} */
    presence: new Map(),
    /** @type {Set<string>} the users I block: their messages are collapsed and count for nothing */
    blocked: new Set(),
    /** @type {Map<string, Map<string, number>>} room id → (user id → shown until) */
    typing: new Map(),
    /** @type {Map<string, {loaded: boolean, stale: boolean, items: object[]}>} room id → its pinned messages */
    pins: new Map(),
    /** @type {object[]} the outbox: sends and changes not yet acknowledged */
    outbox: [],
    /** @type {Map<string, object>} client id → a send the server refused for good */
    failed: new Map(),
    /** @type {Map<string, number>} client id → how much of a held send's files is uploaded (0 to 1) */
    uploads: new Map(),
    currentRoomId: null,
    /** What the person is doing: answering, editing, the pins panel. */
    ui: {
      /** @type {{roomId: string, id: string}|null} the message being answered */
      replyTo: null,
      /** @type {{roomId: string, seq: number}|null} the message being edited */
      editing: null,
      pinsOpen: false,
    },
  };
}

/** The state and its subscribers. */
export class Store {
  #subscribers = new Set();
  #changed = new Set();
  #queued = false;

  constructor() {
    this.state = emptyState();
  }

  /**
   * Applies an action: `{type, ...payload}`, with `type` one of {@link reducers}.
   * @param {{type: string}} action
   */
  dispatch(action) {
    const apply = reducers[action.type];
    if (!apply) throw new Error(`store: no action "${action.type}"`);
    apply(this.state, action, (...topics) => this.#mark(topics));
  }

  /**
   * @param {(state: object, changed: Set<string>) => void} subscriber
   *   called once per turn after changes, with the topics that changed
   * @returns {() => void} unsubscribes
   */
  subscribe(subscriber) {
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /** Marks topics changed without an action (e.g. the clock moved: typing lines expire). */
  touch(...topics) {
    this.#mark(topics);
  }

  #mark(topics) {
    for (const topic of topics) this.#changed.add(topic);
    if (this.#queued || !topics.length) return;
    this.#queued = true;
    queueMicrotask(() => this.#flush());
  }

  #flush() {
    this.#queued = false;
    const changed = this.#changed;
    this.#changed = new Set();
    for (const subscriber of this.#subscribers) {
      try {
        subscriber(this.state, changed);
      } catch (error) {
        console.error('store: a subscriber failed', error);
      }
    }
  }
}

/** @returns {RoomTimeline} the room's timeline, made on first use */
export function timelineOf(state, roomId) {
  if (!state.timelines.has(roomId)) state.timelines.set(roomId, new RoomTimeline(state.me?.id));
  return state.timelines.get(roomId);
}

function pinsOf(state, roomId) {
  if (!state.pins.has(roomId)) state.pins.set(roomId, { loaded: false, stale: false, items: [] });
  return state.pins.get(roomId);
}

/**
 * One function per action type: `(state, action, mark)`, where `mark(...topics)`
 * says what changed.
 */
export const reducers = {
  // --- the session -------------------------------------------------------------
  loggedIn(state, { user }, mark) {
    Object.assign(state, emptyState(), { me: user });
    state.users.set(user.id, user);
    mark('me', 'rooms', 'current', 'connection');
  },

  loggedOut(state, _action, mark) {
    Object.assign(state, emptyState());
    mark('me', 'rooms', 'current', 'connection');
  },

  // --- blocks ----------------------------------------------------------------------
  blocksLoaded(state, { userIds }, mark) {
    state.blocked = new Set(userIds);
    mark('blocks', 'rooms', ...[...state.rooms.keys()].map((id) => `timeline:${id}`));
  },

  blockChanged(state, { userId, blocked }, mark) {
    if (blocked) state.blocked.add(userId);
    else state.blocked.delete(userId);
    mark('blocks', 'rooms', ...[...state.rooms.keys()].map((id) => `timeline:${id}`));
  },

  connection(state, { status }, mark) {
    state.connection = status;
    mark('connection', 'presence'); // my own dot follows the socket
  },

  // --- rooms ---------------------------------------------------------------------
  /**
   * Adds or refreshes a room; heads and read markers only move forward.
   * `afterSeq`: the socket delivers its events after this seq (history comes over REST).
   */
  roomUpserted(state, { room, afterSeq = room.last_seq ?? 0 }, mark) {
    const known = state.rooms.get(room.id);
    state.rooms.set(room.id, {
      ...known,
      ...room,
      role: room.role ?? known?.role ?? 'member',
      last_seq: Math.max(room.last_seq ?? 0, known?.last_seq ?? 0),
      last_read_seq: Math.max(room.last_read_seq ?? 0, known?.last_read_seq ?? 0),
      base_seq: known?.base_seq ?? afterSeq,
      base_unread: known?.base_unread ?? room.unread ?? 0,
      base_mentions: known?.base_mentions ?? room.unread_mentions ?? 0,
    });
    mark('rooms');
    if (room.id === state.currentRoomId) mark('current');
  },

  roomRemoved(state, { roomId }, mark) {
    state.rooms.delete(roomId);
    state.timelines.delete(roomId);
    state.members.delete(roomId);
    state.pins.delete(roomId);
    if (state.currentRoomId === roomId) {
      state.currentRoomId = null;
      mark('current');
    }
    if (state.ui.replyTo?.roomId === roomId) state.ui.replyTo = null;
    mark('rooms', 'ui');
  },

  roomOpened(state, { roomId }, mark) {
    if (state.currentRoomId === roomId) return;
    state.currentRoomId = roomId;
    state.ui.editing = null;
    mark('current', 'rooms', 'ui');
  },

  /** My read marker moved (by me here, or in another tab). */
  readMarked(state, { roomId, seq }, mark) {
    const room = state.rooms.get(roomId);
    if (!room || room.last_read_seq >= seq) return;
    room.last_read_seq = seq;
    mark('rooms');
  },

  membersLoaded(state, { roomId, members }, mark) {
    state.members.set(roomId, new Map(members.map((m) => [m.user.id, m.role])));
    state.readMarks.set(roomId, new Map(members.map((m) => [m.user.id, m.last_read_seq])));
    state.mutes.set(roomId, new Map(members.filter((m) => m.muted_until).map((m) => [m.user.id, m.muted_until])));
    for (const member of members) state.users.set(member.user.id, member.user);
    const mine = members.find((m) => m.user.id === state.me?.id);
    const room = state.rooms.get(roomId);
    if (mine && room && room.role !== mine.role) room.role = mine.role;
    mark(`members:${roomId}`, `timeline:${roomId}`, 'users', 'rooms');
    if (roomId === state.currentRoomId) mark('current');
  },

  usersSeen(state, { users }, mark) {
    for (const user of users) state.users.set(user.id, user);
    mark('users');
  },

  /** Someone (maybe me) changed their profile: their display name, say. */
  profileUpdated(state, { user }, mark) {
    state.users.set(user.id, user);
    mark('users');
    if (state.me?.id === user.id) {
      // A profile without `avatar` has none (any more).
      state.me = { ...state.me, ...user, avatar: user.avatar ?? null };
      mark('me');
    }
  },

  // --- timelines -------------------------------------------------------------------
  timelineLoading(state, { roomId, loading }, mark) {
    timelineOf(state, roomId).loading = loading;
    mark(`timeline:${roomId}`);
  },

  timelinePage(state, { roomId, items, lastSeq, isOldest, older }, mark) {
    const tl = timelineOf(state, roomId);
    if (!older) tl.loadedLatest = true;
    tl.addPage(items, { lastSeq, isOldest, older });
    const room = state.rooms.get(roomId);
    if (room) room.last_seq = Math.max(room.last_seq, lastSeq);
    mark(`timeline:${roomId}`, 'rooms');
  },

  /** A room event from the socket: the timeline, and whatever else it says. */
  event(state, { event }, mark) {
    const roomId = event.room_id;
    const room = state.rooms.get(roomId);
    if (!room) return;
    room.last_seq = Math.max(room.last_seq, event.seq);
    const { target } = timelineOf(state, roomId).addEvent(event);
    mark(`timeline:${roomId}`, 'rooms');
    (eventEffects[event.type] ?? (() => {}))(state, event, mark, target);
  },

  /** A send is durable: show it delivered now, without waiting for the event to come round. */
  acked(state, { ack, entry }, mark) {
    const room = state.rooms.get(ack.room_id);
    const message = { type: 'message', room_id: ack.room_id, seq: ack.seq, id: ack.id, ts: ack.ts, sender: state.me.id, client_id: ack.client_id, body: ack.body };
    if (entry?.reply_to) message.reply_to = entry.reply_to;
    // What the api said of each file when it was uploaded (less what only this page keeps).
    message.attachments = (ack.attachments ?? entry?.attachments ?? []).map(({ local, ...attachment }) => attachment);
    timelineOf(state, ack.room_id).addEvent(message, { provisional: true });
    if (room) {
      room.last_seq = Math.max(room.last_seq, ack.seq);
      // Sending reads the room up to my message (the server moved my marker too).
      room.last_read_seq = Math.max(room.last_read_seq, ack.seq);
    }
    mark(`timeline:${ack.room_id}`, 'rooms');
  },

  /** The outbox changed (queued, settled or refused): what is pending is shown from it. */
  outbox(state, { entries }, mark) {
    state.outbox = entries;
    mark('outbox');
  },

  sendFailed(state, { failure }, mark) {
    state.failed.set(failure.entry.client_id, failure);
    mark('outbox');
  },

  /** A held send's files are uploading (`fraction` null: no longer). */
  uploadProgress(state, { clientId, fraction }, mark) {
    if (fraction === null) state.uploads.delete(clientId);
    else state.uploads.set(clientId, fraction);
    mark('outbox');
  },

  failureDismissed(state, { clientId }, mark) {
    state.failed.delete(clientId);
    mark('outbox');
  },

  // --- ephemeral ---------------------------------------------------------------------
  typing(state, { roomId, userId, until }, mark) {
    if (userId === state.me?.id) return;
    if (!state.typing.has(roomId)) state.typing.set(roomId, new Map());
    state.typing.get(roomId).set(userId, until);
    mark(`typing:${roomId}`);
  },

  read(state, { roomId, userId, seq }, mark) {
    if (!state.readMarks.has(roomId)) state.readMarks.set(roomId, new Map());
    const marks = state.readMarks.get(roomId);
    marks.set(userId, Math.max(seq, marks.get(userId) ?? 0));
    mark(`timeline:${roomId}`); // "seen" on my messages
    if (userId === state.me?.id) reducers.readMarked(state, { roomId, seq }, mark);
  },

  presence(state, { userId, status }, mark) {
    if (state.presence.get(userId) === status) return;
    state.presence.set(userId, status);
    mark('presence');
  },

  // --- pins -------------------------------------------------------------------------------
  pinsLoaded(state, { roomId, pins, after }, mark) {
    const entry = pinsOf(state, roomId);
    entry.loaded = true;
    entry.stale = false;
    entry.items = pins.map((pin) => ({ ...pin, reactions: [] }));
    // Changes heard while the list was on its way.
    for (const change of timelineOf(state, roomId).changesAfter(after)) applyToPins(state, entry, change);
    mark(`pins:${roomId}`);
  },

  // --- what the person is doing -----------------------------------------------------------
  replyStarted(state, { roomId, id }, mark) {
    state.ui.replyTo = { roomId, id };
    mark('ui');
  },

  replyCancelled(state, _action, mark) {
    state.ui.replyTo = null;
    mark('ui');
  },

  editStarted(state, { roomId, seq }, mark) {
    state.ui.editing = { roomId, seq };
    mark('ui', `timeline:${roomId}`);
  },

  editEnded(state, _action, mark) {
    const roomId = state.ui.editing?.roomId;
    state.ui.editing = null;
    mark('ui', `timeline:${roomId}`);
  },

  pinsToggled(state, { open }, mark) {
    state.ui.pinsOpen = open ?? !state.ui.pinsOpen;
    mark('ui');
  },
};

/** What a room event changes besides the timeline. */
const eventEffects = {
  message(state, event, mark) {
    state.typing.get(event.room_id)?.delete(event.sender);
    mark(`typing:${event.room_id}`);
    // Sending reads the room up to my message (the server moved my
    // marker in the same commit).
    if (event.sender === state.me.id) reducers.readMarked(state, { roomId: event.room_id, seq: event.seq }, mark);
  },
  member_joined(state, event, mark) {
    const members = state.members.get(event.room_id);
    if (members && !members.has(event.user)) members.set(event.user, 'member');
    mark(`members:${event.room_id}`);
  },
  member_left(state, event, mark) {
    state.members.get(event.room_id)?.delete(event.user);
    state.readMarks.get(event.room_id)?.delete(event.user);
    mark(`members:${event.room_id}`);
  },
  role_changed(state, event, mark) {
    state.members.get(event.room_id)?.set(event.user, event.role);
    const room = state.rooms.get(event.room_id);
    if (room && event.user === state.me.id) room.role = event.role;
    mark(`members:${event.room_id}`, 'current');
  },
  room_updated(state, event, mark) {
    Object.assign(state.rooms.get(event.room_id), { name: event.name, topic: event.topic });
    mark('rooms', 'current');
  },
  member_muted(state, event, mark) {
    setMute(state, event.room_id, event.user, event.until);
    mark(`members:${event.room_id}`, 'current');
  },
  member_unmuted(state, event, mark) {
    setMute(state, event.room_id, event.user, null);
    mark(`members:${event.room_id}`, 'current');
  },
  slow_mode_changed(state, event, mark) {
    state.rooms.get(event.room_id).slow_mode_seconds = event.seconds;
    mark('rooms', 'current');
  },
};

/** Records a member's mute (`until` null: lifted); mine is also the room's `muted_until`. */
function setMute(state, roomId, userId, until) {
  if (!state.mutes.has(roomId)) state.mutes.set(roomId, new Map());
  if (until) state.mutes.get(roomId).set(userId, until);
  else state.mutes.get(roomId).delete(userId);
  const room = state.rooms.get(roomId);
  if (room && userId === state.me?.id) {
    if (until) room.muted_until = until;
    else delete room.muted_until;
  }
}
for (const type of CHANGE_TYPES) {
  eventEffects[type] = (state, event, mark) => {
    const entry = state.pins.get(event.room_id);
    if (entry?.loaded && applyToPins(state, entry, event)) mark(`pins:${event.room_id}`);
  };
}

/** Brings a room's pin list up to date with one change; true if it changed. */
function applyToPins(state, entry, change) {
  const at = entry.items.findIndex((pin) => pin.id === change.target);
  switch (change.type) {
    case 'message_pinned': {
      if (at >= 0) return false;
      const message = timelineOf(state, change.room_id).byId(change.target);
      // Not loaded here: the list is read again when next shown.
      if (!message || message.deleted) {
        entry.stale = true;
        return true;
      }
      entry.items.unshift({ ...message, pinned: { by: change.sender, at: change.ts } });
      return true;
    }
    case 'message_unpinned':
    case 'message_deleted':
      if (at < 0) return false;
      entry.items.splice(at, 1);
      return true;
    case 'message_edited':
      return at >= 0 && applyChange(entry.items[at], change, state.me?.id);
    default:
      return false;
  }
}

// --- reading the state ---------------------------------------------------------------------

/** @returns {object|null} the open room */
export function currentRoom(state) {
  return state.rooms.get(state.currentRoomId) ?? null;
}

/**
 * A user's `@handle` to show beside their name: none for a deleted account
 * (whose username is a `deleted-<id>` placeholder no one can register).
 * @returns {string|null}
 */
export function handleOf(state, userId) {
  const username = state.users.get(userId)?.username ?? null;
  return username && !(username.startsWith('deleted-') && username.length > 32) ? username : null;
}

/** @returns {string} a user's display name */
export function userName(state, userId) {
  if (!userId) return 'someone';
  return state.users.get(userId)?.display_name ?? 'a former member';
}

/** @returns {string|null} the other person of a direct room, if known */
export function dmPartner(state, room) {
  const members = state.members.get(room.id);
  if (!members) return null;
  return [...members.keys()].find((id) => id !== state.me?.id) ?? null;
}

/** @returns {string} what the room is called here */
export function roomName(state, room) {
  if (room.kind !== 'direct') return room.name;
  const partner = dmPartner(state, room);
  return partner ? userName(state, partner) : 'Direct message';
}

/** @returns {boolean} whether I block this user */
export function isBlocked(state, userId) {
  return state.blocked.has(userId);
}

/** @returns {boolean} */
export function isOnline(state, userId) {
  if (userId === state.me?.id) return state.connection.state === 'online';
  return state.presence.get(userId) === 'online';
}

/** @returns {boolean} whether a message mentions me (by name, or the room) */
export function mentionsMe(state, item) {
  if (state.blocked.has(item.sender)) return false;
  return item.type === 'message' && !item.deleted && item.sender !== state.me?.id && (item.mentions_room || (item.mentions ?? []).includes(state.me?.id));
}

/**
 * Unread messages from others (and of them, the ones that mention me), as
 * the api counts them. Up to `base_seq` (the head when the room was
 * listed) that is the list's `unread` and `unread_mentions`, until my
 * marker passes `base_seq`; every later event reaches the timeline over
 * the socket, and of those only others' messages count, not joins, changes
 * or my own sends.
 * @returns {{unread: number, mentions: number}}
 */
export function unreadCounts(state, room) {
  const read = room.last_read_seq;
  const before = read < room.base_seq;
  let unread = before ? room.base_unread : 0;
  let mentions = before ? room.base_mentions : 0;
  const from = Math.max(read, room.base_seq);
  const items = timelineOf(state, room.id).items();
  for (let i = items.length - 1; i >= 0 && items[i].seq > from; i -= 1) {
    const item = items[i];
    // What people I block write counts for nothing (the api's counts agree).
    if (item.type !== 'message' || item.sender === state.me.id || state.blocked.has(item.sender)) continue;
    unread += 1;
    if (mentionsMe(state, item)) mentions += 1;
  }
  return { unread, mentions };
}

/** @returns {boolean} whether I may pin and unpin in the room */
export function canPin(room) {
  return room.kind === 'direct' || room.role === 'owner' || room.role === 'admin';
}

/** @returns {boolean} whether I may delete this message */
export function canDelete(state, room, item) {
  return item.sender === state.me?.id || (room.kind !== 'direct' && (room.role === 'owner' || room.role === 'admin'));
}

/** @returns {boolean} whether I may invite people to the room */
export function canInvite(room) {
  if (room.kind === 'direct') return false;
  return room.kind === 'public' || room.role === 'owner' || room.role === 'admin';
}

/** @returns {boolean} whether `@room` mentions everyone when I write it here */
export function canMentionRoom(room) {
  return room.kind !== 'direct' && (room.role === 'owner' || room.role === 'admin');
}

/**
 * @returns {Date|null} until when a member is muted in a room, if a mute is
 *   in force now (mine from the room list and events, others' from the
 *   member list and events)
 */
export function mutedUntil(state, roomId, userId, now = Date.now()) {
  const until = userId === state.me?.id ? state.rooms.get(roomId)?.muted_until : state.mutes.get(roomId)?.get(userId);
  if (!until) return null;
  const end = new Date(until);
  return end.getTime() > now ? end : null;
}

/** @returns {boolean} whether I may mute or unmute this member (an owner or admin above them) */
export function canModerate(state, room, userId) {
  if (room.kind === 'direct' || userId === state.me?.id) return false;
  const rank = { member: 0, admin: 1, owner: 2 };
  const theirs = state.members.get(room.id)?.get(userId) ?? 'member';
  return rank[room.role] >= 1 && rank[room.role] > rank[theirs];
}

/** @returns {boolean} whether I may set the room's slow mode */
export function canSetSlowMode(room) {
  return room.kind !== 'direct' && (room.role === 'owner' || room.role === 'admin');
}
