/**
 * One-to-one calls, the engine without the DOM: what each `call` frame
 * means for this connection, placing, accepting, declining and hanging
 * up over the socket, and the RTCPeerConnection between the two
 * connections taking part (docs/protocol.md, "Calls").
 *
 * The server keeps each call's state and tells every connection of both
 * parties of each change; a connection takes part when the call's
 * `caller_session` or `callee_session` is its own `hello` `session_id`.
 * The caller makes the offer once it sees the call accepted, the callee
 * answers, and both trickle their ICE candidates; remote candidates wait
 * until the remote description is set. Media comes from
 * `getUserMedia`, the ICE servers (and whether all media must go through
 * TURN) from `GET /v1/calls/ice-servers`, asked again for every call.
 *
 * The engine holds at most one call: the one this page shows. Views
 * listen with {@link CallEngine#on} (`change`) and read {@link CallEngine#view}.
 * The pure helpers ({@link callPhase}, {@link rtcConfiguration},
 * {@link callErrorText}) are unit-tested (`tests/calls.test.mjs`).
 *
 * @module calls
 */

/**
 * What a `call` frame means for this connection:
 * - `incoming`: it rings here (I am the callee and nobody took it yet);
 * - `outgoing`: I placed it from this connection and it rings;
 * - `active`: accepted, and this connection takes part;
 * - `ended`: over, and this connection took part or rang for it;
 * - `elsewhere`: another connection of mine placed or took it (this one
 *   stops ringing), or it ended there.
 * @typedef {'incoming'|'outgoing'|'active'|'ended'|'elsewhere'} CallPhase
 */

/**
 * @param {object} call the `call` of a `call` frame
 * @param {{userId: string, sessionId: string|null}} me this connection
 * @returns {CallPhase}
 */
export function callPhase(call, { userId, sessionId }) {
  const caller = call.caller === userId;
  const here = caller ? call.caller_session === sessionId : call.callee_session === sessionId;
  switch (call.state) {
    case 'ringing':
      if (caller) return here ? 'outgoing' : 'elsewhere';
      return 'incoming';
    case 'accepted':
      return here ? 'active' : 'elsewhere';
    default:
      // A ring that ended unanswered (missed, cancelled) rang on every
      // connection of the callee: each shows how it ended.
      if (here || (!caller && !call.callee_session)) return 'ended';
      return 'elsewhere';
  }
}

/**
 * The `RTCConfiguration` for an answer of `GET /v1/calls/ice-servers`.
 * @param {{ice_servers?: {urls: string[], username?: string, credential?: string}[], ice_transport_policy?: string}} answer
 * @returns {RTCConfiguration}
 */
export function rtcConfiguration(answer) {
  const iceServers = (answer.ice_servers ?? []).map(({ urls, username, credential }) =>
    username === undefined ? { urls } : { urls, username, credential },
  );
  return { iceServers, iceTransportPolicy: answer.ice_transport_policy === 'relay' ? 'relay' : 'all' };
}

/** Words for the error codes of the call frames (docs/protocol.md, "Calls"). */
const CALL_ERRORS = {
  not_member: 'You are not in this conversation any more.',
  not_direct: 'Calls are between the two people of a direct conversation.',
  blocked: 'You cannot call: one of you blocks the other.',
  dm_request: 'They have not accepted your messages yet, so you cannot call them.',
  in_call: 'You are already in a call: hang it up first.',
  not_found: 'That call is gone.',
  call_not_ringing: 'The call was answered elsewhere, or it has ended.',
  call_ended: 'The call has ended.',
  not_in_call: 'This tab is not taking part in the call.',
  rate_limited: 'Too many calls just now: wait a moment and try again.',
  unavailable: 'The server could not do it just now: try again.',
};

/**
 * @param {string} code an `error` frame's code
 * @param {string} [message] the server's words, for codes without ours
 * @returns {string} what to tell the person
 */
export function callErrorText(code, message) {
  return CALL_ERRORS[code] ?? `The call did not work: ${message ?? code}`;
}

/** How long an ended call stays on screen, saying how it ended. */
export const ENDED_SHOWN_MS = 6000;

/**
 * What the call panel shows, as {@link CallEngine#view} gives it:
 * - `status`: `placing` (getting the camera, asking the server), `incoming`,
 *   `outgoing`, `accepting`, `connecting`, `connected`, `ending` (hung up
 *   here, waiting for the server to say so) or `ended`;
 * - `call`: the latest `call` frame's call (null while placing);
 * - `peer`: the other party's user id; `video`: a video call;
 * - `connectedAt`: ms since the epoch, once media flows;
 * - `reason`: why it ended (`completed`, `declined`, …, or `lost` when this
 *   page lost its connection);
 * - `muted`, `cameraOff`; `localStream`, `remoteStream` (MediaStreams, or null).
 * @typedef {object} CallView
 */

/**
 * The call this page takes part in or rings for. See the module doc.
 */
export class CallEngine {
  /** @type {Map<string, Set<Function>>} */
  #handlers = new Map();
  /** @type {import('./chat-client.js').ChatClient|null} */
  #client = null;
  /** @type {(() => void)[]} unsubscribes from the client */
  #detachers = [];
  /** @type {CallView|null} */
  #view = null;
  /** @type {RTCPeerConnection|null} */
  #pc = null;
  /** @type {RTCConfiguration|null} asked for this call */
  #config = null;
  /** @type {object[]} remote ICE candidates that came before the remote description */
  #pendingCandidates = [];
  /** Cancel was pressed before the server named the call: hang it up when it does. */
  #cancelPlacing = false;
  #endedTimer = null;
  #onPageHide = () => this.#leavePage();

  /**
   * @param {object} deps
   * @param {() => Promise<object>} deps.iceServers `GET /v1/calls/ice-servers`
   * @param {(text: string) => void} deps.notify shows a notice
   * @param {(constraints: MediaStreamConstraints) => Promise<MediaStream>} [deps.getUserMedia]
   */
  constructor({ iceServers, notify, getUserMedia = (constraints) => navigator.mediaDevices.getUserMedia(constraints) }) {
    this.iceServers = iceServers;
    this.notify = notify;
    this.getUserMedia = getUserMedia;
  }

  /**
   * Subscribes to `change` (the view changed).
   * @param {'change'} type
   * @param {() => void} handler
   * @returns {() => void} unsubscribes
   */
  on(type, handler) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(handler);
    return () => this.#handlers.get(type)?.delete(handler);
  }

  /** @returns {CallView|null} what to show, or null when there is no call */
  get view() {
    return this.#view;
  }

  /** @returns {RTCPeerConnection|null} the call's connection, once made (for its stats) */
  get peerConnection() {
    return this.#pc;
  }

  /** @returns {boolean} whether a call takes this page (a new one must wait) */
  get busy() {
    return Boolean(this.#view) && this.#view.status !== 'ended';
  }

  /**
   * Follows a protocol client's calls (one per login).
   * @param {import('./chat-client.js').ChatClient} client
   */
  attach(client) {
    this.detach();
    this.#client = client;
    this.#detachers = [
      client.on('call', ({ call }) => this.#onCall(call)),
      client.on('signal', (signal) => this.#onSignal(signal)),
      client.on('error', (error) => this.#onError(error)),
      client.on('status', ({ state }) => state !== 'online' && this.#onSocketLost()),
      client.on('roomRemoved', ({ room_id }) => this.#onRoomGone(room_id)),
    ];
    globalThis.addEventListener?.('pagehide', this.#onPageHide);
  }

  /** Ends whatever call there is and stops following the client (logged out). */
  detach() {
    this.#leavePage();
    this.#teardown();
    this.#setView(null);
    for (const detach of this.#detachers) detach();
    this.#detachers = [];
    this.#client = null;
    globalThis.removeEventListener?.('pagehide', this.#onPageHide);
  }

  // --- what the person does ------------------------------------------------------------

  /**
   * Calls the other member of a room: camera and microphone first (the
   * browser asks), then `call_place`.
   * @param {string} roomId
   * @param {string} peer the other member's user id
   * @param {boolean} video
   */
  async place(roomId, peer, video) {
    if (this.busy) {
      this.notify('You are already in a call.');
      return;
    }
    this.#cancelPlacing = false;
    this.#setView({ status: 'placing', call: null, roomId, peer, video, muted: false, cameraOff: false, localStream: null, remoteStream: null });
    if (!(await this.#prepare('placing'))) return;
    if (this.#cancelPlacing) {
      this.#abandon();
      return;
    }
    if (!this.#client?.callFrame('call_place', { room_id: roomId, video })) this.#abandon('You are offline: the call was not placed.');
  }

  /** Takes the call ringing here: media and ICE servers, then `call_accept`. */
  async accept() {
    const view = this.#view;
    if (view?.status !== 'incoming') return;
    this.#update({ status: 'accepting' });
    if (!(await this.#prepare('accepting', 'incoming'))) return;
    this.#makePeerConnection();
    if (!this.#client?.callFrame('call_accept', { call_id: view.call.id })) this.#abandon('You are offline: the call was not answered.');
  }

  /** Turns down the call ringing here (for all my connections). */
  decline() {
    const view = this.#view;
    if (view?.status !== 'incoming') return;
    this.#client?.callFrame('call_decline', { call_id: view.call.id });
  }

  /** Ends the call: cancels it while it rings, hangs up once accepted. */
  hangUp() {
    const view = this.#view;
    if (!view || view.status === 'ended' || view.status === 'ending') return;
    if (!view.call) {
      // The server has not named the call yet: hang it up once it does.
      this.#cancelPlacing = true;
      return;
    }
    this.#client?.callFrame('call_hangup', { call_id: view.call.id });
    // Media stops now; the server's `call` frame says how it ended.
    this.#teardown();
    this.#update({ status: 'ending', localStream: null, remoteStream: null });
  }

  /** Mutes or unmutes my microphone (the track stays, sending silence). */
  toggleMute() {
    if (!this.#view?.localStream) return;
    const muted = !this.#view.muted;
    for (const track of this.#view.localStream.getAudioTracks()) track.enabled = !muted;
    this.#update({ muted });
  }

  /** Turns my camera off or on (the track stays, sending black). */
  toggleCamera() {
    if (!this.#view?.localStream) return;
    const cameraOff = !this.#view.cameraOff;
    for (const track of this.#view.localStream.getVideoTracks()) track.enabled = !cameraOff;
    this.#update({ cameraOff });
  }

  /** Hides an ended call (or one hung up here whose end is still to be confirmed). */
  dismiss() {
    if (this.#view?.status === 'ended' || this.#view?.status === 'ending') this.#setView(null);
  }

  // --- what the server says ----------------------------------------------------------------

  #onCall(call) {
    const client = this.#client;
    const phase = callPhase(call, { userId: client.user?.id, sessionId: client.sessionId });
    const view = this.#view;
    const mine = view?.call?.id === call.id;
    // The answer to my `call_place`: the server names the call.
    const placed = view?.status === 'placing' && !view.call && call.room_id === view.roomId && call.caller === client.user?.id && phase !== 'elsewhere';
    if (!mine && !placed) {
      // One call at a time here; an ended one on screen gives way.
      if (phase !== 'incoming' || this.busy) return;
      this.#teardown();
      this.#setView({ status: 'incoming', call, roomId: call.room_id, peer: call.caller, video: call.video, muted: false, cameraOff: false, localStream: null, remoteStream: null });
      return;
    }
    // Hung up here: only its end is news.
    if (view.status === 'ending' && phase !== 'ended' && phase !== 'elsewhere') return;
    switch (phase) {
      case 'incoming':
        // Still ringing (a repeat, or my accept has yet to land).
        this.#update({ call });
        return;
      case 'outgoing':
        this.#update({ call, status: 'outgoing' });
        if (this.#cancelPlacing) this.hangUp();
        return;
      case 'active':
        this.#update({ call, status: view.status === 'connected' ? 'connected' : 'connecting' });
        // The caller offers once the callee's connection is known.
        if (call.caller === client.user?.id && !this.#pc) this.#offer(call);
        return;
      case 'ended':
        if (view.status !== 'ended') this.#end(call, call.reason);
        return;
      default:
        // Taken or placed by another connection of mine: not ours to show.
        this.#teardown();
        this.#setView(null);
    }
  }

  async #onSignal(signal) {
    const view = this.#view;
    if (!view?.call || signal.call_id !== view.call.id) return;
    if (signal.to_session && signal.to_session !== this.#client?.sessionId) return;
    const pc = this.#pc;
    try {
      switch (signal.kind) {
        case 'offer': {
          if (!pc) return;
          await pc.setRemoteDescription(signal.payload);
          await this.#flushCandidates(pc);
          await pc.setLocalDescription(await pc.createAnswer());
          this.#client?.signal(view.call.id, 'answer', pc.localDescription.toJSON());
          return;
        }
        case 'answer':
          if (!pc) return;
          await pc.setRemoteDescription(signal.payload);
          await this.#flushCandidates(pc);
          return;
        case 'ice':
          if (pc?.remoteDescription) await pc.addIceCandidate(signal.payload);
          else this.#pendingCandidates.push(signal.payload);
          return;
        default:
          return; // a kind of a later protocol
      }
    } catch (error) {
      console.warn('calls: a signal could not be applied', signal.kind, error);
    }
  }

  #onError(error) {
    const view = this.#view;
    // A refusal of a call shown as ended (both hung up at once, say) adds nothing.
    if (!view || !error.ref || view.status === 'ended') return;
    const aboutPlacing = view.status === 'placing' && error.ref === view.roomId;
    const aboutCall = view.call && error.ref === view.call.id;
    if (!aboutPlacing && !aboutCall) return;
    // A signal refused (a call just ended, say) changes nothing on screen.
    if (aboutCall && (error.code === 'not_in_call' || error.code === 'validation_failed')) return;
    this.#abandon(callErrorText(error.code, error.message));
  }

  /**
   * The socket is gone: the server ends a call this connection takes part
   * in (`failed`), and a ring comes back after the next `hello`.
   */
  #onSocketLost() {
    const view = this.#view;
    if (!view || view.status === 'ended') return;
    if (view.status === 'incoming' || view.status === 'accepting') {
      this.#teardown();
      this.#setView(null);
      return;
    }
    this.#end(view.call, 'lost');
  }

  /**
   * I am no longer in the call's room (it was deleted, or I was removed):
   * its calls went with it, and no `call` frame will end this one.
   */
  #onRoomGone(roomId) {
    const view = this.#view;
    if (!view || view.roomId !== roomId || view.status === 'ended') return;
    if (view.status === 'incoming') {
      this.#teardown();
      this.#setView(null);
      return;
    }
    this.#end(view.call, 'failed');
  }

  /** Leaving the page: hang up best-effort (the server ends it anyway when the socket closes). */
  #leavePage() {
    const view = this.#view;
    if (view?.call && ['outgoing', 'connecting', 'connected'].includes(view.status)) {
      this.#client?.callFrame('call_hangup', { call_id: view.call.id });
    }
  }

  // --- the peer connection ------------------------------------------------------------------

  /**
   * Camera and microphone, and this call's ICE servers, both before
   * anything is sent. The view must still be in `status` when they come
   * (a cancel, a lost socket or the call's end may come first).
   * @param {string} status the view's status while they are asked for
   * @param {string} [fallback] the status to go back to when they cannot
   *   be had (with a notice); without one, the call is given up
   * @returns {Promise<boolean>} whether to go on
   */
  async #prepare(status, fallback) {
    const view = this.#view;
    const current = () => this.#view === view && view.status === status;
    let stream;
    try {
      const [media, config] = await Promise.all([
        this.#media(view.video),
        this.iceServers().then(rtcConfiguration, () => {
          throw new Error('Could not reach the server to set up the call.');
        }),
      ]);
      stream = media;
      this.#config = config;
    } catch (error) {
      if (!current()) return false;
      if (fallback) {
        this.#update({ status: fallback });
        this.notify(error.message);
      } else {
        this.#abandon(error.message);
      }
      return false;
    }
    if (!current()) {
      for (const track of stream.getTracks()) track.stop();
      return false;
    }
    this.#update({ localStream: stream });
    return true;
  }

  /** Microphone (and camera): a video call without a camera goes ahead with sound only. */
  async #media(video) {
    try {
      return await this.getUserMedia({ audio: true, video });
    } catch (error) {
      if (video) {
        try {
          return await this.getUserMedia({ audio: true, video: false });
        } catch {
          // Nothing at all: said below.
        }
      }
      throw new Error(`No microphone${video ? ' or camera' : ''} to call with (${error.name ?? error.message}).`);
    }
  }

  #makePeerConnection() {
    const pc = new RTCPeerConnection(this.#config ?? {});
    this.#pc = pc;
    this.#pendingCandidates = [];
    const remote = new MediaStream();
    this.#update({ remoteStream: remote });
    for (const track of this.#view.localStream?.getTracks() ?? []) pc.addTrack(track, this.#view.localStream);
    pc.onicecandidate = ({ candidate }) => {
      const call = this.#view?.call;
      // A null candidate ends the gathering: nothing to tell.
      if (candidate && call && this.#pc === pc) this.#client?.signal(call.id, 'ice', candidate.toJSON());
    };
    pc.ontrack = ({ track }) => {
      if (this.#pc !== pc) return;
      remote.addTrack(track);
      this.#emit();
    };
    pc.onconnectionstatechange = () => {
      if (this.#pc !== pc) return;
      if (pc.connectionState === 'connected' && this.#view.status !== 'connected') {
        this.#update({ status: 'connected', connectedAt: this.#view.connectedAt ?? Date.now() });
      } else if (pc.connectionState === 'failed') {
        // No route between the two (or it broke for good): nothing to wait for.
        this.notify('The call lost its connection.');
        this.hangUp();
      }
    };
    return pc;
  }

  async #offer(call) {
    const pc = this.#makePeerConnection();
    try {
      await pc.setLocalDescription(await pc.createOffer());
      if (this.#pc === pc) this.#client?.signal(call.id, 'offer', pc.localDescription.toJSON());
    } catch (error) {
      console.warn('calls: no offer', error);
      this.hangUp();
    }
  }

  async #flushCandidates(pc) {
    const waiting = this.#pendingCandidates;
    this.#pendingCandidates = [];
    for (const candidate of waiting) {
      await pc.addIceCandidate(candidate).catch((error) => console.warn('calls: a candidate was refused', error));
    }
  }

  // --- plumbing ------------------------------------------------------------------------------

  /** Over: show why for a while, with everything released. */
  #end(call, reason) {
    this.#teardown();
    this.#update({ call: call ?? this.#view.call, status: 'ended', reason, localStream: null, remoteStream: null });
    const view = this.#view;
    this.#endedTimer = setTimeout(() => this.#view === view && this.#setView(null), ENDED_SHOWN_MS);
  }

  /** Given up before the server knew of it (or refused by it): say why, show nothing. */
  #abandon(reason) {
    const view = this.#view;
    // A call the server named ends by its frame; until then, hang it up.
    if (view?.call && view.status !== 'ended' && view.status !== 'incoming') this.#client?.callFrame('call_hangup', { call_id: view.call.id });
    this.#teardown();
    this.#setView(null);
    if (reason) this.notify(reason);
  }

  #releaseMedia() {
    for (const track of this.#view?.localStream?.getTracks() ?? []) track.stop();
  }

  #teardown() {
    clearTimeout(this.#endedTimer);
    this.#releaseMedia();
    if (this.#pc) {
      this.#pc.onicecandidate = this.#pc.ontrack = this.#pc.onconnectionstatechange = null;
      this.#pc.close();
    }
    this.#pc = null;
    this.#config = null;
    this.#pendingCandidates = [];
  }

  #update(fields) {
    if (!this.#view) return;
    Object.assign(this.#view, fields);
    this.#emit();
  }

  #setView(view) {
    this.#view = view;
    this.#emit();
  }

  #emit() {
    for (const handler of this.#handlers.get('change') ?? []) {
      try {
        handler();
      } catch (error) {
        console.error('calls: a listener failed', error);
      }
    }
  }
}
