/**
 * Searching messages: the box at the top of the sidebar and its results,
 * each with its room, its time and its text with the searched words in
 * `<mark>` (built from the api's `{text, match}` parts as text nodes, never
 * HTML). A click on a result opens its room with the message loaded and
 * shows it; "More results" reads the next, older page.
 *
 * @module view-search
 */

import { byId, h, replace } from './dom.js';
import { roomName } from './store.js';

/** What a refused query says, by the api's error code. */
const REFUSALS = {
  no_search_terms: 'Type a word to find (a "-word" alone excludes it).',
  query_too_long: 'That search is too long (256 characters at most).',
  too_many_words: 'That search has too many words (16 at most).',
  rate_limited: 'Too many searches: wait a little and try again.',
};

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {import('./api.js').Api} deps.api
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(id: string) => boolean} deps.jumpTo shows a message of the open room
 */
export function mountSearch({ store, api, actions, jumpTo }) {
  const { state } = store;
  const el = {
    form: byId('search-form'),
    input: byId('search-input'),
    panel: byId('search-panel'),
    status: byId('search-status'),
    results: byId('search-results'),
    more: byId('search-more'),
    close: byId('search-close'),
  };
  /** The query shown and the cursor of its next page. */
  let shown = { q: '', next: undefined };
  /** Counts searches, so an answer that comes after a newer search is dropped. */
  let generation = 0;

  async function run(q, before) {
    const mine = ++generation;
    el.panel.hidden = false;
    el.more.hidden = true;
    if (!before) {
      el.results.replaceChildren();
      el.status.textContent = 'Searching…';
    }
    try {
      const page = await api.searchMessages(q, { before });
      if (mine !== generation) return;
      shown = { q, next: page.next_before };
      el.results.append(...page.hits.map(hitRow));
      const count = el.results.children.length;
      el.status.textContent = count ? '' : 'No messages found.';
      el.more.hidden = !page.next_before;
    } catch (error) {
      if (mine !== generation) return;
      el.status.textContent = REFUSALS[error.code] ?? `Search failed: ${error.message}`;
    }
  }

  function hitRow(hit) {
    const room = state.rooms.get(hit.room_id);
    return h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          className: 'search-hit',
          dataset: { id: hit.id, roomId: hit.room_id },
          on: { click: () => open(hit) },
        },
        h(
          'span',
          { className: 'search-meta' },
          h('span', { className: 'search-room' }, room ? roomName(state, room) : 'a room'),
          ' ',
          h('time', { dateTime: hit.ts }, new Date(hit.ts).toLocaleString()),
        ),
        h(
          'span',
          { className: 'search-text' },
          hit.highlight.map((part) => (part.match ? h('mark', {}, part.text) : part.text)),
        ),
      ),
    );
  }

  async function open(hit) {
    await actions.openAt(hit.room_id, hit.seq);
    // The views draw the loaded page on the next turn.
    await new Promise((resolve) => requestAnimationFrame(resolve));
    jumpTo(hit.id);
  }

  function close() {
    generation += 1;
    shown = { q: '', next: undefined };
    el.panel.hidden = true;
    el.input.value = '';
    replace(el.results);
  }

  el.form.addEventListener('submit', (event) => {
    event.preventDefault();
    const q = el.input.value.trim();
    if (q) run(q);
    else close();
  });
  el.more.addEventListener('click', () => shown.next && run(shown.q, shown.next));
  el.close.addEventListener('click', close);
  el.input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') close();
  });
  // Logged out: nothing of the last person's search stays on the page.
  store.subscribe((_state, changed) => {
    if (changed.has('me') && !state.me) close();
  });
}
