// End-to-end test of one-to-one calls in headless Chromium (fake camera and
// microphone), against a real `chat` server it starts itself, whose calls
// ring for 3 s: a video call between two people in a DM connects (media
// flows both ways), mutes, turns the camera off and hangs up, and both
// timelines show it with its length; a declined call; a call nobody
// answers (missed); a call to someone with no connection (missed at once);
// a reload during a call (the other side sees it end, nothing is stuck); a
// call refused (a block) told as a notice;
// then, on a second server whose ICE policy is `relay`, a call whose media
// goes through a local coturn.
//
//   CHAT_BIN=target/debug/chat node web-client/tests/e2e-calls.mjs
//
// The pages' RTCPeerConnections are watched from outside: an init script
// of the test records each one made (`window.__pcs`), so the page itself
// carries nothing for tests. The server, the people and the step runner
// are the kit's (`e2e/kit.mjs`).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  person,
  openPage,
  register,
  joinPublicRoom,
  send,
  waitForMessage,
  waitOnline,
  waitRoomTitle,
  startChat,
  freePort,
  sleep,
  apiAs,
  expect,
  step,
  run,
} from './e2e/kit.mjs';

const RING_TIMEOUT = '3s';
const TURNSERVER = process.env.TURNSERVER ?? '/usr/bin/turnserver';

/** Records every RTCPeerConnection the page makes, newest last. */
function watchPeerConnections() {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__pcs.push(this);
    }
  };
}

/** A person whose pages record their peer connections, registered and online. */
async function caller(browser, server, people, name, displayName) {
  const who = await person(browser, server.base, name);
  people.push(who);
  await who.context.addInitScript(watchPeerConnections);
  await who.page.reload();
  await register(who, displayName);
  return who;
}

/** Two people who share a room open a DM: `a` writes first, `b` opens it from the list. */
async function openDm(a, b, bName, aName) {
  await joinPublicRoom(a.page, 'general');
  await joinPublicRoom(b.page, 'general');
  await a.page.click('#new-dm');
  await a.page.fill('#people-search', b.name);
  await a.page.locator('#people-results li', { hasText: `@${b.name}` }).getByRole('button', { name: 'Message' }).click();
  await waitRoomTitle(a.page, bName);
  await send(a.page, `hi ${b.name}`);
  await waitForMessage(a.page, `hi ${b.name}`, 'delivered');
  // They met after connecting: each is shown online to the other all the
  // same (the gateway rings only a callee its presence knows of).
  await a.page.locator('#dm-list button', { hasText: bName }).locator('.presence.online').waitFor();
  await openDmWith(b.page, aName);
}

async function openDmWith(page, name) {
  await page.locator('#dm-list button', { hasText: name }).click();
  await waitRoomTitle(page, name);
  await page.locator('#call-video:not([hidden])').waitFor();
}

/** Waits until the call panel's state line matches. */
function waitStatus(page, pattern) {
  return page.waitForFunction(
    (source) => {
      const panel = document.querySelector('#call-panel');
      return !panel.hidden && new RegExp(source).test(document.querySelector('#call-status').textContent);
    },
    pattern.source,
  );
}

function waitPanelHidden(page) {
  return page.locator('#call-panel').waitFor({ state: 'hidden' });
}

/** Waits until the newest peer connection of the page is connected. */
function waitConnected(page) {
  return page.waitForFunction(() => window.__pcs?.at(-1)?.connectionState === 'connected');
}

/** Bytes received over the newest peer connection, every inbound RTP stream together. */
function bytesReceived(page) {
  return page.evaluate(async () => {
    const stats = await window.__pcs.at(-1).getStats();
    let bytes = 0;
    stats.forEach((report) => {
      if (report.type === 'inbound-rtp') bytes += report.bytesReceived ?? 0;
    });
    return bytes;
  });
}

/** Media flows in: bytes received grow on both pages over ~1.5 s. */
async function expectMediaFlows(pages) {
  const before = await Promise.all(pages.map(bytesReceived));
  await sleep(1500);
  const after = await Promise.all(pages.map(bytesReceived));
  pages.forEach((_page, i) => expect(after[i] > before[i], `page ${i}: bytes received grow (${before[i]} → ${after[i]})`));
}

/** The local tracks the newest peer connection sends: `{audio, video}` → enabled. */
function sentTracks(page) {
  return page.evaluate(() =>
    Object.fromEntries(window.__pcs.at(-1).getSenders().filter((s) => s.track).map((s) => [s.track.kind, s.track.enabled])),
  );
}

/** The candidate type (`host`, `srflx`, `relay`) of the local side of the selected pair. */
function selectedLocalCandidateType(page) {
  return page.evaluate(async () => {
    const stats = await window.__pcs.at(-1).getStats();
    let pairId = null;
    stats.forEach((report) => {
      if (report.type === 'transport' && report.selectedCandidatePairId) pairId = report.selectedCandidatePairId;
    });
    const pair = stats.get(pairId);
    return pair ? stats.get(pair.localCandidateId)?.candidateType : null;
  });
}

/** The call lines of the open timeline, oldest first. */
function callLines(page) {
  return page.$$eval('#message-list .call-notice', (rows) => rows.map((row) => row.textContent));
}

function waitCallLine(page, pattern) {
  return page.waitForFunction(
    (source) => [...document.querySelectorAll('#message-list .call-notice')].some((row) => new RegExp(source).test(row.textContent)),
    pattern.source,
  );
}

/** A places a call from the DM's header, B sees it ring. */
async function ring(a, b, { video, aName }) {
  await a.page.click(video ? '#call-video' : '#call-voice');
  await b.page.locator('#call-panel[data-status="incoming"]').waitFor();
  const title = await b.page.textContent('#call-title');
  expect(title === `${aName} is calling…`, `the callee sees who calls: ${title}`);
  const kind = await b.page.textContent('#call-kind');
  expect(kind === (video ? 'Video call' : 'Voice call'), `and what kind of call: ${kind}`);
  await waitStatus(a.page, /^Ringing…$/);
}

/** B accepts A's ringing call; both are connected and media flows. */
async function connect(a, b) {
  await b.page.click('#call-accept');
  await Promise.all([waitConnected(a.page), waitConnected(b.page)]);
  await Promise.all([waitStatus(a.page, /^Connected \d\d:\d\d$/), waitStatus(b.page, /^Connected \d\d:\d\d$/)]);
}

async function scenario(browser, server, people) {
  const alice = await caller(browser, server, people, 'alice', 'Alice');
  const bob = await caller(browser, server, people, 'bob', 'Bob');

  await step('two people share a DM with call buttons in its header', async () => {
    await openDm(alice, bob, 'Bob', 'Alice');
    await alice.page.locator('#call-voice:not([hidden])').waitFor();
    // A public room has none.
    await alice.page.locator('.sidebar .room-list button', { hasText: 'general' }).first().click();
    await waitRoomTitle(alice.page, '# general');
    expect(await alice.page.locator('#call-video').isHidden(), 'no call button in a public room');
    await openDmWith(alice.page, 'Bob');
  });

  await step('a video call rings, is accepted and connects, with media both ways', async () => {
    await ring(alice, bob, { video: true, aName: 'Alice' });
    expect((await alice.page.textContent('#call-title')) === 'Calling Bob…', 'the caller sees whom it calls');
    await connect(alice, bob);
    await expectMediaFlows([alice.page, bob.page]);
  });

  await step('mute and camera off turn the local tracks off and on again', async () => {
    expect(JSON.stringify(await sentTracks(alice.page)) === '{"audio":true,"video":true}', 'both tracks sent');
    await alice.page.click('#call-mute');
    await alice.page.locator('#call-mute[aria-pressed="true"]', { hasText: 'Unmute' }).waitFor();
    expect((await sentTracks(alice.page)).audio === false, 'muted: the audio track is off');
    await alice.page.click('#call-camera');
    await alice.page.locator('#call-camera[aria-pressed="true"]', { hasText: 'Camera on' }).waitFor();
    expect((await sentTracks(alice.page)).video === false, 'camera off: the video track is off');
    await alice.page.click('#call-mute');
    await alice.page.click('#call-camera');
    expect(JSON.stringify(await sentTracks(alice.page)) === '{"audio":true,"video":true}', 'both back on');
  });

  await step('the caller hangs up: both see it end, and both timelines show the call with its length', async () => {
    await alice.page.click('#call-hangup');
    await Promise.all([waitStatus(alice.page, /^Call ended: hung up$/), waitStatus(bob.page, /^Call ended: hung up$/)]);
    expect(await alice.page.evaluate(() => window.__pcs.at(-1).connectionState === 'closed'), 'the caller’s connection is closed');
    await Promise.all([waitCallLine(alice.page, /^Video call, \d+ s$/), waitCallLine(bob.page, /^Video call, \d+ s$/)]);
    expect((await callLines(bob.page)).length === 1, 'one line per call (its start folded in)');
    await alice.page.click('#call-close');
    await waitPanelHidden(alice.page);
  });

  await step('a declined call: the caller is told, the timelines say so', async () => {
    await ring(alice, bob, { video: false, aName: 'Alice' });
    await bob.page.click('#call-decline');
    await Promise.all([waitStatus(alice.page, /^Call ended: declined$/), waitStatus(bob.page, /^Call ended: declined$/)]);
    await Promise.all([waitCallLine(alice.page, /^Declined call$/), waitCallLine(bob.page, /^Declined call$/)]);
  });

  await step('a call nobody answers ends as missed on both sides', async () => {
    await ring(alice, bob, { video: false, aName: 'Alice' });
    await Promise.all([waitStatus(alice.page, /^Call ended: missed$/), waitStatus(bob.page, /^Call ended: missed$/)]);
    await waitCallLine(bob.page, /^Missed call$/);
    await waitCallLine(alice.page, /^No answer$/);
  });

  await step('a call to someone with no connection is missed at once', async () => {
    await bob.page.close();
    // Offline for good (presence waits 2 s for a reconnect).
    await alice.page.locator('#dm-list button', { hasText: 'Bob' }).locator('.presence:not(.online)').waitFor();
    await alice.page.click('#call-voice');
    await waitStatus(alice.page, /^Call ended: missed$/);
    bob.page = await openPage(bob);
    await waitOnline(bob.page);
    await openDmWith(bob.page, 'Alice');
    await waitCallLine(bob.page, /^Missed call$/);
  });

  await step('a reload during a call ends it for the other side, and nothing is left stuck', async () => {
    await ring(alice, bob, { video: false, aName: 'Alice' });
    await connect(alice, bob);
    await bob.page.reload();
    // Hung up as the page went (best effort), or failed when its socket closed.
    await waitStatus(alice.page, /^Call ended: (failed|hung up)$/);
    await waitOnline(bob.page);
    await bob.page.locator('#call-video:not([hidden]):not([disabled])').waitFor();
    expect(await bob.page.locator('#call-panel').isHidden(), 'no call panel after the reload');
    await alice.page.click('#call-close');
    await alice.page.locator('#call-video:not([disabled])').waitFor();
  });

  await step('a refused call is told as a notice: one of the two blocks the other', async () => {
    const aliceId = await alice.page.evaluate(() => JSON.parse(localStorage.getItem(`chat.session:${location.origin}`)).user.id);
    expect((await apiAs(bob.page, 'PUT', `/v1/users/me/blocks/${aliceId}`)).status < 300, 'bob blocks alice');
    await alice.page.click('#call-voice');
    await alice.page.locator('#toasts .toast', { hasText: 'blocks' }).waitFor();
    await waitPanelHidden(alice.page);
    expect(await bob.page.locator('#call-panel').isHidden(), 'nothing rang');
    expect((await apiAs(bob.page, 'DELETE', `/v1/users/me/blocks/${aliceId}`)).status < 300, 'and unblocks her');
    expect(alice.errors.length === 0 && bob.errors.length === 0, `no page errors: ${[...alice.errors, ...bob.errors].join('; ')}`);
  });
}

/** Starts coturn on loopback with a shared secret; resolves once it listens. */
async function startTurn() {
  const port = await freePort();
  const minPort = 40000 + Math.floor(Math.random() * 20000);
  const secret = randomBytes(16).toString('hex');
  const child = spawn(
    TURNSERVER,
    [
      '-n',
      '--listening-ip=127.0.0.1',
      '--relay-ip=127.0.0.1',
      `--listening-port=${port}`,
      `--min-port=${minPort}`,
      `--max-port=${minPort + 100}`,
      '--use-auth-secret',
      `--static-auth-secret=${secret}`,
      '--realm=chat.test',
      '--no-tls',
      '--no-dtls',
      '--no-cli',
      // Peers on loopback are refused by default; this test's are all there.
      '--allow-loopback-peers',
      '--fingerprint',
      '--log-file=stdout',
      '--simple-log',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log = [];
  const keep = (chunk) => log.push(...chunk.toString().split('\n').filter(Boolean).slice(-50));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const stop = () => child.exitCode === null && child.kill('SIGTERM');
  process.on('exit', stop);
  const deadline = Date.now() + 10_000;
  while (!log.some((line) => /listener opened on|Total General servers/i.test(line))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      stop();
      throw new Error(`turnserver did not start:\n${log.slice(-20).join('\n')}`);
    }
    await sleep(100);
  }
  return { port, secret, stop, log };
}

async function relayOnly(browser, _server, people) {
  const turn = await startTurn();
  try {
    const server = await startChat({
      CHAT_TURN_URLS: `turn:127.0.0.1:${turn.port}?transport=udp`,
      CHAT_TURN_SECRET: turn.secret,
      CHAT_ICE_TRANSPORT_POLICY: 'relay',
    });
    const carol = await caller(browser, server, people, 'carol', 'Carol');
    const dave = await caller(browser, server, people, 'dave', 'Dave');

    await step('relay only: a call through coturn connects over relayed candidates', async () => {
      await openDm(carol, dave, 'Dave', 'Carol');
      const ice = await carol.page.evaluate(async () => {
        const session = JSON.parse(localStorage.getItem(`chat.session:${location.origin}`));
        const response = await fetch('/v1/calls/ice-servers', { headers: { authorization: `Bearer ${session.access_token}` } });
        return response.json();
      });
      expect(ice.ice_transport_policy === 'relay' && ice.ice_servers.some((s) => s.username && s.credential), `TURN with credentials: ${JSON.stringify(ice)}`);
      await ring(carol, dave, { video: true, aName: 'Carol' });
      await connect(carol, dave);
      await expectMediaFlows([carol.page, dave.page]);
      for (const page of [carol.page, dave.page]) {
        const type = await selectedLocalCandidateType(page);
        expect(type === 'relay', `the selected pair's local candidate is relayed: ${type}`);
      }
      await dave.page.click('#call-hangup');
      await Promise.all([waitStatus(carol.page, /^Call ended: hung up$/), waitStatus(dave.page, /^Call ended: hung up$/)]);
    });
  } catch (error) {
    console.log(`--- last lines of coturn's log ---\n${turn.log.slice(-20).join('\n')}`);
    throw error;
  } finally {
    turn.stop();
  }
}

await run(
  async (browser, server, people) => {
    await scenario(browser, server, people);
    await relayOnly(browser, server, people);
  },
  { CHAT_CALL_RING_TIMEOUT: RING_TIMEOUT },
  {
    browserArgs: [
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ],
  },
);
