/**
 * The open room's members: online first, each with a presence dot, their
 * avatar if they have one, the display name beside the `@username`, a
 * role other than member, and (for everyone but me) Block or Unblock.
 *
 * @module view-members
 */

import { byId, h, reconcile } from './dom.js';
import { canModerate, currentRoom, isBlocked, isOnline, mutedUntil, userName } from './store.js';
import { requestReport } from './view-admin.js';

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(row: object) => Node|null} [deps.controls] what a row offers
 *   besides its name (moderation's mute button)
 */
export function mountMembers({ store, actions, controls = () => null }) {
  const { state } = store;
  const list = byId('member-list');
  const rows = new Map();
  let shownRoomId = null;

  function render(_state, changed) {
    const room = currentRoom(state);
    if (room?.id === shownRoomId && !['current', 'users', 'presence', 'connection', 'blocks', `members:${room?.id}`].some((t) => changed.has(t))) return;
    shownRoomId = room?.id ?? null;
    const members = room ? state.members.get(room.id) : null;
    const items = members
      ? [...members].map(([id, role]) => ({
          key: id,
          id,
          role,
          name: userName(state, id),
          username: state.users.get(id)?.username ?? null,
          avatar: state.users.get(id)?.avatar ?? null,
          me: id === state.me?.id,
          online: isOnline(state, id),
          blocked: isBlocked(state, id),
          mutedUntil: mutedUntil(state, room.id, id)?.toISOString() ?? null,
          moderate: canModerate(state, room, id),
        }))
      : [];
    items.sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name));
    reconcile(list, items, memberRow, rows);
  }

  function memberRow(row) {
    const item = memberItem(row, controls);
    if (!row.me) {
      const toggle = h('button', { type: 'button', className: 'ghost small block-toggle' }, row.blocked ? 'Unblock' : 'Block');
      toggle.title = row.blocked ? `Show ${row.name}'s messages again` : `Stop hearing from ${row.name}`;
      toggle.addEventListener('click', async () => {
        toggle.disabled = true;
        if (!(await actions.setBlocked(row.id, !row.blocked))) toggle.disabled = false;
      });
      item.append(toggle);
    }
    return item;
  }

  store.subscribe(render);
}

function memberItem(row, controls) {
  return h(
    'li',
    { dataset: { userId: row.id } },
    h('span', {
      className: `presence${row.online ? ' online' : ''}`,
      title: row.online ? 'online' : 'offline',
      attrs: { 'aria-label': row.online ? 'online' : 'offline' },
    }),
    // Same origin: the api's unguessable, versioned avatar URL.
    row.avatar ? h('img', { className: 'avatar', src: row.avatar, alt: '', width: 24, height: 24, attrs: { loading: 'lazy' } }) : null,
    h(
      'span',
      { className: 'name' },
      row.name,
      row.me ? ' (you)' : '',
      ' ',
      row.username ? h('small', { className: 'handle' }, `@${row.username}`) : null,
    ),
    row.role === 'member' ? null : h('span', { className: 'role' }, row.role),
    row.mutedUntil ? h('span', { className: 'muted-badge', title: `muted until ${new Date(row.mutedUntil).toLocaleString()}` }, 'muted') : null,
    controls(row),
    row.me
      ? null
      : h(
          'button',
          {
            type: 'button',
            className: 'ghost small report',
            title: `Report ${row.name}`,
            dataset: { action: 'report' },
            attrs: { 'aria-label': `Report ${row.name}` },
            on: { click: () => requestReport({ kind: 'user', user_id: row.id }, row.name) },
          },
          'Report',
        ),
  );
}
