/**
 * What the page does: it turns the protocol client's events and the
 * person's actions into store actions, and reads over REST only what the
 * socket does not carry (the room list, members, timeline pages, pins).
 * Views call these; none of them touches the DOM.
 *
 * @module actions
 */

import { AuthRequiredError, newClientId } from './chat-client.js';
import { ApiError } from './api.js';
import { LinkCache, OutboxUploader, blobKey } from './attachments.js';
import { TYPING_SHOWN_MS, currentRoom, roomName, timelineOf } from './store.js';

/** Items per timeline page. */
const PAGE = 50;
/** The largest page of a timeline the api gives (to reach an old message in few requests). */
const MAX_PAGE = 200;

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {import('./api.js').Api} deps.api
 * @param {{apiBase: string}} deps.settings
 * @param {(text: string) => void} deps.notify shows a notice
 */
export function createActions({ store, api, settings, notify }) {
  const { state } = store;
  /** @type {import('./chat-client.js').ChatClient|null} */
  let client = null;
  /** @type {Promise<object[]|null>|null} the room list request in flight */
  let roomsLoading = null;
  /** @type {Map<string, Promise<void>>} member lists being fetched */
  const membersLoading = new Map();
  /** @type {Map<string, Promise<void>>} pin lists being fetched */
  const pinsLoading = new Map();
  /** Rooms I asked to leave: their `room_removed` needs no notice. */
  const leaving = new Set();
  /** Download links of attachments, shared by the views. */
  const links = new LinkCache(api);
  /** @type {import('./attachments.js').BlobKeeper|null} the bytes of unsent files */
  let keeper = null;
  /** @type {OutboxUploader|null} */
  let uploader = null;
  const kickUploads = () => uploader?.kick();

  /** Says what went wrong, in words; a lost login is handled by the auth listener. */
  function report(error, what) {
    if (error instanceof AuthRequiredError) return;
    if (error instanceof ApiError && error.code === 'network') notify(`${what}: cannot reach the server.`);
    else notify(`${what}: ${error.message}`);
    console.warn(what, error);
  }

  function lastRoomKey() {
    return `chat.lastRoom:${settings.apiBase}:${state.me.id}`;
  }

  function syncOutbox() {
    store.dispatch({ type: 'outbox', entries: client ? client.outbox.list() : [] });
  }

  // --- rooms ------------------------------------------------------------------------

  /**
   * Reads my rooms over REST and merges them in; null if that failed.
   * Callers at the same time share one request.
   */
  function loadRooms() {
    roomsLoading ??= api
      .myRooms()
      .then((rooms) => {
        for (const room of rooms) addRoom(room);
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
   * Adds or refreshes a room.
   * @param {object} room as the api describes it
   * @param {number} [afterSeq] the socket delivers the room's events after
   *   this seq (default: its head now; history comes over REST)
   */
  function addRoom(room, afterSeq = room.last_seq ?? 0) {
    // Before the client has started this only sets the cursor its first
    // `sync` resumes from; later it also makes the session follow the room.
    if (!state.rooms.has(room.id)) client?.follow(room.id, afterSeq);
    store.dispatch({ type: 'roomUpserted', room, afterSeq });
    // A DM is named after the other person: their name comes with the members.
    if (room.kind === 'direct' && !state.members.has(room.id)) loadMembers(room.id);
  }

  /**
   * Nothing before my own joining is unread to me; the server starts a new
   * member's read marker at 0, so move it (it only ever moves forward).
   */
  function markJoined(roomId, joinSeq) {
    client?.markRead(roomId, joinSeq);
  }

  function forgetRoom(roomId) {
    const wasOpen = state.currentRoomId === roomId;
    store.dispatch({ type: 'roomRemoved', roomId });
    if (wasOpen) {
      const next = state.rooms.keys().next();
      if (!next.done) openRoom(next.value);
    }
  }

  /** Fetches a room's members (names, roles, read markers); one request at a time per room. */
  function loadMembers(roomId) {
    if (membersLoading.has(roomId)) return membersLoading.get(roomId);
    const loading = api
      .members(roomId)
      .then((members) => {
        if (state.rooms.has(roomId)) store.dispatch({ type: 'membersLoaded', roomId, members });
      })
      .catch((error) => {
        if (!(error instanceof ApiError && error.status === 403)) report(error, 'Loading members');
      })
      .finally(() => membersLoading.delete(roomId));
    membersLoading.set(roomId, loading);
    return loading;
  }

  /** Shows a room, loading its newest page of history the first time. */
  async function openRoom(roomId) {
    if (!state.rooms.has(roomId)) return;
    if (state.currentRoomId !== roomId) {
      store.dispatch({ type: 'roomOpened', roomId });
      localStorage.setItem(lastRoomKey(), roomId);
    }
    if (!state.members.has(roomId)) loadMembers(roomId);
    if (!state.pins.get(roomId)?.loaded) loadPins(roomId);
    if (!timelineOf(state, roomId).loadedLatest) await loadLatest(roomId);
  }

  async function loadLatest(roomId) {
    const tl = timelineOf(state, roomId);
    if (tl.loading) return;
    store.dispatch({ type: 'timelineLoading', roomId, loading: true });
    try {
      const page = await api.timeline(roomId, { limit: PAGE });
      if (!state.rooms.has(roomId)) return;
      store.dispatch({
        type: 'timelinePage',
        roomId,
        items: page.items,
        lastSeq: page.last_seq,
        isOldest: page.items.length < PAGE || page.items[0]?.seq === 1,
      });
    } catch (error) {
      report(error, 'Loading messages');
    } finally {
      if (state.rooms.has(roomId)) store.dispatch({ type: 'timelineLoading', roomId, loading: false });
    }
  }

  /** Scroll-back: the page before the oldest item held. */
  async function loadOlder(roomId) {
    const tl = timelineOf(state, roomId);
    if (tl.loading || !tl.hasOlder || !tl.loadedLatest) return;
    if (tl.oldestSeq === undefined) return loadLatest(roomId);
    store.dispatch({ type: 'timelineLoading', roomId, loading: true });
    try {
      const page = await api.timeline(roomId, { before: tl.oldestSeq, limit: PAGE });
      if (!state.rooms.has(roomId)) return;
      store.dispatch({
        type: 'timelinePage',
        roomId,
        items: page.items,
        lastSeq: page.last_seq,
        isOldest: page.items.length < PAGE || page.items[0]?.seq === 1,
        older: true,
      });
    } catch (error) {
      report(error, 'Loading older messages');
    } finally {
      if (state.rooms.has(roomId)) store.dispatch({ type: 'timelineLoading', roomId, loading: false });
    }
  }

  /**
   * Opens a room with its message `seq` loaded: older pages (as large as
   * the api gives) until the timeline reaches it, so the timeline stays one
   * unbroken stretch up to the newest message.
   */
  async function openAt(roomId, seq) {
    await openRoom(roomId);
    for (;;) {
      const tl = timelineOf(state, roomId);
      if (!state.rooms.has(roomId) || !tl.hasOlder || tl.oldestSeq === undefined || tl.oldestSeq <= seq) return;
      if (tl.loading) return;
      const limit = Math.min(MAX_PAGE, tl.oldestSeq - seq + PAGE / 2);
      store.dispatch({ type: 'timelineLoading', roomId, loading: true });
      try {
        const page = await api.timeline(roomId, { before: tl.oldestSeq, limit });
        if (!state.rooms.has(roomId)) return;
        store.dispatch({
          type: 'timelinePage',
          roomId,
          items: page.items,
          lastSeq: page.last_seq,
          isOldest: page.items.length < limit || page.items[0]?.seq === 1,
          older: true,
        });
      } catch (error) {
        report(error, 'Loading the message');
        return;
      } finally {
        if (state.rooms.has(roomId)) store.dispatch({ type: 'timelineLoading', roomId, loading: false });
      }
    }
  }

  /** Reads a room's pinned messages; changes heard meanwhile are replayed onto them. */
  function loadPins(roomId) {
    if (pinsLoading.has(roomId)) return pinsLoading.get(roomId);
    const after = client?.cursor(roomId) ?? 0;
    const loading = api
      .pins(roomId)
      .then(({ pins }) => {
        if (state.rooms.has(roomId)) store.dispatch({ type: 'pinsLoaded', roomId, pins, after });
      })
      .catch((error) => {
        if (!(error instanceof ApiError && error.status === 403)) report(error, 'Loading pinned messages');
      })
      .finally(() => pinsLoading.delete(roomId));
    pinsLoading.set(roomId, loading);
    return loading;
  }

  /** The reader sees the newest items of a room: move my read marker there. */
  function seen(roomId) {
    const room = state.rooms.get(roomId);
    if (!room) return;
    const shown = timelineOf(state, roomId).headSeq;
    if (room.last_read_seq >= shown) return;
    store.dispatch({ type: 'readMarked', roomId, seq: shown });
    client?.markRead(roomId, shown);
  }

  // --- what the socket tells ------------------------------------------------------------

  /** Subscribes to a new protocol client (one per login). */
  function attach(chatClient) {
    client = chatClient;
    uploader = new OutboxUploader({
      client,
      api,
      keeper,
      onProgress: (clientId, fraction) => store.dispatch({ type: 'uploadProgress', clientId, fraction }),
    });
    client.on('pending', kickUploads);
    client.on('status', ({ state: now }) => now === 'online' && kickUploads());
    globalThis.addEventListener?.('online', kickUploads);
    client.on('status', (status) => store.dispatch({ type: 'connection', status }));
    client.on('hello', (hello) => {
      // Me as the server has me now: a name or avatar changed on another
      // device since this login was stored shows at once.
      store.dispatch({ type: 'profileUpdated', user: hello.user });
      // Rooms joined elsewhere while we were away, with their names.
      loadRooms();
      const room = currentRoom(state);
      if (room && !timelineOf(state, room.id).loadedLatest) loadLatest(room.id);
    });
    client.on('event', onRoomEvent);
    client.on('pending', syncOutbox);
    client.on('ack', (ack) => {
      const entry = state.outbox.find((e) => e.client_id === ack.client_id);
      store.dispatch({ type: 'acked', ack, entry });
      syncOutbox();
      // Sent: the bytes kept for it are needed no more.
      keeper?.forget(`${ack.client_id}/`);
    });
    client.on('changed', syncOutbox);
    client.on('sendFailed', (failure) => {
      store.dispatch({ type: 'sendFailed', failure });
      syncOutbox();
      keeper?.forget(`${failure.entry.client_id}/`);
      notify(`A message was not sent: ${failure.message}`);
    });
    client.on('changeFailed', (failure) => {
      syncOutbox();
      notify(`${CHANGE_WORDS[failure.entry.type] ?? 'That'} did not work: ${failure.message}`);
    });
    client.on('typing', ({ room_id, user_id }) => {
      // The server does not relay it from people I block; a block made this instant may race it.
      if (state.blocked.has(user_id)) return;
      store.dispatch({ type: 'typing', roomId: room_id, userId: user_id, until: Date.now() + TYPING_SHOWN_MS });
      setTimeout(() => store.touch(`typing:${room_id}`), TYPING_SHOWN_MS + 50);
    });
    client.on('userUpdated', ({ profile }) => store.dispatch({ type: 'profileUpdated', user: profile }));
    client.on('presence', ({ user_id, status }) => store.dispatch({ type: 'presence', userId: user_id, status }));
    // A block made or lifted from any of my sessions.
    client.on('blockChanged', ({ user_id, blocked }) => store.dispatch({ type: 'blockChanged', userId: user_id, blocked }));
    client.on('read', ({ room_id, user_id, seq }) => store.dispatch({ type: 'read', roomId: room_id, userId: user_id, seq }));
    client.on('roomAdded', ({ room, seq }) => {
      addRoom({ ...room, last_read_seq: seq }, seq - 1);
      markJoined(room.id, seq);
      loadRooms(); // my role and read marker
    });
    client.on('roomRemoved', ({ room_id }) => {
      const room = state.rooms.get(room_id);
      if (!room) return;
      if (!leaving.has(room_id)) notify(`You are no longer in ${roomName(state, room)}.`);
      forgetRoom(room_id);
    });
    client.on('error', (error) => {
      // Refusals tied to a room (typing, read, sync in a room just left) need no words.
      if (!error.ref) notify(`The server said: ${error.message}`);
    });
    syncOutbox();
  }

  function onRoomEvent(event) {
    if (!state.rooms.has(event.room_id)) {
      // A room just left (its last events trail behind), or one the list
      // does not have yet: the list decides, and history fills in on opening.
      if (!(event.type === 'member_left' && event.user === state.me.id)) loadRooms();
      return;
    }
    store.dispatch({ type: 'event', event });
    // Only what the event cannot say is read over REST: someone new.
    const members = state.members.get(event.room_id);
    if (event.type === 'member_joined' && (!state.users.has(event.user) || !members)) loadMembers(event.room_id);
    else if (event.type === 'message' && !state.users.has(event.sender)) loadMembers(event.room_id);
    // Pinned, but not loaded here: the list is read again if shown.
    if (event.type === 'message_pinned' && state.pins.get(event.room_id)?.stale) loadPins(event.room_id);
  }

  // --- what the person does ------------------------------------------------------------------

  /**
   * Sends a message to the open room (answering the message being replied
   * to), with files: each either uploaded already (`attachment`, the api's
   * answer) or to be uploaded by the outbox (offline). The bytes of every
   * file are kept until the message is sent, so it survives a reload and a
   * file whose upload expired unsent can be uploaded again.
   * @param {string} text
   * @param {{file: Blob & {name?: string}, attachment?: object}[]} [files]
   * @returns {boolean} whether it was queued
   */
  function send(text, files = []) {
    const room = currentRoom(state);
    if (!room || !client || (!text.trim() && !files.length)) return false;
    const reply = state.ui.replyTo?.roomId === room.id ? state.ui.replyTo.id : undefined;
    const clientId = newClientId();
    const attachments = files.map(({ file, attachment }, index) => {
      const local = blobKey(clientId, index);
      keeper?.put(local, file);
      const described = attachment ?? { name: file.name || 'file', size: file.size, content_type: file.type || 'application/octet-stream' };
      return { ...described, local };
    });
    try {
      client.send(room.id, text.trim() ? text : '', { replyTo: reply, attachments, clientId });
    } catch (error) {
      keeper?.forget(`${clientId}/`);
      notify(error.message);
      return false;
    }
    if (reply) store.dispatch({ type: 'replyCancelled' });
    return true;
  }

  /**
   * The protocol client asks before giving up a send with files: a refusal
   * (`validation_failed`) may mean its uploads expired unsent (after an
   * hour). Once, its files are uploaded again from the kept bytes and it
   * goes out with the same `client_id`; the uploader fails it with the
   * reason if the bytes are gone.
   * @returns {object|null} the send, held for new uploads
   */
  function rescueSend(entry, error) {
    if (error.code !== 'validation_failed' || entry.reuploaded || !entry.attachments.every((a) => a.local)) return null;
    setTimeout(kickUploads, 0);
    return {
      ...entry,
      reuploaded: true,
      attachments: entry.attachments.map(({ name, size, content_type, local }) => ({ name, size, content_type, local })),
    };
  }

  /** Uploads a file into a room (the composer's), with progress. */
  function upload(roomId, file, options) {
    return api.upload(roomId, file, options);
  }

  /** Forgets kept bytes that belong to no pending send (a tab closed mid-way, a send settled in another tab). */
  async function collectBlobs() {
    if (!keeper || !client) return;
    // Keys first: a send is queued before its bytes are kept, so any key
    // read has its send in the list read after, unless it was settled.
    const keys = await keeper.keys();
    const live = new Set(client.outbox.list().map((entry) => entry.client_id));
    for (const key of keys) {
      if (!live.has(String(key).split('/')[0])) keeper.forget(String(key));
    }
  }

  /** Queues a change of a message over the socket; a refusal shows as a notice. */
  function change(roomId, type, target, fields) {
    if (!client) return;
    try {
      client.change(roomId, type, target, fields);
    } catch (error) {
      notify(error.message);
    }
  }

  const messageActions = {
    reply(roomId, item) {
      store.dispatch({ type: 'replyStarted', roomId, id: item.id });
    },
    cancelReply() {
      store.dispatch({ type: 'replyCancelled' });
    },
    react(roomId, item, emoji) {
      // The server keeps an emoji fully qualified ("❤" is stored as "❤️"):
      // a typed one matches its chip whatever variation selectors it has.
      const bare = (text) => text.replace(/\uFE0F/g, '');
      const given = item.reactions?.find((r) => bare(r.emoji) === bare(emoji));
      change(roomId, given?.me ? 'unreact' : 'react', item.id, { emoji: given?.emoji ?? emoji });
    },
    startEdit(roomId, item) {
      store.dispatch({ type: 'editStarted', roomId, seq: item.seq });
    },
    saveEdit(roomId, item, body) {
      store.dispatch({ type: 'editEnded' });
      if (body === item.body) return;
      if (!body.trim()) {
        notify('A message cannot be empty: delete it instead.');
        return;
      }
      change(roomId, 'edit', item.id, { body });
    },
    cancelEdit() {
      store.dispatch({ type: 'editEnded' });
    },
    delete(roomId, item) {
      change(roomId, 'delete', item.id);
    },
    pin(roomId, item) {
      change(roomId, item.pinned ? 'unpin' : 'pin', item.id);
    },
    dismissFailed(clientId) {
      store.dispatch({ type: 'failureDismissed', clientId });
    },
  };

  function togglePins(open) {
    store.dispatch({ type: 'pinsToggled', open });
    const room = currentRoom(state);
    if (state.ui.pinsOpen && room) {
      const pins = state.pins.get(room.id);
      if (!pins?.loaded || pins.stale) loadPins(room.id);
    }
  }

  function typing() {
    const room = currentRoom(state);
    if (room) client?.typing(room.id);
  }

  async function leaveCurrent() {
    const room = currentRoom(state);
    if (!room) return;
    leaving.add(room.id);
    try {
      await api.leaveRoom(room.id);
      forgetRoom(room.id);
    } catch (error) {
      report(error, 'Leaving');
    } finally {
      leaving.delete(room.id);
    }
  }

  /** Loads whom I block (their messages are collapsed from the first render). */
  async function loadBlocks() {
    try {
      const blocks = await api.blocks();
      store.dispatch({ type: 'usersSeen', users: blocks.map((b) => b.user) });
      store.dispatch({ type: 'blocksLoaded', userIds: blocks.map((b) => b.user.id) });
    } catch (error) {
      report(error, 'Loading blocked users');
    }
  }

  /** Blocks or unblocks a user; the store changes at once (the socket's `block_changed` agrees). */
  async function setBlocked(userId, blocked) {
    try {
      if (blocked) await api.block(userId);
      else await api.unblock(userId);
    } catch (error) {
      // Unblocking someone no longer blocked is what was wanted.
      if (blocked || !(error instanceof ApiError && error.status === 404)) {
        report(error, blocked ? 'Blocking' : 'Unblocking');
        return false;
      }
    }
    store.dispatch({ type: 'blockChanged', userId, blocked });
    return true;
  }

  /**
   * Settles a DM request sent to me (`accept` or `decline`), or closes a
   * DM of mine (`close`): declined and closed DMs leave my list (the
   * socket's `room_removed` agrees; a closed one comes back with its next
   * message).
   */
  async function settleDm(roomId, action) {
    try {
      if (action === 'accept') {
        await api.acceptDm(roomId);
        const room = state.rooms.get(roomId);
        if (room) store.dispatch({ type: 'roomUpserted', room: { ...room, request: false } });
        return true;
      }
      leaving.add(roomId);
      await (action === 'decline' ? api.declineDm(roomId) : api.closeDm(roomId));
      forgetRoom(roomId);
      return true;
    } catch (error) {
      leaving.delete(roomId);
      report(error, { accept: 'Accepting', decline: 'Declining', close: 'Closing' }[action]);
      return false;
    }
  }

  async function startDm(user) {
    const room = await api.openDm(user.id);
    // Read markers come with the room list; opening the DM marks it read.
    addRoom({ ...room, role: 'member', last_read_seq: 0 });
    store.dispatch({
      type: 'membersLoaded',
      roomId: room.id,
      members: [state.me, user].map((u) => ({ user: u, role: 'member', last_read_seq: 0 })),
    });
    openRoom(room.id);
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
    openRoom(room.id);
  }

  async function createGroup({ name, topic, kind, invite }) {
    const room = await api.createRoom({ name, topic, kind });
    addRoom({ ...room, role: 'owner', last_read_seq: room.last_seq });
    markJoined(room.id, room.last_seq);
    const invites = await Promise.allSettled(invite.map((id) => api.invite(room.id, id)));
    const refused = invites.filter((result) => result.status === 'rejected').length;
    if (refused) notify(`${refused} invitation(s) could not be sent.`);
    openRoom(room.id);
  }

  /**
   * After login: list rooms, then connect, then open the last room.
   * @param {import('./chat-client.js').ChatClient} chatClient
   * @param {{keeper?: import('./attachments.js').BlobKeeper}} [options] where unsent files are kept
   */
  async function start(chatClient, { keeper: blobKeeper = null } = {}) {
    keeper = blobKeeper;
    attach(chatClient);
    collectBlobs().then(kickUploads);
    // Each room listed gives the client its head as REST shows it now; the
    // first sync replays whatever happens after, so nothing falls between.
    await Promise.all([loadRooms(), loadBlocks()]);
    if (client !== chatClient) return; // logged out meanwhile
    chatClient.start();
    const last = localStorage.getItem(lastRoomKey());
    const first = state.rooms.has(last) ? last : state.rooms.keys().next().value;
    if (first) await openRoom(first);
  }

  function stop() {
    client?.stop();
    client = null;
    uploader?.stop();
    uploader = null;
    globalThis.removeEventListener?.('online', kickUploads);
  }

  return {
    report,
    start,
    stop,
    loadBlocks,
    setBlocked,
    settleDm,
    get client() {
      return client;
    },
    get keeper() {
      return keeper;
    },
    links,
    upload,
    rescueSend,
    loadRooms,
    openRoom,
    openAt,
    loadOlder,
    loadPins,
    seen,
    send,
    typing,
    togglePins,
    leaveCurrent,
    startDm,
    joinRoom,
    createGroup,
    message: messageActions,
  };
}

/** How a refused change is named in its notice. */
const CHANGE_WORDS = {
  edit: 'Editing',
  delete: 'Deleting',
  react: 'Reacting',
  unreact: 'Taking the reaction back',
  pin: 'Pinning',
  unpin: 'Unpinning',
};
