/**
 * Names for people the page has not met: the sender of a message in the
 * open room who is no longer one of its members (they left, or deleted
 * their account and show as "deleted user") is read once by id
 * (`GET /v1/users/{id}`) and remembered like any other user. Until the
 * answer comes the page says "a former member".
 *
 * @module user-lookup
 */

import { currentRoom, timelineOf } from './store.js';

/** Lookups in flight at once, at most. */
const AT_ONCE = 4;

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {import('./api.js').Api} deps.api
 */
export function mountUserLookup({ store, api }) {
  const { state } = store;
  /** Ids asked for (answered or not), so each is asked once a login. */
  const asked = new Set();
  let running = 0;
  const queue = [];

  function unknownSenders(room) {
    const ids = new Set();
    for (const item of timelineOf(state, room.id).items()) {
      for (const id of [item.sender, item.reply_preview?.sender]) {
        if (id && !state.users.has(id) && !asked.has(id)) ids.add(id);
      }
    }
    return ids;
  }

  function pump() {
    while (running < AT_ONCE && queue.length) {
      const id = queue.shift();
      running += 1;
      api
        .call('GET', `/v1/users/${encodeURIComponent(id)}`)
        .then((user) => store.dispatch({ type: 'usersSeen', users: [user] }))
        .catch(() => {}) // offline or gone: "a former member" it stays
        .finally(() => {
          running -= 1;
          pump();
        });
    }
  }

  store.subscribe((_state, changed) => {
    if (!state.me) {
      asked.clear();
      queue.length = 0;
      return;
    }
    const room = currentRoom(state);
    if (!room) return;
    if (!['current', 'users', `timeline:${room.id}`, `members:${room.id}`].some((t) => changed.has(t))) return;
    // Members come with the room's member list: wait for it, or every
    // member would be looked up one by one.
    if (!state.members.has(room.id)) return;
    for (const id of unknownSenders(room)) {
      asked.add(id);
      queue.push(id);
    }
    pump();
  });
}
