/**
 * Calls on the page: the voice and video call buttons in the header of a
 * DM (or of a private room of two), and the call panel drawn from the
 * call engine (`calls.js`): "<name> is calling…" with Accept and Decline,
 * "Calling <name>…" with Cancel, the call in progress (the other's video
 * and sound, my own preview, Mute, Camera off, Hang up, the running
 * clock), and how it ended.
 *
 * @module view-call
 */

import { byId } from './dom.js';
import { formatClock } from './format.js';
import { currentRoom, dmPartner, userName } from './store.js';

/** Words for why a call ended, after "Call ended: ". */
const ENDED_WORDS = {
  completed: 'hung up',
  declined: 'declined',
  missed: 'missed',
  cancelled: 'cancelled',
  busy: 'busy',
  failed: 'failed',
  lost: 'connection lost',
};

/**
 * The other member of a room I may call, or null: a DM (not a request
 * waiting for my answer) or a private room of exactly two.
 * @returns {string|null} their user id
 */
export function callablePeer(state, room) {
  if (!room || room.request) return null;
  const members = state.members.get(room.id);
  if (room.kind === 'direct') return dmPartner(state, room);
  if (room.kind === 'private' && members?.size === 2) return dmPartner(state, room);
  return null;
}

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {import('./calls.js').CallEngine} deps.calls
 */
export function mountCall({ store, calls }) {
  const { state } = store;
  const el = {
    voice: byId('call-voice'),
    video: byId('call-video'),
    panel: byId('call-panel'),
    title: byId('call-title'),
    kind: byId('call-kind'),
    status: byId('call-status'),
    media: byId('call-media'),
    remoteVideo: byId('call-remote-video'),
    localVideo: byId('call-local-video'),
    remoteAudio: byId('call-remote-audio'),
    accept: byId('call-accept'),
    decline: byId('call-decline'),
    mute: byId('call-mute'),
    camera: byId('call-camera'),
    hangup: byId('call-hangup'),
    close: byId('call-close'),
  };

  function renderButtons() {
    const room = currentRoom(state);
    const peer = callablePeer(state, room);
    el.voice.hidden = el.video.hidden = !peer;
    el.voice.disabled = el.video.disabled = calls.busy;
    if (peer) {
      const name = userName(state, peer);
      el.voice.setAttribute('aria-label', `Voice call with ${name}`);
      el.video.setAttribute('aria-label', `Video call with ${name}`);
    }
  }

  function renderPanel() {
    const view = calls.view;
    el.panel.hidden = !view;
    if (!view) {
      setStream(el.remoteVideo, null);
      setStream(el.localVideo, null);
      setStream(el.remoteAudio, null);
      return;
    }
    const name = userName(state, view.peer);
    const { status } = view;
    el.panel.dataset.status = status;
    el.title.textContent = status === 'incoming' ? `${name} is calling…` : ['placing', 'outgoing'].includes(status) ? `Calling ${name}…` : name;
    el.kind.textContent = view.video ? 'Video call' : 'Voice call';
    el.status.textContent = statusLine(view);
    const live = ['outgoing', 'placing', 'accepting', 'connecting', 'connected'].includes(status);
    el.media.hidden = !live;
    el.media.classList.toggle('voice', !view.video);
    setStream(el.localVideo, view.localStream);
    setStream(el.remoteVideo, view.remoteStream);
    setStream(el.remoteAudio, view.remoteStream);
    el.accept.hidden = el.decline.hidden = status !== 'incoming';
    el.accept.textContent = view.video ? 'Accept with video' : 'Accept';
    el.hangup.hidden = !live;
    el.hangup.textContent = ['placing', 'outgoing'].includes(status) ? 'Cancel' : 'Hang up';
    el.mute.hidden = !live || !view.localStream;
    el.mute.textContent = view.muted ? 'Unmute' : 'Mute';
    el.mute.setAttribute('aria-pressed', String(view.muted));
    el.camera.hidden = !live || !view.localStream?.getVideoTracks().length;
    el.camera.textContent = view.cameraOff ? 'Camera on' : 'Camera off';
    el.camera.setAttribute('aria-pressed', String(view.cameraOff));
    // A hang-up whose end the server has yet to confirm can be put away too.
    el.close.hidden = status !== 'ended' && status !== 'ending';
  }

  /** Gives a media element its stream, only when it changed (a new one restarts playback). */
  function setStream(media, stream) {
    if (media.srcObject !== stream) media.srcObject = stream;
  }

  el.voice.addEventListener('click', () => place(false));
  el.video.addEventListener('click', () => place(true));
  el.accept.addEventListener('click', () => calls.accept());
  el.decline.addEventListener('click', () => calls.decline());
  el.hangup.addEventListener('click', () => calls.hangUp());
  el.mute.addEventListener('click', () => calls.toggleMute());
  el.camera.addEventListener('click', () => calls.toggleCamera());
  el.close.addEventListener('click', () => calls.dismiss());

  function place(video) {
    const room = currentRoom(state);
    const peer = callablePeer(state, room);
    if (peer) calls.place(room.id, peer, video);
  }

  // The running clock of a call in progress.
  setInterval(() => calls.view?.status === 'connected' && (el.status.textContent = statusLine(calls.view)), 1000);

  calls.on('change', () => {
    renderPanel();
    renderButtons();
  });
  store.subscribe((_state, changed) => {
    const id = state.currentRoomId;
    if (['current', 'rooms', 'users', `members:${id}`].some((t) => changed.has(t))) renderButtons();
    if (changed.has('users') && calls.view) renderPanel();
  });
}

/** @param {import('./calls.js').CallView} view @returns {string} the panel's state line */
export function statusLine(view, now = Date.now()) {
  switch (view.status) {
    case 'placing':
      return 'Starting…';
    case 'incoming':
    case 'outgoing':
      return 'Ringing…';
    case 'accepting':
    case 'connecting':
      return 'Connecting…';
    case 'connected':
      return `Connected ${formatClock(now - view.connectedAt)}`;
    case 'ending':
      return 'Hanging up…';
    default:
      return `Call ended: ${ENDED_WORDS[view.reason] ?? view.reason}`;
  }
}
