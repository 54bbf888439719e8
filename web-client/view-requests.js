/**
 * DM requests and closing DMs: the sidebar's "Message requests" (DMs from
 * people I share no room with, which I have not accepted), each opening
 * the conversation to read before deciding; the bar over an open request
 * with Accept and Decline; and the header's Close for an open DM (hidden
 * until its next message).
 *
 * @module view-requests
 */

import { byId, h, reconcile } from './dom.js';
import { currentRoom, roomName } from './store.js';

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(text: string, ok: string) => Promise<boolean>} deps.confirm
 */
export function mountRequests({ store, actions, confirm }) {
  const { state } = store;
  const el = {
    head: byId('requests-head'),
    list: byId('request-list'),
    bar: byId('request-bar'),
    text: byId('request-text'),
    accept: byId('request-accept'),
    decline: byId('request-decline'),
    close: byId('close-dm'),
    composer: byId('composer'),
  };
  const rows = new Map();

  // Every turn (it is small): the composer it hides is shown by the room's view on other topics.
  function render() {
    const requests = [...state.rooms.values()]
      .filter((room) => room.kind === 'direct' && room.request)
      .map((room) => ({ key: room.id, id: room.id, name: roomName(state, room), current: room.id === state.currentRoomId }));
    el.head.hidden = requests.length === 0;
    reconcile(el.list, requests, requestRow, rows);
    const room = currentRoom(state);
    const request = Boolean(room && room.kind === 'direct' && room.request);
    el.bar.hidden = !request;
    if (request) el.text.textContent = `${roomName(state, room)} wants to message you. You share no room.`;
    // A request is read before it is answered: write once accepted.
    if (room) el.composer.hidden = request;
    el.close.hidden = !room || room.kind !== 'direct' || request;
  }

  function requestRow(row) {
    return h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          dataset: { roomId: row.id },
          attrs: { 'aria-current': row.current ? 'true' : 'false' },
          on: { click: () => actions.openRoom(row.id) },
        },
        h('span', { className: 'glyph', attrs: { 'aria-hidden': 'true' } }, '?'),
        h('span', { className: 'name' }, row.name),
      ),
    );
  }

  async function settle(action) {
    const room = currentRoom(state);
    if (!room) return;
    el.accept.disabled = el.decline.disabled = true;
    try {
      await actions.settleDm(room.id, action);
    } finally {
      el.accept.disabled = el.decline.disabled = false;
    }
  }

  el.accept.addEventListener('click', () => settle('accept'));
  el.decline.addEventListener('click', async () => {
    const room = currentRoom(state);
    const sure = room && (await confirm(`Decline ${roomName(state, room)}'s messages? They will not be able to write to you until you message them.`, 'Decline'));
    if (sure) await settle('decline');
  });
  el.close.addEventListener('click', () => {
    const room = currentRoom(state);
    if (room) actions.settleDm(room.id, 'close');
  });
  store.subscribe(render);
}
