// Unit tests of the call engine's pure half (calls.js): what a `call`
// frame means for this connection, the RTCConfiguration from the api's ICE
// servers, and the words for refusals. No browser, no WebRTC.
// Run: node --test web-client/tests/calls.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { callErrorText, callPhase, rtcConfiguration } from '../calls.js';
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
