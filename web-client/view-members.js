/**
 * The open room's members: online first, each with a presence dot, the
 * display name beside the `@username`, and a role other than member.
 *
 * @module view-members
 */

import { byId, h, reconcile } from './dom.js';
import { canModerate, currentRoom, isOnline, mutedUntil, userName } from './store.js';

/**
 * @param {{store: import('./store.js').Store, controls?: (row: object) => Node|null}} deps
 *   `controls`: what a row offers besides its name (moderation's mute button)
 */
export function mountMembers({ store, controls = () => null }) {
  const { state } = store;
  const list = byId('member-list');
  const rows = new Map();
  let shownRoomId = null;

  function render(_state, changed) {
    const room = currentRoom(state);
    if (room?.id === shownRoomId && !['current', 'users', 'presence', 'connection', `members:${room?.id}`].some((t) => changed.has(t))) return;
    shownRoomId = room?.id ?? null;
    const members = room ? state.members.get(room.id) : null;
    const items = members
      ? [...members].map(([id, role]) => ({
          key: id,
          id,
          role,
          name: userName(state, id),
          username: state.users.get(id)?.username ?? null,
          me: id === state.me?.id,
          online: isOnline(state, id),
          mutedUntil: mutedUntil(state, room.id, id)?.toISOString() ?? null,
          moderate: canModerate(state, room, id),
        }))
      : [];
    items.sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name));
    reconcile(list, items, (row) => memberRow(row, controls), rows);
  }

  store.subscribe(render);
}

function memberRow(row, controls) {
  return h(
    'li',
    { dataset: { userId: row.id } },
    h('span', {
      className: `presence${row.online ? ' online' : ''}`,
      title: row.online ? 'online' : 'offline',
      attrs: { 'aria-label': row.online ? 'online' : 'offline' },
    }),
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
  );
}
