/**
 * The `chat.v1` WebSocket protocol client: one connection to a gateway,
 * kept alive across failures, with the client's half of the delivery
 * contract (docs/protocol.md).
 *
 * What it does for you:
 * - connects with the access token in the `chat.v1, bearer.<jwt>`
 *   subprotocol and renews it on the socket (`auth`) before it expires;
 * - keeps, per room, the highest seq it has handed to you (the *cursor*),
 *   resumes with `sync` from it after every reconnect, drops repeats
 *   (dedup by room and seq) and re-syncs a room if a gap ever shows;
 * - keeps sends, and changes of messages (edit, delete, react, unreact,
 *   pin, unpin), in an {@link Outbox} (localStorage by default) until they
 *   are acknowledged, so they survive reconnects and page reloads, and
 *   retries them with the same `client_id` (the server makes that
 *   idempotent);
 * - reconnects with jittered exponential {@link Backoff}, cycles through
 *   several gateway URLs, detects dead connections with `ping`, and waits
 *   for the browser's `online` event when the network is gone.
 *
 * It knows nothing about the REST api: give it a `getToken` function.
 *
 * @example
 * import { ChatClient, Outbox } from './chat-client.js';
 * const chat = new ChatClient({
 *   url: 'ws://127.0.0.1:8080/v1/ws',
 *   getToken: async () => ({ token: await auth.accessToken(), expiresAt: auth.expiresAt }),
 *   outbox: new Outbox({ key: `chat.outbox.${userId}` }),
 * });
 * chat.on('event', (ev) => console.log(ev.room_id, ev.seq, ev.type, ev.body));
 * chat.on('ack', (ack) => console.log('delivered', ack.client_id, ack.seq));
 * chat.start({ [roomId]: lastSeqIHave });
 * chat.send(roomId, 'hello');
 *
 * @module chat-client
 */

/** The subprotocol every connection offers. */
export const SUBPROTOCOL = 'chat.v1';

/** Close codes of `chat.v1` (docs/protocol.md, "Close codes"). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  PROTOCOL_ERROR: 1002,
  INVALID_DATA: 1007,
  TOO_BIG: 1009,
  RESTARTING: 1012,
  SLOW_CONSUMER: 1013,
  HEARTBEAT_TIMEOUT: 4000,
  TOKEN_EXPIRED: 4001,
  SESSION_REVOKED: 4002,
  UNAVAILABLE: 4003,
});

/** The `type`s of the events that change a message after it was sent (each names it in `target`). */
export const MESSAGE_CHANGE_EVENT_TYPES = Object.freeze(
  new Set(['message_edited', 'message_deleted', 'reaction_added', 'reaction_removed', 'message_pinned', 'message_unpinned']),
);

/** The `type`s of the frames that are events of a room's log. */
export const ROOM_EVENT_TYPES = Object.freeze(
  new Set([
    'message',
    ...MESSAGE_CHANGE_EVENT_TYPES,
    'member_joined',
    'member_left',
    'role_changed',
    'room_updated',
    'member_muted',
    'member_unmuted',
    'slow_mode_changed',
    'member_invited',
    'invite_declined',
    'invite_cancelled',
    'call_started',
    'call_ended',
  ]),
);

/**
 * The frames that change a message, and the fields each carries besides
 * `room_id`, `client_id` and `target`.
 */
export const CHANGE_FRAMES = Object.freeze({
  edit: ['body'],
  delete: [],
  react: ['emoji'],
  unreact: ['emoji'],
  pin: [],
  unpin: [],
});

/** Longest message body the server accepts by default (`CHAT_MAX_BODY_CHARS`). */
export const MAX_BODY_CHARS = 4000;

/** Send errors worth retrying with the same `client_id`; any other code is final. */
const RETRYABLE_SEND_ERRORS = new Set(['unavailable', 'rate_limited']);


/**
 * Jittered exponential backoff ("equal jitter"): each delay is half the
 * exponential step plus a random half of it, so clients that lost the
 * same gateway neither retry in lockstep nor retry instantly.
 */
export class Backoff {
  /**
   * @param {object} [options]
   * @param {number} [options.baseMs=500] first step
   * @param {number} [options.maxMs=30000] largest step
   * @param {number} [options.factor=2] growth per attempt
   * @param {() => number} [options.random=Math.random] source of jitter (tests)
   */
  constructor({ baseMs = 500, maxMs = 30_000, factor = 2, random = Math.random } = {}) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.factor = factor;
    this.random = random;
    /** Attempts since the last {@link Backoff#reset}. */
    this.attempt = 0;
  }

  /** @returns {number} the delay before the next attempt, in ms */
  next() {
    const step = Math.min(this.maxMs, this.baseMs * this.factor ** this.attempt);
    this.attempt += 1;
    return Math.round(step / 2 + this.random() * (step / 2));
  }

  /** Starts over from the base delay (after a connection proved healthy). */
  reset() {
    this.attempt = 0;
  }
}

/**
 * @typedef {object} PendingSend
 * @property {string} client_id idempotency key, kept across retries and reloads
 * @property {string} room_id
 * @property {string} body
 * @property {string} [reply_to] the id of the message it answers
 * @property {PendingAttachment[]} [attachments] the files it carries
 * @property {number} created_at ms since the epoch, when it was queued
 */

/**
 * A file a send carries. Only `id` goes on the wire; whatever else the app
 * keeps here (name, size, where it kept the bytes) is stored with the send.
 * A send with an attachment that has no `id` yet (not uploaded: offline, or
 * its upload expired) is *held*: kept, but not sent, and the room's later
 * sends wait behind it, until {@link ChatClient#setAttachments} gives ids.
 * @typedef {{id?: string} & Record<string, any>} PendingAttachment
 */

/** Most files one message carries (the server's `MAX_ATTACHMENTS`). */
export const MAX_ATTACHMENTS = 10;

/**
 * A change of a message (edit, delete, react, unreact, pin, unpin) waiting
 * for its `ack`: kept in the same {@link Outbox} as the sends, in order.
 * @typedef {object} PendingChange
 * @property {string} client_id idempotency key, kept across retries and reloads
 * @property {string} room_id
 * @property {'edit'|'delete'|'react'|'unreact'|'pin'|'unpin'} type the frame
 * @property {string} target the id of the message
 * @property {string} [body] the new text (`edit`)
 * @property {string} [emoji] the emoji (`react`, `unreact`)
 * @property {number} created_at ms since the epoch, when it was queued
 */

/**
 * Sends waiting for their `ack`, in the order they were made.
 *
 * Persisted in a Storage (localStorage by default) under one key, so a
 * reload re-sends them with their original `client_id`. Every change is a
 * read-modify-write of the stored list, so two tabs of the same user add
 * and remove entries without overwriting each other's. Without a usable
 * storage it keeps the list in memory.
 */
export class Outbox {
  /**
   * @param {object} options
   * @param {string} options.key storage key; make it per user (and per server)
   * @param {Storage|null} [options.storage=globalThis.localStorage]
   */
  constructor({ key, storage = globalThis.localStorage ?? null }) {
    this.key = key;
    this.storage = storage;
    /** @type {PendingSend[]} fallback when storage is unavailable */
    this.memory = [];
  }

  /** @returns {PendingSend[]} every pending send, oldest first */
  list() {
    if (!this.storage) return [...this.memory];
    try {
      const parsed = JSON.parse(this.storage.getItem(this.key) ?? '[]');
      return Array.isArray(parsed) ? parsed : [];
    } catch {
      return [...this.memory];
    }
  }

  /** @param {string} clientId @returns {PendingSend|undefined} */
  get(clientId) {
    return this.list().find((entry) => entry.client_id === clientId);
  }

  /** @param {PendingSend} entry appended at the end */
  add(entry) {
    this.#write([...this.list().filter((e) => e.client_id !== entry.client_id), entry]);
  }

  /**
   * Replaces an entry in place (its turn in the queue is kept).
   * @param {PendingSend} entry
   * @returns {boolean} whether it was there
   */
  replace(entry) {
    const entries = this.list();
    const at = entries.findIndex((e) => e.client_id === entry.client_id);
    if (at < 0) return false;
    entries[at] = entry;
    this.#write(entries);
    return true;
  }

  /** @param {string} clientId @returns {boolean} whether it was there */
  remove(clientId) {
    const entries = this.list();
    const kept = entries.filter((entry) => entry.client_id !== clientId);
    if (kept.length !== entries.length) this.#write(kept);
    return kept.length !== entries.length;
  }

  /** Forgets every pending send (e.g. on logout). */
  clear() {
    this.memory = [];
    try {
      this.storage?.removeItem(this.key);
    } catch {
      // Nothing stored, nothing to forget.
    }
  }

  #write(entries) {
    this.memory = entries;
    if (!this.storage) return;
    try {
      this.storage.setItem(this.key, JSON.stringify(entries));
    } catch {
      // Quota or privacy mode: the memory copy still serves this page.
      this.storage = null;
    }
  }
}

/**
 * The issue and expiry times of a JWT, read from its payload without
 * verifying it (the server verifies; the client only needs to know when to
 * renew).
 *
 * @param {string} token
 * @returns {{issuedAt: number, expiresAt: number}|null} ms since the epoch
 *   (server clock), or null if unreadable
 */
export function jwtTimes(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const { iat, exp } = JSON.parse(atob(payload));
    if (typeof exp !== 'number') return null;
    return { issuedAt: (typeof iat === 'number' ? iat : exp) * 1000, expiresAt: exp * 1000 };
  } catch {
    return null;
  }
}

/**
 * @param {string|TokenGrant} result what `getToken` returned
 * @returns {{token: string, expiresAt: number|null, lifetime: number|null}}
 */
function readGrant(result) {
  const token = typeof result === 'string' ? result : result.token;
  const times = jwtTimes(token);
  return {
    token,
    expiresAt: (typeof result === 'object' && result.expiresAt) || (times?.expiresAt ?? null),
    lifetime: times ? times.expiresAt - times.issuedAt : null,
  };
}

/** @throws {RangeError} unless `body` is a text the server accepts */
function checkBody(body) {
  if (typeof body !== 'string' || !body.trim() || [...body].length > MAX_BODY_CHARS || body.includes('\0')) {
    throw new RangeError(`a message is 1 to ${MAX_BODY_CHARS} characters, not only spaces`);
  }
}

/** @returns {boolean} whether every file of a send has its id (it may go on the wire) */
export function isReady(entry) {
  return !entry.attachments || entry.attachments.every((attachment) => typeof attachment.id === 'string' && attachment.id);
}

/** The frame that puts an outbox entry (a send or a change) on the wire. */
function frameOf(entry) {
  const { client_id, room_id } = entry;
  if (!entry.type) {
    const frame = { type: 'send', room_id, client_id, body: entry.body };
    if (entry.reply_to) frame.reply_to = entry.reply_to;
    if (entry.attachments?.length) frame.attachments = entry.attachments.map((attachment) => attachment.id);
    return frame;
  }
  const frame = { type: entry.type, room_id, client_id, target: entry.target };
  for (const field of CHANGE_FRAMES[entry.type] ?? []) frame[field] = entry[field];
  return frame;
}

/** @returns {string} a fresh `client_id`: time-ordered, unique, visible ASCII */
export function newClientId() {
  const random = new Uint8Array(10);
  crypto.getRandomValues(random);
  const hex = Array.from(random, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${Date.now().toString(36)}-${hex}`;
}

/**
 * Connection states, as reported by the `status` event:
 * - `idle`: not started;
 * - `connecting`: opening a socket, waiting for `hello`;
 * - `online`: live (`hello` received, `sync` sent);
 * - `waiting`: the connection failed; the next attempt is at `retryAt`;
 * - `offline`: the browser has no network; reconnects when it returns (and
 *   tries every `backoff.maxMs` anyway);
 * - `stopped`: {@link ChatClient#stop} was called, or authentication failed.
 * @typedef {'idle'|'connecting'|'online'|'waiting'|'offline'|'stopped'} ConnectionState
 */

/**
 * Events emitted (listen with {@link ChatClient#on}), each with one argument:
 * - `status` `{state, retryAt?, attempt, url?, closeCode?}`: the {@link ConnectionState} changed;
 * - `hello` the server's `hello` frame (`user`, `rooms`, `session_id`, `heartbeat_ms`);
 * - `event` a room event (`message`, `member_joined`, …), in seq order, once per (room, seq);
 * - `synced` `{room_id, seq}`: a room's replay is complete;
 * - `pending` a {@link PendingSend} just queued;
 * - `ack` `{client_id, room_id, seq, id, ts, body, attachments}`: a send is durable;
 * - `sendFailed` `{entry, code, message}`: the server refused a send for good;
 * - `changed` `{client_id, room_id, seq, id, ts, entry}`: a change of a message
 *   ({@link PendingChange}) is durable (its event comes as an `event` too);
 * - `changeFailed` `{entry, code, message}`: the server refused a change for good;
 * - `typing`, `read`, `presence`, `signal`: relayed frames, as received;
 * - `call` `{call}`: a call of mine changed (docs/protocol.md, "Calls");
 * - `roomAdded` `{room, seq}` and `roomRemoved` `{room_id}`;
 * - `invite` `{invite}` (an invitation waits for my answer) and
 *   `invite_removed` `{invite_id}` (answered or withdrawn);
 * - `error` an `error` frame that is not about a pending send;
 * - `authFailed` the token could not be obtained (logged out): the client stopped.
 * @typedef {'status'|'hello'|'event'|'synced'|'pending'|'ack'|'sendFailed'|'changed'|'changeFailed'|'typing'|'read'|'presence'|'signal'|'call'|'roomAdded'|'roomRemoved'|'blockChanged'|'userUpdated'|'invite'|'invite_removed'|'error'|'authFailed'} ChatEventType
 */

/**
 * What `getToken` may return instead of a bare token: with `expiresAt` by
 * the browser's own clock, renewal is right even when that clock is off
 * (otherwise the token's `exp` is taken at face value).
 * @typedef {object} TokenGrant
 * @property {string} token the access token (JWT)
 * @property {number} [expiresAt] ms since the epoch, local clock
 */

/**
 * Thrown by a `getToken` that can never succeed (the session is gone), so
 * the client stops instead of retrying.
 */
export class AuthRequiredError extends Error {
  /** @param {string} [message] */
  constructor(message = 'authentication required') {
    super(message);
    this.name = 'AuthRequiredError';
  }
}

/** A `chat.v1` connection that keeps itself alive; see the module doc. */
export class ChatClient {
  /** @type {Map<string, Set<Function>>} */
  #handlers = new Map();
  /** @type {ConnectionState} */
  #state = 'idle';
  /** @type {WebSocket|null} the live or opening socket */
  #ws = null;
  /** @type {Map<string, number>} room → highest seq handed to the app */
  #cursors = new Map();
  /** Rooms whose re-sync is in flight, so a gap asks only once. */
  #resyncing = new Set();
  /** @type {Map<string, ReturnType<typeof setTimeout>>} client_id → ack timer, sends on the wire */
  #inflight = new Map();
  /** @type {Map<string, ReturnType<typeof setTimeout>>} client_id → retry timer after a refusal */
  #retrying = new Map();
  /** @type {Map<string, number>} client_id → refusals so far, for the retry delay */
  #refusals = new Map();
  /** @type {Map<string, number>} room → read marker not yet sent */
  #unsentReads = new Map();
  /** @type {Map<string, number>} room → when `typing` was last sent */
  #typingSentAt = new Map();
  #timers = { retry: null, heartbeat: null, renew: null, stable: null, hello: null };
  #urlIndex = 0;
  #lastHeard = 0;
  #heartbeatMs = 20_000;
  /** @type {{token: string, expiresAt: number|null, lifetime: number|null}|null}
   *  the token the socket's session runs on (the handshake's, then each `auth`'s) */
  #socketToken = null;
  /** Connections that failed before `hello`, in a row: the token may be the cause. */
  #failedHandshakes = 0;
  #user = null;
  /** @type {string|null} this connection's `session_id`, from its `hello` */
  #sessionId = null;
  #onOnline = () => this.reconnectNow();
  #onOffline = () => this.#goOffline();

  /**
   * @param {object} options
   * @param {string|string[]} options.url gateway WebSocket URL(s), e.g.
   *   `ws://host/v1/ws`; with several, each reconnect tries the next
   * @param {(context: {reason: 'connect'|'renew'|'expired'|'suspect'}) => Promise<string|TokenGrant>} options.getToken
   *   returns a valid access token (or a {@link TokenGrant}); `suspect`
   *   means handshakes keep failing (browsers hide the 401), so check or
   *   refresh it; throw {@link AuthRequiredError} when there is none to be had
   * @param {Outbox} [options.outbox] where pending sends live (default: in memory only)
   * @param {(entry: PendingSend, error: {code: string, message: string}) => PendingSend|null} [options.rescueSend]
   *   asked before a send with attachments is given up (`sendFailed`): a
   *   send returned here (same `client_id`, e.g. its files without ids, to
   *   be uploaded again) takes its place in the queue instead
   * @param {Backoff} [options.backoff] reconnect delays
   * @param {number} [options.ackTimeoutMs=15000] resend (same `client_id`) when no ack came by then
   * @param {number} [options.helloTimeoutMs=10000] give up on a socket that sends no `hello`
   * @param {number} [options.renewBeforeMs=60000] renew the token on the socket this long before it
   *   expires (or a quarter of its lifetime before, if that is shorter)
   * @param {number} [options.stableAfterMs=10000] a connection live this long resets the backoff
   * @param {typeof WebSocket} [options.WebSocket=globalThis.WebSocket]
   */
  constructor({
    url,
    getToken,
    outbox = new Outbox({ key: 'chat.outbox', storage: null }),
    rescueSend = null,
    backoff = new Backoff(),
    ackTimeoutMs = 15_000,
    helloTimeoutMs = 10_000,
    renewBeforeMs = 60_000,
    stableAfterMs = 10_000,
    WebSocket: WebSocketImpl = globalThis.WebSocket,
  }) {
    this.urls = Array.isArray(url) ? [...url] : [url];
    if (this.urls.length === 0) throw new TypeError('ChatClient needs at least one url');
    this.getToken = getToken;
    this.outbox = outbox;
    this.rescueSend = rescueSend;
    this.backoff = backoff;
    this.options = { ackTimeoutMs, helloTimeoutMs, renewBeforeMs, stableAfterMs };
    this.WebSocket = WebSocketImpl;
    // Spread a fleet of clients over the pool from the first connection on.
    this.#urlIndex = Math.floor(Math.random() * this.urls.length);
  }

  /**
   * Subscribes to an event.
   * @param {ChatEventType} type
   * @param {(detail: any) => void} handler
   * @returns {() => void} unsubscribes
   */
  on(type, handler) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(handler);
    return () => this.#handlers.get(type)?.delete(handler);
  }

  /** @returns {ConnectionState} */
  get state() {
    return this.#state;
  }

  /** @returns {object|null} the user of the current session, from `hello` */
  get user() {
    return this.#user;
  }

  /**
   * Starts connecting (and keeps reconnecting until {@link ChatClient#stop}).
   *
   * @param {Record<string, number>} [cursors] room → the last seq the app
   *   already has (e.g. `last_seq` from `GET /v1/rooms`): the first `sync`
   *   replays everything after it. Rooms not given start at the head
   *   that `hello` reports.
   */
  start(cursors = {}) {
    for (const [room, seq] of Object.entries(cursors)) {
      if (!this.#cursors.has(room)) this.#cursors.set(room, seq);
    }
    if (this.#state !== 'idle' && this.#state !== 'stopped') return;
    globalThis.addEventListener?.('online', this.#onOnline);
    globalThis.addEventListener?.('offline', this.#onOffline);
    this.#connect('connect');
  }

  /**
   * Closes the connection for good (pending sends stay in the outbox).
   * @param {number} [code=1000]
   */
  stop(code = CloseCode.NORMAL) {
    globalThis.removeEventListener?.('online', this.#onOnline);
    globalThis.removeEventListener?.('offline', this.#onOffline);
    this.#dropSocket(code, 'client stopped');
    clearTimeout(this.#timers.retry);
    this.#setState('stopped');
  }

  /** Skips the wait and reconnects at once (e.g. the user clicked "retry"). */
  reconnectNow() {
    if (this.#state === 'stopped' || this.#state === 'idle') return;
    if (this.#state === 'online' || this.#state === 'connecting') return;
    clearTimeout(this.#timers.retry);
    this.backoff.reset();
    this.#connect('connect');
  }

  /**
   * @param {string} roomId
   * @returns {number|undefined} the highest seq handed to the app for the room
   */
  cursor(roomId) {
    return this.#cursors.get(roomId);
  }

  /**
   * Starts receiving a room the app learned of over REST (joined, created,
   * a DM opened, or listed by `GET /v1/rooms`): its events after `afterSeq`
   * are delivered, live and after every reconnect.
   *
   * The gateway announces new rooms itself (`room_added`), but only when
   * it hears of them on the bus, which a gateway without Redis does not;
   * a `sync` for the room makes the session follow it at once either way.
   * A room with a cursor is already followed (from `hello`, `room_added`
   * or an earlier call), and is left alone.
   *
   * @param {string} roomId
   * @param {number} afterSeq the newest seq the app has (or will load over REST)
   */
  follow(roomId, afterSeq) {
    if (this.#cursors.has(roomId)) return;
    this.#cursors.set(roomId, afterSeq);
    // Offline, the next `hello`'s sync covers it.
    this.#transmit({ type: 'sync', rooms: { [roomId]: afterSeq } });
  }

  /**
   * Queues a message. It is kept (and survives reloads) until the server
   * acknowledges it; listen for `ack` or `sendFailed`.
   *
   * @param {string} roomId
   * @param {string} body plain text, 1 to {@link MAX_BODY_CHARS} characters
   *   (`""` when it carries files)
   * @param {{replyTo?: string, attachments?: (string|PendingAttachment)[], clientId?: string}} [options]
   *   `replyTo`: the id of the message it answers; `attachments`: up to
   *   {@link MAX_ATTACHMENTS} files, by id or as {@link PendingAttachment}s
   *   (one without an id holds the send); `clientId`: a key made
   *   beforehand with {@link newClientId}
   * @returns {PendingSend}
   * @throws {RangeError} if the body is empty or too long, or too many files (it would never be accepted)
   */
  send(roomId, body, { replyTo, attachments = [], clientId = newClientId() } = {}) {
    if (attachments.length > MAX_ATTACHMENTS) throw new RangeError(`a message carries at most ${MAX_ATTACHMENTS} files`);
    if (!(attachments.length && body === '')) checkBody(body);
    const entry = { client_id: clientId, room_id: roomId, body, created_at: Date.now() };
    if (replyTo) entry.reply_to = replyTo;
    if (attachments.length) entry.attachments = attachments.map((a) => (typeof a === 'string' ? { id: a } : { ...a }));
    // Receivers drop "is typing" when the message lands, so the next
    // keystroke must announce it again at once.
    this.#typingSentAt.delete(roomId);
    this.outbox.add(entry);
    this.#emit('pending', entry);
    this.#pump();
    return entry;
  }

  /**
   * Queues a change of a message: like a send, it is kept (and survives
   * reloads) until acknowledged, goes out in order with the room's sends
   * with the same `client_id` on every retry, and settles with `changed`
   * or `changeFailed`.
   *
   * @param {string} roomId
   * @param {'edit'|'delete'|'react'|'unreact'|'pin'|'unpin'} type
   * @param {string} target the id of the message
   * @param {{body?: string, emoji?: string}} [fields] `body` for `edit`, `emoji` for `react` and `unreact`
   * @returns {PendingChange}
   * @throws {RangeError} for an unknown type or a missing or unusable field
   */
  change(roomId, type, target, fields = {}) {
    if (!Object.hasOwn(CHANGE_FRAMES, type)) throw new RangeError(`no change frame "${type}"`);
    if (typeof target !== 'string' || !target) throw new RangeError('a change names its message');
    const entry = { client_id: newClientId(), room_id: roomId, type, target, created_at: Date.now() };
    for (const field of CHANGE_FRAMES[type]) {
      const value = fields[field];
      if (typeof value !== 'string' || !value.trim()) throw new RangeError(`${type} needs a ${field}`);
      if (field === 'body') checkBody(value);
      entry[field] = value;
    }
    this.outbox.add(entry);
    this.#emit('pending', entry);
    this.#pump();
    return entry;
  }

  /**
   * Gives a held send its files' ids (uploaded at last): it goes out in
   * its turn.
   * @param {string} clientId
   * @param {PendingAttachment[]} attachments the send's files, now or later with ids
   * @returns {boolean} whether the send is still pending
   */
  setAttachments(clientId, attachments) {
    const entry = this.outbox.get(clientId);
    if (!entry || entry.type) return false;
    this.outbox.replace({ ...entry, attachments: attachments.map((a) => ({ ...a })) });
    this.#pump();
    return true;
  }

  /**
   * Gives up a pending send for a reason found here (a file that cannot be
   * uploaded): it leaves the outbox and `sendFailed` tells, as for a
   * refusal of the server.
   * @param {string} clientId
   * @param {string} code
   * @param {string} message for people
   */
  failSend(clientId, code, message) {
    const entry = this.outbox.get(clientId);
    if (!entry || this.#inflight.has(clientId)) return;
    this.outbox.remove(clientId);
    this.#emit('sendFailed', { entry, code, message });
    this.#pump();
  }

  /** Changes the text of one of my messages (see {@link ChatClient#change}). */
  edit(roomId, target, body) {
    return this.change(roomId, 'edit', target, { body });
  }

  /** Deletes a message: mine, or any as an owner or admin. */
  deleteMessage(roomId, target) {
    return this.change(roomId, 'delete', target);
  }

  /** Adds my reaction (one emoji) to a message. */
  react(roomId, target, emoji) {
    return this.change(roomId, 'react', target, { emoji });
  }

  /** Takes my reaction back. */
  unreact(roomId, target, emoji) {
    return this.change(roomId, 'unreact', target, { emoji });
  }

  /** Pins a message (owners and admins; either member of a DM). */
  pin(roomId, target) {
    return this.change(roomId, 'pin', target);
  }

  /** Unpins a message. */
  unpin(roomId, target) {
    return this.change(roomId, 'unpin', target);
  }

  /**
   * @param {string} [roomId] only this room's
   * @returns {PendingSend[]} sends not yet acknowledged, oldest first
   */
  pending(roomId) {
    return this.outbox.list().filter((entry) => !entry.type && (roomId === undefined || entry.room_id === roomId));
  }

  /**
   * @param {string} [roomId] only this room's
   * @returns {PendingChange[]} changes of messages not yet acknowledged, oldest first
   */
  pendingChanges(roomId) {
    return this.outbox.list().filter((entry) => entry.type && (roomId === undefined || entry.room_id === roomId));
  }

  /**
   * Says "I am typing" in a room; throttled to one frame per 3 s, so call
   * it on every keystroke. Dropped when not connected (it is ephemeral).
   * @param {string} roomId
   */
  typing(roomId) {
    const now = Date.now();
    if (now - (this.#typingSentAt.get(roomId) ?? 0) < 3000) return;
    if (this.#transmit({ type: 'typing', room_id: roomId })) this.#typingSentAt.set(roomId, now);
  }

  /**
   * Marks a room read up to `seq`. Sent now, or right after the next
   * `sync` when offline (only the highest marker per room is kept).
   * @param {string} roomId
   * @param {number} seq
   */
  markRead(roomId, seq) {
    if (seq > (this.#unsentReads.get(roomId) ?? -1)) this.#unsentReads.set(roomId, seq);
    this.#flushReads();
  }

  /** @returns {string|null} this connection's `session_id` (from `hello`; null before it) */
  get sessionId() {
    return this.#sessionId;
  }

  /**
   * Sends a frame of a call: `call_place {room_id, video}`, `call_accept`,
   * `call_decline` or `call_hangup {call_id}` (docs/protocol.md, "Calls").
   * Not queued: a call lives on this connection or not at all, so a frame
   * that cannot go now is of no use later. The answer is a `call` event
   * (or an `error` whose `ref` is the room of a `call_place`, the call
   * otherwise).
   * @param {'call_place'|'call_accept'|'call_decline'|'call_hangup'} type
   * @param {{room_id?: string, video?: boolean, call_id?: string}} fields
   * @returns {boolean} whether it went out
   */
  callFrame(type, fields) {
    return this.#transmit({ type, ...fields });
  }

  /**
   * Relays a WebRTC signalling message to the other party of a call I take
   * part in (the server knows which connection of theirs it is for).
   * @param {string} callId
   * @param {'offer'|'answer'|'ice'} kind
   * @param {unknown} payload an SDP or a candidate, at most 16 KiB as JSON
   * @returns {boolean} whether it went out (signals are not queued)
   */
  signal(callId, kind, payload) {
    return this.#transmit({ type: 'signal', call_id: callId, kind, payload });
  }

  // --- connection lifecycle -------------------------------------------------

  async #connect(reason) {
    this.#setState('connecting');
    let grant;
    try {
      grant = readGrant(await this.getToken({ reason }));
    } catch (error) {
      if (error instanceof AuthRequiredError) {
        this.stop();
        this.#emit('authFailed', error);
      } else {
        this.#scheduleReconnect();
      }
      return;
    }
    // stop() or a newer attempt may have happened while the token came.
    if (this.#state !== 'connecting' || this.#ws) return;
    const url = this.urls[this.#urlIndex % this.urls.length];
    this.#urlIndex += 1;
    let ws;
    try {
      ws = new this.WebSocket(url, [SUBPROTOCOL, `bearer.${grant.token}`]);
    } catch {
      this.#scheduleReconnect();
      return;
    }
    this.#ws = ws;
    this.#socketToken = grant;
    this.#setState('connecting', { url });
    ws.onmessage = (message) => this.#ws === ws && this.#onText(message.data);
    ws.onclose = (close) => this.#ws === ws && this.#onClose(close);
    // Closing follows every error; onclose decides what to do.
    ws.onerror = () => {};
    this.#timers.hello = setTimeout(() => {
      if (this.#ws === ws && this.#state === 'connecting') this.#lost(CloseCode.UNAVAILABLE);
    }, this.options.helloTimeoutMs);
  }

  #onClose(close) {
    const code = close.code;
    this.#detach();
    if (this.#state === 'stopped') return;
    if (this.#state === 'connecting') this.#failedHandshakes += 1;
    this.#scheduleReconnect(code);
  }

  /** The socket is unusable (dead, or should be abandoned): drop it and retry. */
  #lost(code) {
    this.#dropSocket(code, 'connection lost');
    this.#scheduleReconnect(code);
  }

  #goOffline() {
    if (this.#state === 'stopped' || this.#state === 'idle') return;
    // With the network gone the socket is dead even if the browser has not
    // noticed; waiting for its timeout would only delay the resume.
    this.#dropSocket(CloseCode.NORMAL, 'offline');
    this.#waitForNetwork();
  }

  /**
   * Offline: the `online` event reconnects. A slow retry as well, because
   * a browser can be wrong about having no network.
   */
  #waitForNetwork(closeCode) {
    clearTimeout(this.#timers.retry);
    this.#setState('offline', { closeCode });
    this.#timers.retry = setTimeout(() => this.#connect('connect'), this.backoff.maxMs);
  }

  #scheduleReconnect(closeCode) {
    if (this.#state === 'stopped') return;
    if (globalThis.navigator?.onLine === false) return this.#waitForNetwork(closeCode);
    clearTimeout(this.#timers.retry);
    const delay = this.backoff.next();
    const retryAt = Date.now() + delay;
    this.#setState('waiting', { retryAt, closeCode });
    const reason = this.#reconnectReason(closeCode);
    this.#timers.retry = setTimeout(() => this.#connect(reason), delay);
  }

  #reconnectReason(closeCode) {
    if (closeCode === CloseCode.TOKEN_EXPIRED) return 'expired';
    // The login ended (logged out elsewhere, revoked): have it checked at
    // once, so the page asks to log in instead of retrying a dead token.
    if (closeCode === CloseCode.SESSION_REVOKED) return 'suspect';
    // A refused handshake looks like any other failure in a browser (1006):
    // after two in a row, have the token checked.
    return this.#failedHandshakes >= 2 ? 'suspect' : 'connect';
  }

  /** Closes and forgets the socket, and everything tied to it. */
  #dropSocket(code, reason) {
    const ws = this.#ws;
    this.#detach();
    if (!ws) return;
    try {
      // Browsers only let a page close with 1000 or 3000–4999.
      ws.close(code === CloseCode.NORMAL || (code >= 3000 && code <= 4999) ? code : 1000, reason);
    } catch {
      // Already closed.
    }
  }

  #detach() {
    if (this.#ws) {
      this.#ws.onmessage = this.#ws.onclose = null;
    }
    this.#ws = null;
    // The session ended with its socket; the next `hello` names the new one.
    this.#sessionId = null;
    for (const name of ['heartbeat', 'renew', 'stable', 'hello']) {
      clearTimeout(this.#timers[name]);
      clearInterval(this.#timers[name]);
    }
    for (const timer of [...this.#inflight.values(), ...this.#retrying.values()]) clearTimeout(timer);
    this.#inflight.clear();
    this.#retrying.clear();
    this.#resyncing.clear();
  }

  // --- inbound frames -------------------------------------------------------

  #onText(text) {
    this.#lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (ROOM_EVENT_TYPES.has(frame.type)) return this.#onRoomEvent(frame);
    switch (frame.type) {
      case 'hello':
        return this.#onHello(frame);
      case 'ack':
        return this.#onAck(frame);
      case 'error':
        return this.#onError(frame);
      case 'synced':
        this.#resyncing.delete(frame.room_id);
        return this.#emit('synced', frame);
      case 'room_added':
        // Delivery of the room starts at the event that added me.
        if (!this.#cursors.has(frame.room.id)) this.#cursors.set(frame.room.id, frame.seq - 1);
        return this.#emit('roomAdded', frame);
      case 'room_removed':
        this.#cursors.delete(frame.room_id);
        return this.#emit('roomRemoved', frame);
      case 'typing':
      case 'read':
      case 'presence':
      case 'signal':
      case 'call':
      case 'invite':
      case 'invite_removed':
        return this.#emit(frame.type, frame);
      case 'user_updated':
        return this.#emit('userUpdated', frame);
      case 'block_changed':
        return this.#emit('blockChanged', frame);
      default:
        return undefined; // pong, and frames of later protocol versions
    }
  }

  #onHello(hello) {
    clearTimeout(this.#timers.hello);
    this.#user = hello.user;
    this.#sessionId = hello.session_id ?? null;
    this.#heartbeatMs = hello.heartbeat_ms || 20_000;
    const heads = new Map(hello.rooms.map((r) => [r.room_id, r.last_seq]));
    for (const room of [...this.#cursors.keys()]) {
      if (!heads.has(room)) {
        // Left or removed while we were away: nothing more will come.
        this.#cursors.delete(room);
        this.#emit('roomRemoved', { room_id: room });
      }
    }
    for (const [room, head] of heads) {
      if (!this.#cursors.has(room)) this.#cursors.set(room, head);
    }
    // The first frame must be the `sync`: room events are held until it,
    // so its replay comes before anything live (docs/protocol.md).
    this.#write({ type: 'sync', rooms: Object.fromEntries(this.#cursors) });
    this.#failedHandshakes = 0;
    this.#setState('online');
    this.#emit('hello', hello);
    this.#startHeartbeat();
    this.#scheduleRenewal();
    this.#timers.stable = setTimeout(() => this.backoff.reset(), this.options.stableAfterMs);
    this.#flushReads();
    this.#pump();
  }

  /** Hands an event to the app once, in seq order; a gap triggers a re-sync. */
  #onRoomEvent(event) {
    const room = event.room_id;
    const have = this.#cursors.get(room);
    if (have !== undefined && event.seq <= have) return; // a repeat
    if (have !== undefined && event.seq > have + 1) return this.#resync(room);
    this.#cursors.set(room, event.seq);
    this.#emit('event', event);
    // Our own message (or change of one) came back: it is durable even if
    // its ack was lost with a previous connection.
    if (event.sender === this.#user?.id && event.client_id && (event.type === 'message' || MESSAGE_CHANGE_EVENT_TYPES.has(event.type))) {
      this.#settle(event.client_id, { ...event, client_id: event.client_id });
    }
  }

  /** Asks for a room's replay from our cursor (contract point 3 heals any gap). */
  #resync(room) {
    if (this.#resyncing.has(room)) return;
    this.#resyncing.add(room);
    this.#transmit({ type: 'sync', rooms: { [room]: this.#cursors.get(room) } });
  }

  #onAck(ack) {
    this.#settle(ack.client_id, ack);
  }

  /** A send is durable: forget it and tell the app, once. */
  #settle(clientId, ack) {
    clearTimeout(this.#inflight.get(clientId));
    this.#inflight.delete(clientId);
    this.#refusals.delete(clientId);
    const entry = this.outbox.get(clientId);
    if (!entry || !this.outbox.remove(clientId)) return;
    const { room_id, seq, id, ts } = ack;
    if (entry.type) this.#emit('changed', { client_id: clientId, room_id, seq, id, ts, entry });
    else this.#emit('ack', { client_id: clientId, room_id, seq, id, ts, body: entry.body, attachments: entry.attachments ?? [] });
    this.#pump(); // the room's next send may go
  }

  #onError(error) {
    const entry = error.ref ? this.outbox.get(error.ref) : undefined;
    if (!entry) {
      if (error.ref) this.#resyncing.delete(error.ref);
      return this.#emit('error', error);
    }
    clearTimeout(this.#inflight.get(entry.client_id));
    this.#inflight.delete(entry.client_id);
    if (RETRYABLE_SEND_ERRORS.has(error.code)) return this.#retryLater(entry);
    // Its uploads may have expired unsent: the app may upload them again.
    const rescued = !entry.type && entry.attachments?.length ? this.rescueSend?.(entry, error) : null;
    if (rescued && rescued.client_id === entry.client_id && this.outbox.replace(rescued)) {
      this.#emit('pending', rescued);
      return this.#pump();
    }
    this.outbox.remove(entry.client_id);
    this.#emit(entry.type ? 'changeFailed' : 'sendFailed', { entry, code: error.code, message: error.message });
    this.#pump();
  }

  // --- outbound -------------------------------------------------------------

  /** @returns {boolean} whether the frame went out on a live (post-`hello`) socket */
  #transmit(frame) {
    return this.#state === 'online' && this.#write(frame);
  }

  /** @returns {boolean} whether the frame went out on the socket */
  #write(frame) {
    if (this.#ws?.readyState !== 1) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Puts pending sends on the wire: per room, only the oldest, and the next
   * one once it is acknowledged. Pipelining would be faster, but a send the
   * server refuses for a moment (`rate_limited`, `unavailable`) and retries
   * would then land after later ones; this way a room's messages are stored
   * in the order they were written. Rooms do not wait for each other.
   */
  #pump() {
    if (this.#state !== 'online') return;
    const busy = new Set();
    for (const entry of this.outbox.list()) {
      const room = entry.room_id;
      if (busy.has(room)) continue;
      busy.add(room);
      // A held send (files not uploaded yet) keeps the room's later ones
      // waiting, so the room's messages stay in the order they were written.
      if (!isReady(entry)) continue;
      const id = entry.client_id;
      if (!this.#inflight.has(id) && !this.#retrying.has(id)) this.#transmitSend(entry);
    }
  }

  #transmitSend(entry) {
    const { client_id } = entry;
    if (!this.#transmit(frameOf(entry))) return;
    // No ack in time: send again with the same client_id, which at worst
    // earns a second ack for the same seq.
    const timer = setTimeout(() => {
      this.#inflight.delete(client_id);
      // As it is now (its files may have been given new ids meanwhile).
      const current = this.outbox.get(client_id);
      if (current && isReady(current)) this.#transmitSend(current);
    }, this.options.ackTimeoutMs);
    this.#inflight.set(client_id, timer);
  }

  /** The server could not take a send just now: try again, backing off per message. */
  #retryLater(entry) {
    const refusals = (this.#refusals.get(entry.client_id) ?? 0) + 1;
    this.#refusals.set(entry.client_id, refusals);
    const delay = new Backoff({ baseMs: 1000, maxMs: 30_000 });
    delay.attempt = refusals - 1;
    const timer = setTimeout(() => {
      this.#retrying.delete(entry.client_id);
      this.#pump();
    }, delay.next());
    this.#retrying.set(entry.client_id, timer);
  }

  #flushReads() {
    for (const [room, seq] of this.#unsentReads) {
      if (this.#transmit({ type: 'read', room_id: room, seq })) this.#unsentReads.delete(room);
    }
  }

  /**
   * Pings every half heartbeat and gives up on a connection whose ping went
   * unanswered for a whole heartbeat: a half-open TCP connection would
   * otherwise look alive until the OS notices, minutes later. Judged from
   * our own ping, not from silence, because a background tab's timers may
   * fire only once a minute and a quiet room says nothing in between.
   */
  #startHeartbeat() {
    let pingSentAt = null;
    this.#timers.heartbeat = setInterval(() => {
      const now = Date.now();
      const unanswered = pingSentAt !== null && this.#lastHeard < pingSentAt;
      if (unanswered) {
        if (now - pingSentAt > this.#heartbeatMs) this.#lost(CloseCode.HEARTBEAT_TIMEOUT);
        return; // still waiting for the answer
      }
      if (this.#transmit({ type: 'ping' })) pingSentAt = now;
    }, this.#heartbeatMs / 2);
  }

  /**
   * Sends a fresh token on the socket (`auth`) before the one its session
   * runs on expires; otherwise the gateway closes it with 4001.
   */
  #scheduleRenewal() {
    const ws = this.#ws;
    const current = this.#socketToken;
    if (!current?.expiresAt) return;
    const ahead = Math.min(this.options.renewBeforeMs, (current.lifetime ?? Infinity) / 4);
    // At least 2 s apart, for when the refresh keeps failing until expiry.
    const wait = Math.max(2_000, current.expiresAt - Date.now() - ahead);
    this.#timers.renew = setTimeout(async () => {
      let fresh;
      try {
        fresh = readGrant(await this.getToken({ reason: 'renew' }));
      } catch {
        return; // the close (4001) will tell; reconnecting asks again
      }
      if (this.#ws !== ws) return;
      if (fresh.token !== current.token && this.#transmit({ type: 'auth', token: fresh.token })) {
        this.#socketToken = fresh;
      }
      this.#scheduleRenewal();
    }, wait);
  }

  // --- plumbing -------------------------------------------------------------

  #setState(state, extra = {}) {
    this.#state = state;
    this.#emit('status', { state, attempt: this.backoff.attempt, ...extra });
  }

  #emit(type, detail) {
    for (const handler of this.#handlers.get(type) ?? []) {
      try {
        handler(detail);
      } catch (error) {
        // One broken listener must not stop delivery to the others.
        console.error(`chat-client: a "${type}" listener failed`, error);
      }
    }
  }
}
