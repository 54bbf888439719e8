// Unit tests of the call engine (calls.js): what a `call` frame means for
// this connection, the RTCConfiguration from the api's ICE servers, the
// words for refusals, and the engine's lifecycle of a call against a
// scripted protocol client and a recording stand-in for RTCPeerConnection
// (no browser here; tests/e2e-calls.mjs runs the real thing in Chromium).
// Run: node --test web-client/tests/calls.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CallEngine, callErrorText, callPhase, rtcConfiguration } from '../calls.js';
import { callablePeer, statusLine } from '../view-call.js';

const ALICE = 'alice';
const BOB = 'bob';

/** A call from alice's connection `a1` to bob, as the server describes it. */
function call(extra = {}) {
  return { id: 'c1', room_id: 'r', caller: ALICE, callee: BOB, video: true, state: 'ringing', caller_session: 'a1', created_at: 't', ...extra };
}

const aliceHere = { userId: ALICE, sessionId: 'a1' };
const aliceOtherTab = { userId: ALICE, sessionId: 'a2' };
const bobHere = { userId: BOB, sessionId: 'b1' };
const bobOtherTab = { userId: BOB, sessionId: 'b2' };

test('a ringing call rings every connection of the callee, and calls out from the caller’s placing one only', () => {
  assert.equal(callPhase(call(), bobHere), 'incoming');
  assert.equal(callPhase(call(), bobOtherTab), 'incoming');
  assert.equal(callPhase(call(), aliceHere), 'outgoing');
  assert.equal(callPhase(call(), aliceOtherTab), 'elsewhere');
});

test('accepted, the call is in progress on the two connections taking part, and stops ringing elsewhere', () => {
  const accepted = call({ state: 'accepted', callee_session: 'b1', accepted_at: 't' });
  assert.equal(callPhase(accepted, aliceHere), 'active');
  assert.equal(callPhase(accepted, bobHere), 'active');
  assert.equal(callPhase(accepted, bobOtherTab), 'elsewhere', 'taken on another connection: stop ringing');
  assert.equal(callPhase(accepted, aliceOtherTab), 'elsewhere');
});

test('an ended call shows how it ended where it took part or rang', () => {
  const missed = call({ state: 'ended', reason: 'missed', ended_at: 't' });
  assert.equal(callPhase(missed, aliceHere), 'ended');
  assert.equal(callPhase(missed, bobHere), 'ended', 'it rang on every connection of the callee');
  assert.equal(callPhase(missed, bobOtherTab), 'ended');
  assert.equal(callPhase(missed, aliceOtherTab), 'elsewhere');
  const completed = call({ state: 'ended', reason: 'completed', callee_session: 'b1', accepted_at: 't', ended_at: 't' });
  assert.equal(callPhase(completed, bobHere), 'ended');
  assert.equal(callPhase(completed, bobOtherTab), 'elsewhere', 'it was taken on another connection');
  assert.equal(callPhase(completed, aliceHere), 'ended');
});

test('the ICE servers become an RTCConfiguration, with TURN credentials and the transport policy', () => {
  const config = rtcConfiguration({
    ice_servers: [
      { urls: ['stun:stun.example:3478'] },
      { urls: ['turn:turn.example:3478?transport=udp'], username: '1765195200:u', credential: 'c2VjcmV0' },
    ],
    ice_transport_policy: 'relay',
    ttl_secs: 43200,
  });
  assert.deepEqual(config, {
    iceServers: [{ urls: ['stun:stun.example:3478'] }, { urls: ['turn:turn.example:3478?transport=udp'], username: '1765195200:u', credential: 'c2VjcmV0' }],
    iceTransportPolicy: 'relay',
  });
  assert.deepEqual(rtcConfiguration({ ice_servers: [], ice_transport_policy: 'all' }), { iceServers: [], iceTransportPolicy: 'all' });
  assert.deepEqual(rtcConfiguration({}), { iceServers: [], iceTransportPolicy: 'all' }, 'no servers: host candidates only');
});

test('refusals of call frames are told in words, unknown codes with the server’s', () => {
  assert.match(callErrorText('in_call'), /already in a call/);
  assert.match(callErrorText('blocked'), /blocks/);
  assert.match(callErrorText('dm_request'), /not accepted/);
  assert.equal(callErrorText('something_new', 'the reason'), 'The call did not work: the reason');
});

test('the call panel’s state line: ringing, connecting, the running clock, and how it ended', () => {
  assert.equal(statusLine({ status: 'incoming' }), 'Ringing…');
  assert.equal(statusLine({ status: 'outgoing' }), 'Ringing…');
  assert.equal(statusLine({ status: 'connecting' }), 'Connecting…');
  assert.equal(statusLine({ status: 'connected', connectedAt: 1_000 }, 13_500), 'Connected 00:12');
  assert.equal(statusLine({ status: 'ended', reason: 'declined' }), 'Call ended: declined');
  assert.equal(statusLine({ status: 'ended', reason: 'lost' }), 'Call ended: connection lost');
});

test('calls are offered in a DM and in a private room of two, nowhere else', () => {
  const state = { me: { id: ALICE }, members: new Map([['dm', new Map([[ALICE, 'member'], [BOB, 'member']])], ['two', new Map([[ALICE, 'owner'], [BOB, 'member']])], ['three', new Map([[ALICE, 'owner'], [BOB, 'member'], ['carol', 'member']])]]) };
  assert.equal(callablePeer(state, { id: 'dm', kind: 'direct' }), BOB);
  assert.equal(callablePeer(state, { id: 'dm', kind: 'direct', request: true }), null, 'a request waits for an answer first');
  assert.equal(callablePeer(state, { id: 'two', kind: 'private' }), BOB);
  assert.equal(callablePeer(state, { id: 'three', kind: 'private' }), null);
  assert.equal(callablePeer(state, { id: 'two', kind: 'public' }), null);
  assert.equal(callablePeer(state, null), null);
});

// --- the engine ---------------------------------------------------------------------------

/** A protocol client as the engine uses it: frames out are recorded, frames in are scripted. */
class FakeClient {
  constructor(userId, sessionId) {
    this.user = { id: userId };
    this.sessionId = sessionId;
    this.sent = [];
    this.handlers = new Map();
  }
  on(type, handler) {
    this.handlers.set(type, handler);
    return () => this.handlers.delete(type);
  }
  receive(type, detail) {
    return this.handlers.get(type)?.(detail);
  }
  callFrame(type, fields) {
    this.sent.push({ type, ...fields });
    return true;
  }
  signal(callId, kind, payload) {
    this.sent.push({ type: 'signal', call_id: callId, kind, payload });
    return true;
  }
  sentOf(type) {
    return this.sent.filter((frame) => frame.type === type);
  }
}

class FakeTrack {
  constructor(kind) {
    this.kind = kind;
    this.enabled = true;
    this.stopped = false;
  }
  stop() {
    this.stopped = true;
  }
}

class FakeStream {
  constructor(tracks = []) {
    this.tracks = tracks;
  }
  getTracks() {
    return this.tracks;
  }
  getAudioTracks() {
    return this.tracks.filter((t) => t.kind === 'audio');
  }
  getVideoTracks() {
    return this.tracks.filter((t) => t.kind === 'video');
  }
  addTrack(track) {
    this.tracks.push(track);
  }
}

/** Records what the engine does to its peer connection. */
class FakePeerConnection {
  static made = [];
  constructor(config) {
    this.config = config;
    this.added = [];
    this.candidates = [];
    this.remoteDescription = null;
    this.localDescription = null;
    this.connectionState = 'new';
    this.closed = false;
    FakePeerConnection.made.push(this);
  }
  addTrack(track) {
    this.added.push(track.kind);
  }
  async createOffer() {
    return { type: 'offer', sdp: 'o' };
  }
  async createAnswer() {
    return { type: 'answer', sdp: 'a' };
  }
  async setLocalDescription(description) {
    this.localDescription = { ...description, toJSON: () => description };
  }
  async setRemoteDescription(description) {
    this.remoteDescription = description;
  }
  async addIceCandidate(candidate) {
    this.candidates.push(candidate);
  }
  close() {
    this.closed = true;
  }
  /** The browser reports a new connection state. */
  become(state) {
    this.connectionState = state;
    this.onconnectionstatechange?.();
  }
}

globalThis.RTCPeerConnection = FakePeerConnection;
globalThis.MediaStream = FakeStream;

const settle = () => new Promise((done) => setTimeout(done, 0));
const ICE = { ice_servers: [{ urls: ['turn:t:3478'], username: 'u', credential: 'c' }], ice_transport_policy: 'relay' };

function engineFor(userId, sessionId) {
  const client = new FakeClient(userId, sessionId);
  const notices = [];
  const asked = [];
  const engine = new CallEngine({
    iceServers: async () => ICE,
    notify: (text) => notices.push(text),
    getUserMedia: async (constraints) => {
      asked.push(constraints);
      return new FakeStream([new FakeTrack('audio'), ...(constraints.video ? [new FakeTrack('video')] : [])]);
    },
  });
  engine.attach(client);
  return { engine, client, notices, asked };
}

test('the caller: media first, then call_place; the offer once accepted; candidates wait for the answer; hang up', async (t) => {
  const { engine, client, asked } = engineFor(ALICE, 'a1');
  t.after(() => engine.detach());
  await engine.place('r', BOB, true);
  assert.deepEqual(asked, [{ audio: true, video: true }]);
  assert.deepEqual(client.sentOf('call_place'), [{ type: 'call_place', room_id: 'r', video: true }]);
  client.receive('call', { call: call() });
  assert.equal(engine.view.status, 'outgoing');
  assert.equal(FakePeerConnection.made.length, 0, 'no connection while it rings');

  FakePeerConnection.made = [];
  client.receive('call', { call: call({ state: 'accepted', callee_session: 'b1' }) });
  await settle();
  const [pc] = FakePeerConnection.made;
  assert.deepEqual(pc.config, { iceServers: ICE.ice_servers, iceTransportPolicy: 'relay' });
  assert.deepEqual(pc.added, ['audio', 'video']);
  assert.deepEqual(client.sentOf('signal').map((s) => s.kind), ['offer']);
  assert.equal(engine.view.status, 'connecting');

  // A candidate before the answer waits for it; signals of other calls or connections are not ours.
  await client.receive('signal', { call_id: 'c1', from_user: BOB, to_session: 'a1', kind: 'ice', payload: { candidate: 'x' } });
  await client.receive('signal', { call_id: 'other', from_user: BOB, kind: 'ice', payload: { candidate: 'y' } });
  await client.receive('signal', { call_id: 'c1', from_user: BOB, to_session: 'a2', kind: 'ice', payload: { candidate: 'z' } });
  assert.deepEqual(pc.candidates, []);
  await client.receive('signal', { call_id: 'c1', from_user: BOB, to_session: 'a1', kind: 'answer', payload: { type: 'answer', sdp: 'a' } });
  assert.deepEqual(pc.remoteDescription, { type: 'answer', sdp: 'a' });
  assert.deepEqual(pc.candidates, [{ candidate: 'x' }]);
  pc.onicecandidate({ candidate: { toJSON: () => ({ candidate: 'mine' }) } });
  pc.onicecandidate({ candidate: null });
  assert.deepEqual(client.sentOf('signal').map((s) => s.kind), ['offer', 'ice']);

  pc.become('connected');
  assert.equal(engine.view.status, 'connected');
  engine.toggleMute();
  assert.equal(engine.view.localStream.getAudioTracks()[0].enabled, false);
  engine.toggleCamera();
  assert.equal(engine.view.localStream.getVideoTracks()[0].enabled, false);
  const tracks = engine.view.localStream.getTracks();
  engine.hangUp();
  assert.deepEqual(client.sentOf('call_hangup'), [{ type: 'call_hangup', call_id: 'c1' }]);
  assert.ok(pc.closed && tracks.every((track) => track.stopped), 'connection closed, camera and microphone released');
  assert.equal(engine.view.status, 'ending');
  client.receive('call', { call: call({ state: 'ended', reason: 'completed', callee_session: 'b1' }) });
  assert.equal(engine.view.status, 'ended');
  assert.equal(engine.view.reason, 'completed');
  client.receive('error', { code: 'call_ended', message: 'ended', ref: 'c1' });
  assert.equal(engine.view.status, 'ended', 'a refusal of an ended call changes nothing on screen');
  assert.equal(engine.busy, false, 'a new call may be placed');
});

test('the callee: it rings; accepting makes the connection before call_accept, and answers the offer', async (t) => {
  const { engine, client } = engineFor(BOB, 'b1');
  t.after(() => engine.detach());
  client.receive('call', { call: call({ video: false }) });
  assert.equal(engine.view.status, 'incoming');
  assert.equal(engine.view.peer, ALICE);
  FakePeerConnection.made = [];
  await engine.accept();
  assert.equal(FakePeerConnection.made.length, 1);
  assert.deepEqual(client.sentOf('call_accept'), [{ type: 'call_accept', call_id: 'c1' }]);
  client.receive('call', { call: call({ video: false, state: 'accepted', callee_session: 'b1' }) });
  assert.equal(engine.view.status, 'connecting');
  const [pc] = FakePeerConnection.made;
  await client.receive('signal', { call_id: 'c1', from_user: ALICE, to_session: 'b1', kind: 'offer', payload: { type: 'offer', sdp: 'o' } });
  assert.deepEqual(pc.remoteDescription, { type: 'offer', sdp: 'o' });
  assert.deepEqual(client.sentOf('signal').map((s) => [s.kind, s.payload]), [['answer', { type: 'answer', sdp: 'a' }]]);
  // The socket goes: the server ends the call; here it ends at once.
  client.receive('status', { state: 'waiting' });
  assert.equal(engine.view.status, 'ended');
  assert.equal(engine.view.reason, 'lost');
  assert.ok(pc.closed);
});

test('a ring stops where another connection took the call, and a lost socket only hides it (it rings again after hello)', (t) => {
  const { engine, client } = engineFor(BOB, 'b2');
  t.after(() => engine.detach());
  client.receive('call', { call: call() });
  assert.equal(engine.view.status, 'incoming');
  client.receive('call', { call: call({ state: 'accepted', callee_session: 'b1' }) });
  assert.equal(engine.view, null);
  client.receive('call', { call: call({ id: 'c2' }) });
  assert.equal(engine.view.status, 'incoming');
  client.receive('status', { state: 'waiting' });
  assert.equal(engine.view, null);
});

test('a refused call_place is told in words and leaves nothing behind', async (t) => {
  const { engine, client, notices } = engineFor(ALICE, 'a1');
  t.after(() => engine.detach());
  await engine.place('r', BOB, false);
  client.receive('error', { code: 'in_call', message: 'in a call', ref: 'other-room' });
  assert.equal(engine.view.status, 'placing', 'another room’s refusal is not this one');
  const [stream] = [engine.view.localStream];
  client.receive('error', { code: 'in_call', message: 'in a call', ref: 'r' });
  assert.equal(engine.view, null);
  assert.ok(stream.getTracks().every((track) => track.stopped));
  assert.match(notices.at(-1), /already in a call/);
});

test('a call placed to someone unreachable ends at once, as the server says', async (t) => {
  const { engine, client } = engineFor(ALICE, 'a1');
  t.after(() => engine.detach());
  await engine.place('r', BOB, false);
  client.receive('call', { call: call({ state: 'ended', reason: 'missed' }) });
  assert.equal(engine.view.status, 'ended');
  assert.equal(engine.view.reason, 'missed');
});

test('a call whose room goes (deleted, or I was removed) ends here: no call frame will end it', async (t) => {
  const { engine, client } = engineFor(BOB, 'b1');
  t.after(() => engine.detach());
  client.receive('call', { call: call() });
  FakePeerConnection.made = [];
  await engine.accept();
  client.receive('call', { call: call({ state: 'accepted', callee_session: 'b1' }) });
  const [pc] = FakePeerConnection.made;
  client.receive('roomRemoved', { room_id: 'another room' });
  assert.equal(engine.view.status, 'connecting');
  client.receive('roomRemoved', { room_id: 'r' });
  assert.equal(engine.view.status, 'ended');
  assert.equal(engine.view.reason, 'failed');
  assert.ok(pc.closed);
});
