/**
 * The frame around the open room: the top bar (connection, who I am), the
 * room's header (name, topic, the pins button, invite and leave), the
 * empty state, and the "is typing" line.
 *
 * @module view-room
 */

import { byId } from './dom.js';
import { canInvite, currentRoom, dmPartner, roomName, userName } from './store.js';

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(text: string, ok: string) => Promise<boolean>} deps.confirm
 */
export function mountRoom({ store, actions, confirm }) {
  const { state } = store;
  const el = {
    connection: byId('connection'),
    connectionLabel: byId('connection-label'),
    reconnectNow: byId('reconnect-now'),
    me: byId('me'),
    noRoom: byId('no-room'),
    header: byId('room-header'),
    title: byId('room-title'),
    topic: byId('room-topic'),
    pinsToggle: byId('pins-toggle'),
    pinsCount: byId('pins-count'),
    invite: byId('invite'),
    leave: byId('leave'),
    messages: byId('messages'),
    composer: byId('composer'),
    typing: byId('typing'),
  };

  function render(_state, changed) {
    if (changed.has('connection') || changed.has('me')) renderConnection();
    if (changed.has('me')) el.me.textContent = state.me ? `${state.me.display_name} (@${state.me.username})` : '';
    const room = currentRoom(state);
    const id = room?.id;
    if (['current', 'rooms', 'users', 'ui', `members:${id}`, `pins:${id}`].some((t) => changed.has(t))) renderHeader(room);
    if (changed.has('current') || changed.has(`typing:${id}`) || changed.has('users')) renderTyping(room);
  }

  function renderConnection() {
    const status = state.connection;
    el.connection.dataset.state = status.state;
    el.reconnectNow.hidden = status.state !== 'waiting';
    el.connectionLabel.textContent = connectionLabel(status);
  }

  function renderHeader(room) {
    el.noRoom.hidden = Boolean(room);
    el.header.hidden = el.messages.hidden = el.composer.hidden = !room;
    if (!room) return;
    el.title.textContent = room.kind === 'direct' ? roomName(state, room) : `${room.kind === 'private' ? '◆' : '#'} ${room.name}`;
    const partner = room.kind === 'direct' ? state.users.get(dmPartner(state, room)) : null;
    el.topic.textContent = room.kind === 'direct' ? `Direct message${partner ? ` with @${partner.username}` : ''}` : room.topic;
    el.invite.hidden = !canInvite(room);
    el.leave.hidden = room.kind === 'direct' || room.role === 'owner';
    const pins = state.pins.get(room.id);
    const count = pins?.loaded ? pins.items.length : null;
    el.pinsCount.textContent = count === null ? 'Pinned' : `Pinned (${count})`;
    el.pinsToggle.setAttribute('aria-expanded', String(state.ui.pinsOpen));
    el.pinsToggle.classList.toggle('active', state.ui.pinsOpen);
  }

  function renderTyping(room) {
    if (!room) {
      el.typing.textContent = '';
      return;
    }
    const now = Date.now();
    const typers = [...(state.typing.get(room.id) ?? new Map())]
      .filter(([userId, until]) => until > now && userId !== state.me?.id)
      .map(([userId]) => userName(state, userId));
    el.typing.textContent =
      typers.length === 0
        ? ''
        : typers.length === 1
          ? `${typers[0]} is typing…`
          : typers.length === 2
            ? `${typers[0]} and ${typers[1]} are typing…`
            : 'Several people are typing…';
  }

  el.reconnectNow.addEventListener('click', () => actions.client?.reconnectNow());
  el.pinsToggle.addEventListener('click', () => actions.togglePins());
  el.leave.addEventListener('click', async () => {
    const room = currentRoom(state);
    if (room && (await confirm(`Leave ${roomName(state, room)}?`, 'Leave'))) actions.leaveCurrent();
  });
  // The reconnect countdown.
  setInterval(() => state.connection.state === 'waiting' && renderConnection(), 1000);

  store.subscribe(render);
}

function connectionLabel(status) {
  switch (status.state) {
    case 'online':
      return 'Connected';
    case 'connecting':
      return 'Connecting…';
    case 'waiting': {
      const seconds = Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000));
      return `Reconnecting in ${seconds}s`;
    }
    case 'offline':
      return 'Offline: waiting for the network';
    case 'stopped':
      return 'Disconnected';
    default:
      return 'Not connected';
  }
}
