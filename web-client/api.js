/**
 * The REST side of the chat: an {@link AuthSession} that logs in and keeps
 * the access token fresh (refresh-token rotation, serialised across tabs),
 * and an {@link Api} with one method per route the web client uses
 * (uploads too, with progress).
 *
 * The api answers every error as `{"error": {"code", "message"}}`; both
 * classes throw {@link ApiError}s carrying that code.
 *
 * @module api
 */

import { AuthRequiredError } from './chat-client.js';

/** An error answer of the api (or a network failure, `status` 0). */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request never got an answer
   * @param {string} code stable error code (`network` for no answer)
   * @param {string} message for people
   */
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/**
 * Refresh this long before the access token expires, or a third of its
 * lifetime if that is shorter. The socket renews a little later (60 s or a
 * quarter of the lifetime before expiry), so it finds the fresh token.
 */
const REFRESH_AHEAD_MS = 90_000;

/** @param {StoredSession} session @returns {number} ms before expiry to refresh */
function refreshAhead(session) {
  return Math.min(REFRESH_AHEAD_MS, session.lifetime_ms / 3);
}

/**
 * @typedef {object} StoredSession
 * @property {string} access_token
 * @property {string} refresh_token
 * @property {number} expires_at ms since the epoch, by this browser's clock
 * @property {number} lifetime_ms the access token's lifetime (`expires_in`)
 * @property {string} session_id
 * @property {{id: string, username: string, display_name: string}} user
 */

/**
 * The session as every tab of the origin sees it, in IndexedDB.
 *
 * localStorage is what a page reads at start and what tells the other tabs
 * of a change (its `storage` event), but Chrome copies it between the tabs'
 * processes lazily: a tab that has just taken the refresh lock may still
 * read the refresh token another tab spent a moment ago there, and
 * presenting it would log the session out. IndexedDB is one store for all
 * tabs, so inside the lock the session is read from and written to it.
 */
class SharedRecord {
  /** @param {string} name the record's key */
  constructor(name) {
    this.name = name;
    /** @type {Promise<IDBDatabase>|null} */
    this.database = null;
  }

  /** @returns {Promise<any>} the record, or undefined */
  get() {
    return this.#run('readonly', (records) => records.get(this.name));
  }

  /** @param {object|null} value null deletes the record */
  put(value) {
    return this.#run('readwrite', (records) =>
      value === null ? records.delete(this.name) : records.put(value, this.name),
    );
  }

  #open() {
    this.database ??= new Promise((resolve, reject) => {
      const opening = indexedDB.open('chat-web-client', 1);
      opening.onupgradeneeded = () => opening.result.createObjectStore('records');
      opening.onsuccess = () => resolve(opening.result);
      opening.onerror = () => reject(opening.error);
    });
    return this.database;
  }

  async #run(mode, act) {
    const database = await this.#open();
    return new Promise((resolve, reject) => {
      const transaction = database.transaction('records', mode);
      const request = act(transaction.objectStore('records'));
      transaction.oncomplete = () => resolve(request.result);
      transaction.onerror = transaction.onabort = () => reject(transaction.error);
    });
  }
}

/** @returns {boolean} whether `session` has what a {@link StoredSession} needs */
function isSession(session) {
  return Boolean(session?.access_token && session?.refresh_token && session?.lifetime_ms);
}

/**
 * One login, kept in the browser so it survives reloads and is shared by
 * the tabs of this origin.
 *
 * Refresh tokens are single-use and presenting a spent one logs the whole
 * session out, so refreshes are serialised: one at a time in this tab
 * (concurrent callers share the same promise) and, through the Web Locks
 * API, across tabs. Whoever holds the lock reads the session from
 * IndexedDB ({@link SharedRecord}), adopts a token another tab already
 * refreshed, and otherwise rotates and writes the result back before
 * letting go.
 */
export class AuthSession {
  /** @type {StoredSession|null} */
  #session = null;
  /** @type {Promise<StoredSession>|null} the refresh in flight, shared */
  #refreshing = null;
  #refreshTimer = null;
  #listeners = new Set();

  /**
   * @param {object} options
   * @param {string} options.apiBase e.g. `http://127.0.0.1:8080` (no trailing slash)
   * @param {Storage} [options.storage=localStorage]
   * @param {typeof fetch} [options.fetch]
   */
  constructor({ apiBase, storage = globalThis.localStorage, fetch = globalThis.fetch.bind(globalThis) }) {
    this.apiBase = apiBase;
    this.storage = storage;
    this.fetch = fetch;
    this.key = `chat.session:${apiBase}`;
    this.shared = globalThis.indexedDB ? new SharedRecord(this.key) : null;
    this.#session = this.#load();
    this.#scheduleRefresh();
    // Another tab logged in, refreshed or logged out.
    globalThis.addEventListener?.('storage', (event) => {
      if (event.key !== this.key) return;
      const before = this.#session;
      this.#session = this.#load();
      this.#scheduleRefresh();
      if (before && !this.#session) this.#notify('loggedOut');
      else if (!before && this.#session) this.#notify('loggedIn');
    });
  }

  /**
   * @param {(event: 'loggedIn'|'loggedOut'|'refreshed') => void} listener
   * @returns {() => void} unsubscribes
   */
  onChange(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** @returns {StoredSession['user']|null} who is logged in */
  get user() {
    return this.#session?.user ?? null;
  }

  /** @returns {number|null} when the current access token expires (ms, this browser's clock) */
  get expiresAt() {
    return this.#session?.expires_at ?? null;
  }

  /** @returns {string|null} the session id (as in `GET /v1/auth/sessions`) */
  get sessionId() {
    return this.#session?.session_id ?? null;
  }

  /**
   * Creates an account and logs in.
   * @param {{username: string, password: string, display_name?: string}} account
   */
  async register(account) {
    const body = { username: account.username, password: account.password };
    if (account.display_name) body.display_name = account.display_name;
    await this.#adopt(await this.#post('/v1/auth/register', body));
    this.#notify('loggedIn');
  }

  /** @param {{username: string, password: string}} credentials */
  async login({ username, password }) {
    await this.#adopt(await this.#post('/v1/auth/login', { username, password }));
    this.#notify('loggedIn');
  }

  /** Ends the session on the server (best effort) and forgets it here. */
  async logout() {
    const token = this.#session?.access_token;
    this.#forget();
    if (token) {
      await this.fetch(`${this.apiBase}/v1/auth/logout`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      }).catch(() => {});
    }
  }

  /**
   * Forgets the session that `accessToken` belongs to, if it is still the
   * current one: a late answer to a request of an earlier login must not
   * end a newer one.
   * @param {string} accessToken the token the server refused
   */
  async endIfCurrent(accessToken) {
    const stored = this.#load();
    if (this.#session?.access_token === accessToken || stored?.access_token === accessToken) {
      await this.logout();
    }
  }

  /**
   * A valid access token, refreshed first if it expires within `minValidityMs`.
   * @param {{minValidityMs?: number}} [options] default: most of the refresh
   *   lead, so a token is never handed out just before it would be refreshed
   * @returns {Promise<string>}
   * @throws {AuthRequiredError} when logged out (or the session was revoked)
   */
  async accessToken({ minValidityMs } = {}) {
    const session = this.#session;
    if (!session) throw new AuthRequiredError();
    const minimum = minValidityMs ?? refreshAhead(session) * 0.8;
    if (session.expires_at - Date.now() > minimum) return session.access_token;
    return (await this.refresh(session.access_token)).access_token;
  }

  /**
   * Rotates the refresh token, once at a time across tabs.
   * @param {string} [staleAccessToken] the token found expiring or refused;
   *   a stored session with a different, still fresh one is adopted instead
   * @returns {Promise<StoredSession>}
   * @throws {AuthRequiredError} when the session is gone; ApiError(0) when offline
   */
  refresh(staleAccessToken = this.#session?.access_token) {
    this.#refreshing ??= this.#withRefreshLock(() => this.#rotate(staleAccessToken)).finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #rotate(staleAccessToken) {
    // Another tab may have rotated while we waited for the lock.
    const stored = await this.#readShared();
    if (!stored) {
      this.#forget();
      throw new AuthRequiredError();
    }
    if (stored.access_token !== staleAccessToken && stored.expires_at - Date.now() > refreshAhead(stored)) {
      this.#session = stored;
      this.#scheduleRefresh();
      return stored;
    }
    try {
      await this.#adopt(await this.#post('/v1/auth/refresh', { refresh_token: stored.refresh_token }));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        this.#forget();
        throw new AuthRequiredError(error.message);
      }
      // Offline or the server is struggling: keep the tokens, try again soon.
      this.#scheduleRefresh(5_000);
      throw error;
    }
    this.#notify('refreshed');
    return this.#session;
  }

  #withRefreshLock(fn) {
    const locks = globalThis.navigator?.locks;
    // Web Locks exist in secure contexts (https, localhost); elsewhere a
    // tab serialises only its own refreshes.
    return locks ? locks.request(`${this.key}:refresh`, fn) : fn();
  }

  #scheduleRefresh(delayMs) {
    clearTimeout(this.#refreshTimer);
    if (!this.#session) return;
    const ahead = refreshAhead(this.#session);
    const wait = delayMs ?? Math.max(1_000, this.#session.expires_at - Date.now() - ahead);
    this.#refreshTimer = setTimeout(() => {
      this.accessToken({ minValidityMs: ahead }).catch(() => {});
    }, wait);
  }

  async #adopt(tokens) {
    this.#session = {
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      // By our clock, from the lifetime, so a skewed clock does not matter.
      expires_at: Date.now() + tokens.expires_in * 1000,
      lifetime_ms: tokens.expires_in * 1000,
      session_id: tokens.session_id,
      user: tokens.user,
    };
    // The shared copy first: it is the one the next lock holder reads.
    await this.shared?.put(this.#session).catch(() => {});
    this.storage.setItem(this.key, JSON.stringify(this.#session));
    this.#scheduleRefresh();
  }

  /** The session as the tabs agree on it (localStorage where IndexedDB is missing). */
  async #readShared() {
    try {
      const shared = await this.shared?.get();
      if (isSession(shared)) return shared;
    } catch {
      // IndexedDB refused (a privacy mode): localStorage is all there is.
    }
    return this.#load();
  }

  #forget() {
    const had = this.#session !== null;
    this.#session = null;
    clearTimeout(this.#refreshTimer);
    this.shared?.put(null).catch(() => {});
    this.storage.removeItem(this.key);
    if (had) this.#notify('loggedOut');
  }

  #load() {
    try {
      const session = JSON.parse(this.storage.getItem(this.key) ?? 'null');
      return isSession(session) ? session : null;
    } catch {
      return null;
    }
  }

  async #post(path, body) {
    return request(this.fetch, `${this.apiBase}${path}`, { method: 'POST', body });
  }

  #notify(event) {
    for (const listener of this.#listeners) listener(event);
  }
}

/**
 * One fetch, answered as parsed JSON or thrown as an {@link ApiError}.
 * @returns {Promise<any>}
 */
async function request(fetchFn, url, { method = 'GET', body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetchFn(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, 'network', `cannot reach the server (${error.message})`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: a proxy's error page, say.
  }
  if (!response.ok) {
    const error = json?.error ?? {};
    throw new ApiError(response.status, error.code ?? `http_${response.status}`, error.message ?? response.statusText);
  }
  return json;
}

/**
 * The routes of `chat-api` the web client uses, authenticated through an
 * {@link AuthSession}. A 401 `invalid_token` (expired early, clock skew)
 * refreshes once and retries.
 */
export class Api {
  /**
   * @param {object} options
   * @param {string} options.apiBase e.g. `http://127.0.0.1:8080`
   * @param {AuthSession} options.auth
   * @param {typeof fetch} [options.fetch]
   */
  constructor({ apiBase, auth, fetch = globalThis.fetch.bind(globalThis) }) {
    this.apiBase = apiBase;
    this.auth = auth;
    this.fetch = fetch;
  }

  /**
   * An authenticated request.
   * @param {string} method
   * @param {string} path starting with `/v1/`
   * @param {object} [body] sent as JSON
   * @returns {Promise<any>} the parsed answer
   */
  async call(method, path, body) {
    const token = await this.auth.accessToken();
    try {
      return await request(this.fetch, `${this.apiBase}${path}`, { method, body, token });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      if (error.code !== 'invalid_token') {
        // session_revoked and the like: this login is over.
        await this.auth.endIfCurrent(token);
        throw new AuthRequiredError(error.message);
      }
      const fresh = (await this.auth.refresh(token)).access_token;
      return request(this.fetch, `${this.apiBase}${path}`, { method, body, token: fresh });
    }
  }

  /** @returns {Promise<object>} the logged-in user */
  me() {
    return this.call('GET', '/v1/users/me');
  }

  /** @param {string} roomId accepts the DM request sent to me there */
  acceptDm(roomId) {
    return this.call('POST', `/v1/dms/${encodeURIComponent(roomId)}/accept`);
  }

  /** @param {string} roomId declines the DM request sent to me there */
  declineDm(roomId) {
    return this.call('POST', `/v1/dms/${encodeURIComponent(roomId)}/decline`);
  }

  /** @param {string} roomId hides my DM until its next message */
  closeDm(roomId) {
    return this.call('POST', `/v1/dms/${encodeURIComponent(roomId)}/close`);
  }

  /** @returns {Promise<object[]>} the users I block, newest first: `{user, blocked_at}` */
  blocks() {
    return this.call('GET', '/v1/users/me/blocks');
  }

  /** @param {string} userId blocks them (again: nothing changes) */
  block(userId) {
    return this.call('PUT', `/v1/users/me/blocks/${encodeURIComponent(userId)}`);
  }

  /** @param {string} userId lifts my block of them */
  unblock(userId) {
    return this.call('DELETE', `/v1/users/me/blocks/${encodeURIComponent(userId)}`);
  }

  /**
   * The ICE servers for a call's RTCPeerConnection, with fresh TURN
   * credentials: asked again for each call.
   * @returns {Promise<{ice_servers: object[], ice_transport_policy: 'all'|'relay', ttl_secs: number}>}
   */
  iceServers() {
    return this.call('GET', '/v1/calls/ice-servers');
  }

  /** @returns {Promise<object[]>} my rooms, with `last_seq`, `last_read_seq` and `role` */
  myRooms() {
    return this.call('GET', '/v1/rooms');
  }

  /** @returns {Promise<object[]>} every public room */
  publicRooms() {
    return this.call('GET', '/v1/rooms/public');
  }

  /**
   * @param {{name: string, topic?: string, kind: 'public'|'private'}} room
   * @returns {Promise<object>} the new room (I own it)
   */
  createRoom(room) {
    return this.call('POST', '/v1/rooms', room);
  }

  /** @param {string} roomId @returns {Promise<object>} the `member_joined` event */
  joinRoom(roomId) {
    return this.call('POST', `/v1/rooms/${encodeURIComponent(roomId)}/join`);
  }

  /** @param {string} roomId @returns {Promise<object>} the `member_left` event */
  leaveRoom(roomId) {
    return this.call('POST', `/v1/rooms/${encodeURIComponent(roomId)}/leave`);
  }

  /** @param {string} roomId @returns {Promise<object[]>} `{user, role, joined_at, last_read_seq}` */
  members(roomId) {
    return this.call('GET', `/v1/rooms/${encodeURIComponent(roomId)}/members`);
  }

  /** @param {string} roomId @param {string} userId @returns {Promise<object>} the `member_joined` event */
  invite(roomId, userId) {
    return this.call('POST', `/v1/rooms/${encodeURIComponent(roomId)}/members`, { user_id: userId });
  }

  /**
   * A page of a room's log, ascending by seq.
   * @param {string} roomId
   * @param {{before?: number, after?: number, limit?: number}} [page]
   * @returns {Promise<{events: object[], last_seq: number}>}
   */
  events(roomId, { before, after, limit = 50 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined) query.set('before', String(before));
    if (after !== undefined) query.set('after', String(after));
    return this.call('GET', `/v1/rooms/${encodeURIComponent(roomId)}/events?${query}`);
  }

  /**
   * A page of a room's timeline: the log's events less the changes of
   * messages, with each message as it is now (edits applied, deletions as
   * tombstones, reactions counted, its pin and its reply preview).
   * Ascending by seq; paged by seq like {@link Api#events}.
   * @param {string} roomId
   * @param {{before?: number, after?: number, limit?: number}} [page]
   * @returns {Promise<{items: object[], last_seq: number}>}
   */
  timeline(roomId, { before, after, limit = 50 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined) query.set('before', String(before));
    if (after !== undefined) query.set('after', String(after));
    return this.call('GET', `/v1/rooms/${encodeURIComponent(roomId)}/timeline?${query}`);
  }

  /** @param {string} roomId @returns {Promise<{pins: object[]}>} its pinned messages as they are now, the latest pin first */
  pins(roomId) {
    return this.call('GET', `/v1/rooms/${encodeURIComponent(roomId)}/pins`);
  }

  /** @param {string} q part of a username or display name @returns {Promise<object[]>} up to 20 users */
  searchUsers(q) {
    return this.call('GET', `/v1/users?${new URLSearchParams({ q })}`);
  }

  /**
   * Searches the messages of my rooms, newest first: each hit's `highlight`
   * is its text cut into `{text, match}` parts (data, never HTML).
   * @param {string} q the query (words, "phrases", -excluded)
   * @param {{before?: string, roomId?: string}} [page] `before`: the `next_before` of the page before
   * @returns {Promise<{hits: object[], next_before?: string}>}
   */
  searchMessages(q, { before, roomId } = {}) {
    const query = new URLSearchParams({ q });
    if (before) query.set('before', before);
    if (roomId) query.set('room_id', roomId);
    return this.call('GET', `/v1/search?${query}`);
  }

  /** @param {string} userId @returns {Promise<object>} the direct room with them (created on first use) */
  openDm(userId) {
    return this.call('POST', '/v1/dms', { user_id: userId });
  }

  /**
   * A short-lived link to an attachment's bytes, made absolute (the api may
   * answer with a path of its own).
   * @param {string} id
   * @param {'file'|'thumbnail'} [variant]
   * @returns {Promise<{url: string, expires_at: string}>}
   */
  async attachmentLink(id, variant = 'file') {
    const link = await this.call('GET', `/v1/attachments/${encodeURIComponent(id)}?${new URLSearchParams({ variant })}`);
    return { ...link, url: new URL(link.url, `${this.apiBase}/`).href };
  }

  /**
   * Uploads a file into a room, with progress. XMLHttpRequest, because
   * fetch tells nothing of an upload's progress. A 401 `invalid_token`
   * refreshes once and uploads again, like {@link Api#call}.
   * @param {string} roomId
   * @param {Blob} file its `name` (or `name`) and `type` are sent with it
   * @param {{name?: string, onProgress?: (fraction: number) => void, signal?: AbortSignal}} [options]
   * @returns {Promise<object>} the attachment (`{id, name, content_type, size, width?, height?, thumbnail?}`)
   * @throws {ApiError} with the api's code; `network` when there was no answer, `aborted` when cancelled
   */
  async upload(roomId, file, { name = file.name, onProgress, signal } = {}) {
    const path = `/v1/rooms/${encodeURIComponent(roomId)}/attachments?${new URLSearchParams({ name })}`;
    const token = await this.auth.accessToken();
    try {
      return await xhrUpload(`${this.apiBase}${path}`, file, token, onProgress, signal);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      if (error.code !== 'invalid_token') {
        await this.auth.endIfCurrent(token);
        throw new AuthRequiredError(error.message);
      }
      const fresh = (await this.auth.refresh(token)).access_token;
      return xhrUpload(`${this.apiBase}${path}`, file, fresh, onProgress, signal);
    }
  }
}

/**
 * One upload by XMLHttpRequest: the body is the file's bytes, its type the
 * file's (the api checks it against the bytes).
 * @returns {Promise<object>} the parsed answer
 */
function xhrUpload(url, file, token, onProgress, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ApiError(0, 'aborted', 'the upload was cancelled'));
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('content-type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
    };
    xhr.onload = () => {
      let json = null;
      try {
        json = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        // Not JSON: a proxy's error page, say.
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(json);
      const error = json?.error ?? {};
      const refusal = new ApiError(xhr.status, error.code ?? `http_${xhr.status}`, error.message ?? xhr.statusText);
      refusal.retryAfter = Number(xhr.getResponseHeader('retry-after')) || undefined;
      reject(refusal);
    };
    // The api refuses a file too large before reading it, and closes the
    // connection: a browser may see only the cut, not the answer.
    xhr.onerror = () => reject(new ApiError(0, 'network', 'cannot reach the server'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'the upload was cancelled'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}
