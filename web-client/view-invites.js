/**
 * Invitations and invite links. My pending invitations, at the top of the
 * sidebar: each names the room and who invited me, with Accept (I join:
 * the room arrives over the socket as `room_added`, and opens) and
 * Decline; read from `GET /v1/invites` when the chat starts and kept up to
 * date by the socket's `invite` and `invite_removed` frames (an answer
 * given in another tab removes it here too). The open room's invite links
 * (owners and admins: `links-dialog`): create with an expiry and a use
 * limit, copy, revoke; and, in the same dialog, the room's pending
 * invitations, each of which they may withdraw. And the page route that joins by a link,
 * `/#join=<code>`: taken when the chat starts (after a login, if the
 * link was opened logged out) and whenever the address changes to one.
 *
 * @module view-invites
 */

import { byId, h, reconcile } from './dom.js';
import { canSetSlowMode, currentRoom } from './store.js';

/** The address of the page route that joins by `code`. */
export function joinUrl(code, origin = location.origin) {
  return `${origin}/#join=${encodeURIComponent(code)}`;
}

/** @returns {string|null} the invite code in a `#join=<code>` address */
export function joinCode(hash) {
  const match = /^#join=([A-Za-z0-9_-]{1,64})$/.exec(hash);
  return match ? match[1] : null;
}

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {import('./api.js').Api} deps.api
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(text: string) => void} deps.notify
 * @returns {{start: (client: import('./chat-client.js').ChatClient) => Promise<void>, stop: () => void}}
 */
export function mountInvites({ store, api, actions, notify }) {
  const el = {
    section: byId('invites'),
    list: byId('invite-list'),
    linksButton: byId('invite-links'),
    linksDialog: byId('links-dialog'),
    linkForm: byId('link-form'),
    linkExpires: byId('link-expires'),
    linkUses: byId('link-uses'),
    linkError: byId('link-error'),
    linkList: byId('link-list'),
    pendingList: byId('pending-list'),
    pendingEmpty: byId('pending-empty'),
  };
  const pendingRows = new Map();
  const linkRows = new Map();
  let started = false;
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
    if (changed.has('current') || changed.has('rooms')) {
      const room = currentRoom(state);
      // Who may make links is who may set slow mode: owners and admins, not in a DM.
      el.linksButton.hidden = !room || !canSetSlowMode(room);
    }
  });

  // --- invite links of the open room --------------------------------------------------------

  async function loadLinks() {
    const room = currentRoom(store.state);
    if (!room) return;
    try {
      const [links, pending] = await Promise.all([
        api.call('GET', `/v1/rooms/${room.id}/invite-links`),
        api.call('GET', `/v1/rooms/${room.id}/invites`),
      ]);
      renderLinks(links);
      renderPending(pending);
    } catch (error) {
      el.linkError.textContent = error.message;
    }
  }

  function renderPending(pending) {
    el.pendingEmpty.hidden = pending.length > 0;
    const items = pending.map((invite) => ({
      key: invite.id,
      userId: invite.user_id,
      name: invite.invitee.display_name,
      username: invite.invitee.username,
      by: invite.invited_by?.display_name ?? 'someone',
    }));
    reconcile(el.pendingList, items, pendingRow, pendingRows);
  }

  function pendingRow(item) {
    return h(
      'li',
      { dataset: { userId: item.userId } },
      h('span', { className: 'name' }, item.name, ' ', h('small', { className: 'handle' }, `@${item.username}`)),
      h('span', { className: 'link-state' }, `invited by ${item.by}`),
      h('button', { type: 'button', className: 'ghost small danger', on: { click: () => withdraw(item.userId) } }, 'Withdraw'),
    );
  }

  async function withdraw(userId) {
    const room = currentRoom(store.state);
    if (!room) return;
    try {
      await api.call('DELETE', `/v1/rooms/${room.id}/invites/${userId}`);
    } catch (error) {
      el.linkError.textContent = error.message;
    }
    loadLinks();
  }

  function renderLinks(links) {
    const now = Date.now();
    const items = links.map((link) => ({
      key: link.code,
      code: link.code,
      url: joinUrl(link.code),
      state: link.revoked_at
        ? 'revoked'
        : link.expires_at && new Date(link.expires_at).getTime() <= now
          ? 'expired'
          : link.max_uses && link.uses >= link.max_uses
            ? 'used up'
            : `${link.uses}${link.max_uses ? `/${link.max_uses}` : ''} used${link.expires_at ? `, until ${new Date(link.expires_at).toLocaleString()}` : ''}`,
      live: !link.revoked_at,
    }));
    reconcile(el.linkList, items, linkRow, linkRows);
  }

  function linkRow(item) {
    const field = h('input', { type: 'text', readOnly: true, value: item.url, attrs: { 'aria-label': 'Invite link' } });
    return h(
      'li',
      { dataset: { code: item.code } },
      field,
      h('span', { className: 'link-state' }, item.state),
      h('button', {
        type: 'button',
        className: 'ghost small',
        on: {
          click: async () => {
            field.select();
            try {
              await navigator.clipboard.writeText(item.url);
              notify('Link copied.');
            } catch {
              notify('Select the link and copy it.');
            }
          },
        },
      }, 'Copy'),
      item.live ? h('button', { type: 'button', className: 'ghost small danger', on: { click: () => revoke(item.code) } }, 'Revoke') : null,
    );
  }

  async function revoke(code) {
    const room = currentRoom(store.state);
    if (!room) return;
    try {
      await api.call('DELETE', `/v1/rooms/${room.id}/invite-links/${encodeURIComponent(code)}`);
    } catch (error) {
      el.linkError.textContent = error.message;
    }
    loadLinks();
  }

  el.linksButton.addEventListener('click', () => {
    el.linkError.textContent = '';
    reconcile(el.linkList, [], linkRow, linkRows);
    reconcile(el.pendingList, [], pendingRow, pendingRows);
    el.linksDialog.showModal();
    loadLinks();
  });

  el.linkForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const room = currentRoom(store.state);
    if (!room) return;
    const body = {};
    if (el.linkExpires.value) body.expires_in_seconds = Number(el.linkExpires.value);
    if (el.linkUses.value) body.max_uses = Number(el.linkUses.value);
    el.linkError.textContent = '';
    try {
      await api.call('POST', `/v1/rooms/${room.id}/invite-links`, body);
    } catch (error) {
      el.linkError.textContent = error.message;
    }
    loadLinks();
  });

  // --- joining by a link --------------------------------------------------------------------

  async function joinFromAddress() {
    const code = joinCode(location.hash);
    if (!code || !started) return;
    history.replaceState(null, '', location.pathname + location.search);
    try {
      const joined = await api.call('POST', `/v1/invite-links/${encodeURIComponent(code)}/join`, {});
      opening.add(joined.room_id);
      openArrived(store.state);
    } catch (error) {
      notify(`Could not join: ${error.message}`);
    }
  }

  window.addEventListener('hashchange', joinFromAddress);

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
      started = true;
      joinFromAddress();
      try {
        for (const invite of await api.call('GET', '/v1/invites')) invites.set(invite.id, invite);
      } catch (error) {
        notify(`Could not read your invitations: ${error.message}`);
      }
      render();
    },
    stop() {
      started = false;
      invites = new Map();
      render();
    },
  };
}
