/**
 * The pinned messages of the open room (`GET /v1/rooms/{id}/pins`, then
 * kept up to date by the pin, unpin, edit and delete events): the latest
 * pin first; a click shows the message in the timeline, if it is loaded.
 *
 * @module view-pins
 */

import { byId, h, reconcile } from './dom.js';
import { plainText } from './format.js';
import { canPin, currentRoom, userName } from './store.js';
import { filesText } from './attachments.js';

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(id: string) => boolean} deps.jumpTo shows a message of the open room
 */
export function mountPins({ store, actions, jumpTo }) {
  const { state } = store;
  const el = { panel: byId('pins-panel'), list: byId('pin-list'), empty: byId('pins-empty'), messages: byId('messages') };
  const rows = new Map();
  let shownRoomId = null;

  function render(_state, changed) {
    const room = currentRoom(state);
    const open = Boolean(room) && state.ui.pinsOpen;
    el.panel.hidden = !open;
    // The conversation makes room for it, so no message hides under it.
    el.messages.classList.toggle('beside-pins', open);
    if (!open) return;
    if (room.id === shownRoomId && !['current', 'ui', 'users', `pins:${room.id}`].some((t) => changed.has(t))) return;
    if (room.id !== shownRoomId) {
      shownRoomId = room.id;
      rows.clear();
      el.list.replaceChildren();
      const pins = state.pins.get(room.id);
      if (!pins?.loaded || pins.stale) actions.loadPins(room.id);
    }
    const pins = state.pins.get(room.id);
    const mayUnpin = canPin(room);
    const items = (pins?.items ?? []).map((pin) => ({
      key: pin.id,
      id: pin.id,
      name: userName(state, pin.sender),
      ts: pin.ts,
      // A message of files only: their names.
      body: pin.body || filesText(pin.attachments),
      pinnedBy: pin.pinned?.by ? userName(state, pin.pinned.by) : null,
      mayUnpin,
    }));
    el.empty.hidden = !pins?.loaded || items.length > 0;
    reconcile(el.list, items, (item) => pinRow(room.id, item), rows);
  }

  function pinRow(roomId, item) {
    return h(
      'li',
      { className: 'pin', dataset: { id: item.id } },
      h(
        'button',
        { type: 'button', className: 'pin-open', title: 'Show in the conversation', on: { click: () => jumpTo(item.id) } },
        h('span', { className: 'pin-meta' }, h('strong', {}, item.name), ' ', h('time', { dateTime: item.ts }, new Date(item.ts).toLocaleString())),
        h('span', { className: 'pin-body' }, plainText(item.body)),
      ),
      h(
        'div',
        { className: 'pin-foot' },
        item.pinnedBy ? h('small', { className: 'hint' }, `pinned by ${item.pinnedBy}`) : null,
        item.mayUnpin
          ? h('button', {
              type: 'button',
              className: 'link small',
              dataset: { action: 'unpin' },
              on: {
                click: () => {
                  actions.message.pin(roomId, { id: item.id, pinned: true });
                },
              },
            }, 'Unpin')
          : null,
      ),
    );
  }

  byId('pins-close').addEventListener('click', () => actions.togglePins(false));
  store.subscribe(render);
}
