/**
 * My pending invitations, at the top of the sidebar: each names the room
 * and who invited me, with Accept (I join: the room arrives over the
 * socket as `room_added`, and opens) and Decline. The list is read from
 * `GET /v1/invites` when the chat starts and kept up to date by the
 * socket's `invite` and `invite_removed` frames (an answer given in
 * another tab removes it here too).
 *
 * @module view-invites
 */

import { byId, h, reconcile } from './dom.js';

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {import('./api.js').Api} deps.api
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(text: string) => void} deps.notify
 * @returns {{start: (client: import('./chat-client.js').ChatClient) => Promise<void>, stop: () => void}}
 */
export function mountInvites({ store, api, actions, notify }) {
  const el = { section: byId('invites'), list: byId('invite-list') };
  const rows = new Map();
  /** @type {Map<string, object>} invitation id → invitation */
  let invites = new Map();
  /** Rooms I accepted, to open once they arrive. */
  const opening = new Set();

  function render() {
    const items = [...invites.values()].map((invite) => ({
      key: invite.id,
      id: invite.id,
      room: invite.room.name,
      kind: invite.room.kind,
      by: invite.invited_by?.display_name ?? 'someone',
    }));
    el.section.hidden = items.length === 0;
    reconcile(el.list, items, inviteRow, rows);
  }

  function inviteRow(item) {
    return h(
      'li',
      { dataset: { inviteId: item.id } },
      h('span', { className: 'name' }, `${item.kind === 'private' ? '◆' : '#'} ${item.room}`, h('small', { className: 'hint' }, ` from ${item.by}`)),
      h('button', { type: 'button', className: 'primary small', on: { click: () => answer(item.id, 'accept') } }, 'Accept'),
      h('button', { type: 'button', className: 'ghost small', on: { click: () => answer(item.id, 'decline') } }, 'Decline'),
    );
  }

  async function answer(id, verb) {
    const invite = invites.get(id);
    try {
      await api.call('POST', `/v1/invites/${encodeURIComponent(id)}/${verb}`, {});
      if (verb === 'accept' && invite) {
        opening.add(invite.room.id);
        openArrived(store.state);
      }
    } catch (error) {
      notify(`Could not ${verb} the invitation: ${error.message}`);
    }
    invites.delete(id);
    render();
  }

  /** Opens the rooms I accepted once they are in my list (`room_added` may come before or after the answer). */
  function openArrived(state) {
    for (const roomId of opening) {
      if (!state.rooms.has(roomId)) continue;
      opening.delete(roomId);
      actions.openRoom(roomId);
    }
  }

  store.subscribe((state, changed) => {
    if (changed.has('rooms') && opening.size) openArrived(state);
  });

  return {
    async start(client) {
      client.on('invite', ({ invite }) => {
        invites.set(invite.id, invite);
        render();
      });
      client.on('invite_removed', ({ invite_id }) => {
        invites.delete(invite_id);
        render();
      });
      try {
        for (const invite of await api.call('GET', '/v1/invites')) invites.set(invite.id, invite);
      } catch (error) {
        notify(`Could not read your invitations: ${error.message}`);
      }
      render();
    },
    stop() {
      invites = new Map();
      render();
    },
  };
}
