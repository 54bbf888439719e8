/**
 * The room list: groups and public rooms, then direct messages, each row
 * with its unread count and, apart, how many of those mention me. Also the
 * page title's unread count. Rows are keyed; only changed ones are built
 * again (a rebuild under the pointer could swallow a click).
 *
 * @module view-sidebar
 */

import { byId, h, reconcile } from './dom.js';
import { dmPartner, isOnline, roomName, unreadCounts } from './store.js';

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {() => boolean} deps.isReading whether the open room's newest messages are in view
 */
export function mountSidebar({ store, actions, isReading }) {
  const { state } = store;
  const el = { rooms: byId('room-list'), dms: byId('dm-list') };
  const roomRows = new Map();
  const dmRows = new Map();

  function render(_state, changed) {
    if (!['rooms', 'current', 'users', 'presence', 'me'].some((t) => changed.has(t)) && ![...changed].some((t) => t.startsWith('members:') || t.startsWith('timeline:'))) {
      return;
    }
    if (!state.me) {
      reconcile(el.rooms, [], roomRow, roomRows);
      reconcile(el.dms, [], roomRow, dmRows);
      document.title = 'chat';
      return;
    }
    const rooms = [...state.rooms.values()].map(rowData);
    const byName = (a, b) => a.name.localeCompare(b.name);
    reconcile(el.rooms, rooms.filter((row) => row.kind !== 'direct').sort(byName), roomRow, roomRows);
    // DM requests to me are listed apart (view-requests.js).
    reconcile(el.dms, rooms.filter((row) => row.kind === 'direct' && !row.request).sort(byName), roomRow, dmRows);
    const unread = rooms.reduce((sum, row) => sum + row.unread, 0);
    document.title = unread ? `(${unread}) chat` : 'chat';
  }

  function rowData(room) {
    const partner = room.kind === 'direct' ? dmPartner(state, room) : null;
    const reading = room.id === state.currentRoomId && isReading();
    const counts = reading ? { unread: 0, mentions: 0 } : unreadCounts(state, room);
    return {
      key: room.id,
      id: room.id,
      kind: room.kind,
      request: Boolean(room.request),
      name: roomName(state, room),
      unread: counts.unread,
      mentions: counts.mentions,
      current: room.id === state.currentRoomId,
      partner,
      handle: partner ? (state.users.get(partner)?.username ?? null) : null,
      online: partner ? isOnline(state, partner) : false,
    };
  }

  function roomRow(row) {
    const glyph =
      row.kind === 'direct'
        ? h('span', {
            className: `presence${row.online ? ' online' : ''}`,
            title: row.online ? 'online' : 'offline',
            attrs: { 'aria-label': row.online ? 'online' : 'offline' },
          })
        : h('span', { className: 'glyph', attrs: { 'aria-hidden': 'true' } }, row.kind === 'private' ? '◆' : '#');
    return h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          className: row.unread ? 'unread' : '',
          dataset: { roomId: row.id },
          attrs: { 'aria-current': row.current ? 'true' : 'false' },
          on: { click: () => actions.openRoom(row.id) },
        },
        glyph,
        h('span', { className: 'name' }, row.name, row.handle ? h('small', { className: 'handle' }, ` @${row.handle}`) : null),
        row.mentions
          ? h('span', { className: 'mention-badge', title: `${row.mentions} mention${row.mentions === 1 ? '' : 's'} of you` }, `@${row.mentions}`)
          : null,
        row.unread ? h('span', { className: 'badge', title: `${row.unread} unread` }, String(row.unread)) : null,
      ),
    );
  }

  store.subscribe(render);
  // The open room's badge depends on whether it is read: scrolling and the tab's visibility.
  byId('messages').addEventListener('scroll', () => store.touch('rooms'));
  document.addEventListener('visibilitychange', () => store.touch('rooms'));
}
