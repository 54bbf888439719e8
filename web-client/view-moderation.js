/**
 * Moderation in the open room. For the member: a banner while I am muted
 * (with its end) and the composer disabled until then; in a room with slow
 * mode, the interval, and after my message a countdown with Send disabled
 * until I may send again. For owners and admins: Mute / Unmute on the
 * members below them (`mute-dialog` picks how long) and the room's slow
 * mode (`slow-mode-dialog`). Every change arrives as a room event
 * (`member_muted`, `member_unmuted`, `slow_mode_changed`) that the store
 * applies; this view only reads the state and calls the api.
 *
 * @module view-moderation
 */

import { byId, h } from './dom.js';
import { canModerate, canSetSlowMode, currentRoom, mutedUntil, timelineOf, userName } from './store.js';

/** @param {Date} when @returns {string} a time people read: the hour, and the date if not today */
export function endText(when, now = new Date()) {
  const time = when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return when.toDateString() === now.toDateString() ? time : `${when.toLocaleDateString()} ${time}`;
}

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {import('./api.js').Api} deps.api
 * @param {(text: string) => void} deps.notify
 * Mount it after the composer, whose Send it holds.
 * @returns {{controls: (row: object) => Node|null}} what the member list shows for each member
 */
export function mountModeration({ store, api, notify }) {
  const { state } = store;
  const el = {
    banner: byId('mute-banner'),
    slowLine: byId('slow-mode-line'),
    input: byId('composer-input'),
    send: byId('send'),
    slowButton: byId('slow-mode'),
    muteDialog: byId('mute-dialog'),
    muteForm: byId('mute-form'),
    muteName: byId('mute-name'),
    muteDuration: byId('mute-duration'),
    muteError: byId('mute-error'),
    slowDialog: byId('slow-mode-dialog'),
    slowForm: byId('slow-mode-form'),
    slowSeconds: byId('slow-mode-seconds'),
    slowError: byId('slow-mode-error'),
  };
  /** Re-renders when a mute ends or slow mode's wait passes. */
  let tick = null;
  /** Whom the mute dialog is about. */
  let muting = null;

  function render() {
    clearTimeout(tick);
    tick = null;
    const room = currentRoom(state);
    el.slowButton.hidden = !room || !canSetSlowMode(room);
    const muted = room ? mutedUntil(state, room.id, state.me?.id) : null;
    el.banner.hidden = !muted;
    if (muted) {
      el.banner.textContent = `You are muted in this room until ${endText(muted)}.`;
      el.banner.title = muted.toLocaleString();
      schedule(muted.getTime() - Date.now());
    }
    // While muted the composer is closed; when the mute ends it opens again.
    el.input.disabled = Boolean(muted);
    el.input.placeholder = muted ? `Muted until ${endText(muted)}` : 'Message';
    const wait = room && !muted ? slowModeWait(room) : 0;
    if (muted || wait > 0) el.send.disabled = true;
    else if (el.send.dataset.heldByModeration) el.send.disabled = !el.input.value.trim();
    el.send.dataset.heldByModeration = muted || wait > 0 ? 'yes' : '';
    const slow = room?.slow_mode_seconds ?? 0;
    el.slowLine.hidden = !room || !slow || Boolean(muted);
    if (room && slow && !muted) {
      const exempt = room.role === 'owner' || room.role === 'admin';
      el.slowLine.textContent = exempt
        ? `Slow mode is on: one message every ${seconds(slow)} for members (you are exempt).`
        : wait > 0
          ? `Slow mode: you can send again in ${Math.ceil(wait / 1000)} s.`
          : `Slow mode is on: one message every ${seconds(slow)}.`;
      if (wait > 0) schedule(Math.min(wait, 1000));
    }
  }

  function schedule(ms) {
    tick = setTimeout(() => store.touch('current'), Math.max(ms, 50));
  }

  /** @returns {number} ms until I may send again under slow mode (0: now) */
  function slowModeWait(room) {
    const slow = room.slow_mode_seconds ?? 0;
    if (!slow || room.role === 'owner' || room.role === 'admin') return 0;
    // As the server counts: my newest message since slow mode was last
    // changed (it keeps no time of messages sent while it was off).
    const items = timelineOf(state, room.id).items();
    for (let i = items.length - 1; i >= 0; i -= 1) {
      const item = items[i];
      if (item.type === 'slow_mode_changed') return 0;
      if (item.type !== 'message' || item.sender !== state.me?.id) continue;
      return Math.max(0, new Date(item.ts).getTime() + slow * 1000 - Date.now());
    }
    return 0;
  }

  function controls(row) {
    if (!row.moderate) return null;
    return h(
      'button',
      {
        type: 'button',
        className: 'ghost small mute-toggle',
        dataset: { action: row.mutedUntil ? 'unmute' : 'mute' },
        on: { click: () => (row.mutedUntil ? unmute(row.id) : openMute(row.id)) },
      },
      row.mutedUntil ? 'Unmute' : 'Mute',
    );
  }

  function openMute(userId) {
    muting = userId;
    el.muteName.textContent = userName(state, userId);
    el.muteError.textContent = '';
    el.muteDialog.showModal();
  }

  async function unmute(userId) {
    const room = currentRoom(state);
    if (!room) return;
    try {
      await api.call('DELETE', `/v1/rooms/${room.id}/members/${userId}/mute`);
    } catch (error) {
      notify(`Could not unmute: ${error.message}`);
    }
  }

  el.muteForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const room = currentRoom(state);
    if (!room || !muting) return;
    try {
      await api.call('PUT', `/v1/rooms/${room.id}/members/${muting}/mute`, { duration_seconds: Number(el.muteDuration.value) });
      el.muteDialog.close();
    } catch (error) {
      el.muteError.textContent = error.message;
    }
  });

  el.slowButton.addEventListener('click', () => {
    const room = currentRoom(state);
    if (!room) return;
    el.slowSeconds.value = String(room.slow_mode_seconds ?? 0);
    el.slowError.textContent = '';
    el.slowDialog.showModal();
  });

  el.slowForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const room = currentRoom(state);
    if (!room) return;
    try {
      await api.call('PUT', `/v1/rooms/${room.id}/slow-mode`, { seconds: Number(el.slowSeconds.value) });
      el.slowDialog.close();
    } catch (error) {
      el.slowError.textContent = error.message;
    }
  });

  // The composer's own rule (text or a file) takes Send back once neither
  // a mute nor slow mode holds it; until then it stays held (this listener
  // runs after the composer's: mounted after it), and Enter does not send.
  el.input.addEventListener('input', () => {
    if (el.send.dataset.heldByModeration) el.send.disabled = true;
  });
  el.input.addEventListener(
    'keydown',
    (event) => {
      if (event.key === 'Enter' && !event.shiftKey && el.send.dataset.heldByModeration) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    { capture: true },
  );

  store.subscribe((_state, changed) => {
    const room = currentRoom(state);
    if (['current', 'rooms', 'me', `members:${room?.id}`, `timeline:${room?.id}`].some((t) => changed.has(t))) render();
  });
  return { controls };
}

/** @returns {string} an interval in words */
function seconds(n) {
  if (n % 3600 === 0) return n === 3600 ? '1 hour' : `${n / 3600} hours`;
  if (n % 60 === 0) return n === 60 ? 'minute' : `${n / 60} minutes`;
  return `${n} seconds`;
}
