/**
 * What the page knows of one room: its timeline items (every event of the
 * log that is not a change of a message, and each message as it is now),
 * from timeline pages (`GET /v1/rooms/{id}/timeline`) and from the socket,
 * merged by seq, so however they arrive and however often, each seq is
 * shown once, in order, and in its latest state.
 *
 * A page is a snapshot: its items already reflect every change up to its
 * `last_seq`. Each item remembers the seq its state is as of (`asOf`); a
 * change from the socket applies only to an item older than it, and every
 * change heard on the socket is kept for a while, so an item from a page
 * read before a change arrived gets it replayed. Nothing is applied twice,
 * nothing is lost between a page and the live stream.
 *
 * No DOM here: `node --test tests/timeline.test.mjs` tests it.
 *
 * @module timeline
 */

/** The events that change a message; they name it by id in `target`. */
export const CHANGE_TYPES = Object.freeze(
  new Set(['message_edited', 'message_deleted', 'reaction_added', 'reaction_removed', 'message_pinned', 'message_unpinned']),
);

/** How many reacting users an item names per emoji (as the server does). */
const USERS_SHOWN = 3;

/** Live changes kept for replaying onto pages read before they came. */
const CHANGES_KEPT = 2000;

/** The longest reply preview, as the server cuts it. */
const PREVIEW_CHARS = 100;

/**
 * An item as the page keeps it, from a page item or a live event.
 * @param {object} source a TimelineItem or a room event
 * @param {number} asOf the seq its state is as of
 */
function itemFrom(source, asOf) {
  const item = { ...source, asOf };
  if (item.type === 'message') {
    item.body ??= '';
    item.mentions ??= [];
    item.mentions_room = Boolean(item.mentions_room);
    item.deleted = Boolean(item.deleted);
    item.edited_at ??= null;
    item.pinned ??= null;
    item.attachments ??= [];
    item.reactions = (item.reactions ?? []).map((r) => ({ ...r, users: [...(r.users ?? [])] }));
  }
  return item;
}

/**
 * Applies a change event to a message item (in place). Changes that carry
 * `deleted` were erased with their message: its own deletion event says
 * all there is to say.
 *
 * @param {object} item a message item
 * @param {object} change a change event (`type` in {@link CHANGE_TYPES})
 * @param {string} me my user id (for a reaction's `me`)
 * @returns {boolean} whether the item changed
 */
export function applyChange(item, change, me) {
  if (item.type !== 'message' || change.deleted) return false;
  if (item.deleted) return false; // nothing changes a tombstone
  switch (change.type) {
    case 'message_edited':
      item.body = change.body ?? '';
      item.mentions = change.mentions ?? [];
      item.mentions_room = Boolean(change.mentions_room);
      item.edited_at = change.ts;
      return true;
    case 'message_deleted':
      Object.assign(item, { body: '', deleted: true, mentions: [], mentions_room: false, reactions: [], pinned: null, edited_at: null, attachments: [] });
      delete item.reply_to;
      delete item.reply_preview;
      return true;
    case 'reaction_added':
      return addReaction(item, change.emoji, change.sender, me);
    case 'reaction_removed':
      return removeReaction(item, change.emoji, change.sender, me);
    case 'message_pinned':
      item.pinned = { by: change.sender ?? null, at: change.ts };
      return true;
    case 'message_unpinned':
      if (!item.pinned) return false;
      item.pinned = null;
      return true;
    default:
      return false;
  }
}

function addReaction(item, emoji, user, me) {
  if (!emoji) return false;
  let entry = item.reactions.find((r) => r.emoji === emoji);
  if (!entry) {
    entry = { emoji, count: 0, me: false, users: [] };
    item.reactions.push(entry);
  }
  // Already counted (the page that brought the item had it).
  if (entry.users.includes(user) || (user === me && entry.me)) return false;
  entry.count += 1;
  if (entry.users.length < USERS_SHOWN) entry.users.push(user);
  if (user === me) entry.me = true;
  return true;
}

function removeReaction(item, emoji, user, me) {
  const entry = item.reactions.find((r) => r.emoji === emoji);
  if (!entry) return false;
  const named = entry.users.indexOf(user);
  if (named >= 0) entry.users.splice(named, 1);
  else if (user === me ? !entry.me : entry.count <= entry.users.length) return false; // not counted here
  entry.count -= 1;
  if (user === me) entry.me = false;
  if (entry.count <= 0) item.reactions.splice(item.reactions.indexOf(entry), 1);
  return true;
}

/**
 * What a reply shows of the message it answers, after that message changed.
 * @param {object} preview `{sender, body, deleted?}`
 * @param {object} change an edit or a deletion of the answered message
 * @returns {object} the new preview
 */
export function previewAfter(preview, change) {
  if (change.type === 'message_deleted') return { sender: preview.sender, body: '', deleted: true };
  if (change.type === 'message_edited' && !change.deleted) {
    return { ...preview, body: [...(change.body ?? '')].slice(0, PREVIEW_CHARS).join('') };
  }
  return preview;
}

/** One room's timeline items, keyed by seq. */
export class RoomTimeline {
  /** @type {Map<number, object>} seq → item */
  #items = new Map();
  /** @type {Map<string, number>} event id → seq */
  #seqById = new Map();
  /** @type {object[]} change events heard live, ascending by seq */
  #changes = [];
  /** @type {object[]|null} the items sorted by seq, cached until the next change */
  #sorted = null;

  /** @param {string} [me] my user id, for the `me` of reactions */
  constructor(me = '') {
    this.me = me;
    /** Whether the newest page has been read over REST since the page loaded. */
    this.loadedLatest = false;
    /** Whether the room's first event has been loaded. */
    this.reachedStart = false;
    /** A page request is in flight (one at a time). */
    this.loading = false;
    /** The newest seq heard of, changes included (what a read marker may cover). */
    this.headSeq = 0;
    /** Counts the pages of older items added (a view keeps its place when it grows). */
    this.prepends = 0;
  }

  /**
   * A room event from the socket (each seq once, in order).
   * @param {object} event
   * @param {{provisional?: boolean}} [options] `provisional`: made from an
   *   `ack` before the event itself comes; the event replaces it
   * @returns {{changed: boolean, target?: object}} whether anything shown
   *   changed, and for a change, the message it changed (if held)
   */
  addEvent(event, { provisional = false } = {}) {
    this.headSeq = Math.max(this.headSeq, event.seq);
    if (CHANGE_TYPES.has(event.type)) return this.#liveChange(event);
    const held = this.#items.get(event.seq);
    if (held && !(held.provisional && !provisional)) return { changed: false };
    const item = itemFrom(event, event.seq);
    if (provisional) item.provisional = true;
    // A change heard before its message (the ack made it first): replay.
    if (held) this.#replay(item, event.seq - 1);
    this.#put(item);
    return { changed: true };
  }

  /**
   * Adds a timeline page (ascending, as the api returns it).
   * @param {object[]} items
   * @param {{lastSeq: number, isOldest?: boolean, older?: boolean}} page
   *   `lastSeq` the page's `last_seq`; `isOldest` when nothing older
   *   exists; `older` when it extends the timeline backwards
   * @returns {number} how many items were new
   */
  addPage(items, { lastSeq, isOldest = false, older = false }) {
    let added = 0;
    for (const source of items) {
      const held = this.#items.get(source.seq);
      // What was heard live since may be newer: the page's state, then the
      // changes after it.
      const item = itemFrom(source, Math.max(lastSeq, source.seq));
      this.#replay(item, item.asOf);
      if (!held) added += 1;
      else if (held.asOf > item.asOf && !held.provisional) continue;
      this.#put(item);
    }
    this.headSeq = Math.max(this.headSeq, lastSeq);
    if (isOldest) this.reachedStart = true;
    if (older && added) this.prepends += 1;
    return added;
  }

  /** @returns {object[]} every item, ascending by seq */
  items() {
    this.#sorted ??= [...this.#items.values()].sort((a, b) => a.seq - b.seq);
    return this.#sorted;
  }

  /** @param {number} seq @returns {object|undefined} */
  item(seq) {
    return this.#items.get(seq);
  }

  /** @param {string} id an event id @returns {object|undefined} the item */
  byId(id) {
    const seq = this.#seqById.get(id);
    return seq === undefined ? undefined : this.#items.get(seq);
  }

  /**
   * The changes heard live after `seq`, oldest first (to bring a snapshot
   * read meanwhile, such as the pins, up to date).
   * @param {number} seq
   */
  changesAfter(seq) {
    return this.#changes.filter((change) => change.seq > seq);
  }

  /** @returns {number|undefined} the oldest seq held */
  get oldestSeq() {
    return this.items()[0]?.seq;
  }

  /** @returns {number} the newest item's seq (0 when empty) */
  get newestSeq() {
    return this.items().at(-1)?.seq ?? 0;
  }

  /** @returns {boolean} whether older items may exist on the server */
  get hasOlder() {
    if (this.reachedStart) return false;
    const oldest = this.oldestSeq;
    return oldest === undefined || oldest > 1;
  }

  #put(item) {
    this.#items.set(item.seq, item);
    if (item.id) this.#seqById.set(item.id, item.seq);
    this.#sorted = null;
  }

  #liveChange(change) {
    this.#changes.push(change);
    if (this.#changes.length > CHANGES_KEPT) this.#changes.splice(0, this.#changes.length - CHANGES_KEPT);
    let changed = false;
    const target = this.byId(change.target);
    if (target && change.seq > target.asOf) {
      changed = applyChange(target, change, this.me);
      target.asOf = change.seq;
    }
    // Replies quote what they answer as it is now.
    if (change.type === 'message_edited' || change.type === 'message_deleted') {
      for (const item of this.#items.values()) {
        if (item.reply_to === change.target && item.reply_preview && change.seq > item.asOf) {
          item.reply_preview = previewAfter(item.reply_preview, change);
          changed = true;
        }
      }
    }
    if (changed) this.#sorted = null;
    return { changed, target };
  }

  /** Applies the changes heard live after `after` that concern `item`. */
  #replay(item, after) {
    for (const change of this.#changes) {
      if (change.seq <= after) continue;
      if (change.target === item.id) {
        applyChange(item, change, this.me);
        item.asOf = Math.max(item.asOf, change.seq);
      } else if (item.reply_to === change.target && item.reply_preview) {
        item.reply_preview = previewAfter(item.reply_preview, change);
      }
    }
  }
}
