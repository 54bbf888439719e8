/**
 * Blocked users: the list of people I block, each with Unblock, as a
 * self-contained section any page can mount (`mountBlockedUsers` into an
 * element: the settings page does), and the "Blocked users" dialog the
 * sidebar opens, which mounts the same section.
 *
 * @module view-blocks
 */

import { byId, h, reconcile } from './dom.js';

/**
 * Draws the blocked-users section into `container` and keeps it current
 * (a block from a member's row or from another session shows at once).
 * @param {object} deps
 * @param {HTMLElement} deps.container where the section goes (emptied first)
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {boolean} [deps.heading] whether to draw its own heading (the settings page draws one)
 * @returns {{refresh: () => Promise<void>, unmount: () => void}}
 */
export function mountBlockedUsers({ container, store, actions, heading = true }) {
  const { state } = store;
  const list = h('ul', { className: 'picker-list blocked-users' });
  const empty = h('p', { className: 'hint' }, 'You block nobody.');
  container.replaceChildren(...(heading ? [h('h3', {}, 'Blocked users')] : []), empty, list);
  const rows = new Map();

  function render() {
    const items = [...state.blocked].map((id) => {
      const user = state.users.get(id);
      return { key: id, id, name: user?.display_name ?? 'someone', username: user?.username ?? null };
    });
    items.sort((a, b) => a.name.localeCompare(b.name));
    empty.hidden = items.length > 0;
    reconcile(list, items, row, rows);
  }

  function row(item) {
    const unblock = h('button', { type: 'button', className: 'small' }, 'Unblock');
    unblock.addEventListener('click', async () => {
      unblock.disabled = true;
      if (!(await actions.setBlocked(item.id, false))) unblock.disabled = false;
    });
    return h(
      'li',
      { dataset: { userId: item.id } },
      h('span', { className: 'who' }, item.name, item.username ? h('small', {}, `@${item.username}`) : null),
      unblock,
    );
  }

  const unsubscribe = store.subscribe((_state, changed) => {
    if (changed.has('blocks') || changed.has('users')) render();
  });
  render();
  return {
    refresh: () => actions.loadBlocks(),
    unmount: () => {
      unsubscribe?.();
      container.replaceChildren();
    },
  };
}

/**
 * The sidebar's "Blocked users" button and its dialog.
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 */
export function mountBlocksDialog({ store, actions }) {
  const dialog = byId('blocks-dialog');
  const section = mountBlockedUsers({ container: byId('blocks-section'), store, actions });
  byId('blocked-users').addEventListener('click', () => {
    section.refresh();
    dialog.showModal();
  });
}
