/**
 * What the page knows of one room's log: events from history pages and
 * from the socket, merged by seq, so however they arrive and however
 * often, each seq is shown once and in order.
 *
 * @module timeline
 */

/** One room's events, keyed by seq. */
export class RoomTimeline {
  /** @type {Map<number, object>} seq → event */
  #events = new Map();
  /** @type {object[]|null} the events sorted by seq, cached until the next change */
  #sorted = null;

  constructor() {
    /** Whether the newest page has been read over REST since the page loaded. */
    this.loadedLatest = false;
    /** Whether seq 1 (or the room's first surviving event) has been loaded. */
    this.reachedStart = false;
    /** A history request is in flight (one at a time). */
    this.loading = false;
  }

  /**
   * @param {object} event a room event (`seq` is the key)
   * @returns {boolean} whether it was new
   */
  add(event) {
    if (this.#events.has(event.seq)) return false;
    this.#events.set(event.seq, event);
    this.#sorted = null;
    return true;
  }

  /**
   * Adds a history page (ascending, as the api returns it).
   * @param {object[]} events
   * @param {{isOldest: boolean}} page `isOldest` when nothing older exists
   * @returns {number} how many events were new
   */
  addPage(events, { isOldest }) {
    const added = events.filter((event) => this.add(event)).length;
    if (isOldest) this.reachedStart = true;
    return added;
  }

  /** @returns {object[]} every event, ascending by seq */
  events() {
    this.#sorted ??= [...this.#events.values()].sort((a, b) => a.seq - b.seq);
    return this.#sorted;
  }

  /** @returns {number|undefined} the oldest seq held */
  get oldestSeq() {
    return this.events()[0]?.seq;
  }

  /** @returns {number} the newest seq held (0 when empty) */
  get newestSeq() {
    return this.events().at(-1)?.seq ?? 0;
  }

  /** @returns {boolean} whether older events may exist on the server */
  get hasOlder() {
    if (this.reachedStart) return false;
    const oldest = this.oldestSeq;
    return oldest === undefined || oldest > 1;
  }
}
