// End-to-end test of the web client in headless Chromium, against a real
// `chat` server it starts itself (fresh data dir, free port).
//
//   CHAT_BIN=target/debug/chat node web-client/tests/e2e.mjs
//
// Environment: CHAT_BIN (default target/debug/chat, relative to the repo),
// CHROMIUM (default /usr/bin/chromium), E2E_SCREENSHOT (default
// docs/screenshot.png). Prints one PASS/FAIL line per step and
// "N passed, N failed"; exits non-zero on any failure. Stops at the first
// failing step (the later ones build on it) and saves a screenshot of each
// person's page under web-client/test-results/ for a look.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const CHAT_BIN = resolve(REPO, process.env.CHAT_BIN ?? 'target/debug/chat');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = resolve(REPO, process.env.E2E_SCREENSHOT ?? 'docs/screenshot.png');
const RESULTS = join(HERE, '..', 'test-results');

/** Every wait in the test is bounded by this (Playwright's default timeout). */
const STEP_TIMEOUT_MS = 20_000;
/** The whole run, server start and browser included. */
const RUN_TIMEOUT_MS = 5 * 60_000;

const PASSWORD = 'correct horse battery staple';
const XSS = '<img src=x onerror=alert(1)>';

// --- the server ----------------------------------------------------------------

function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/** Every server started, so that every way out stops them. */
const servers = [];

function stopServers() {
  for (const server of servers) server.stop();
}

/**
 * Starts `chat` on a free port with a fresh data dir (and `env` on top);
 * resolves once `/` answers.
 */
async function startChat(env = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-e2e-'));
  const log = [];
  const child = spawn(CHAT_BIN, [], {
    env: { ...process.env, CHAT_ADDR: `127.0.0.1:${port}`, CHAT_DATA_DIR: dataDir, CHAT_LOG: process.env.CHAT_LOG ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (chunk) => {
    log.push(...chunk.toString().split('\n').filter(Boolean));
    log.splice(0, Math.max(0, log.length - 200));
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = `exited (${signal ?? code})`;
  });
  child.on('error', (error) => {
    exited = `could not start: ${error.message}`;
  });
  const server = {
    base: `http://127.0.0.1:${port}/`,
    port,
    log,
    stop() {
      if (exited === null && child.exitCode === null) child.kill('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  servers.push(server);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${CHAT_BIN} ${exited}:\n${log.join('\n')}`);
    try {
      if ((await fetch(server.base)).ok) return server;
    } catch {
      // Not listening yet.
    }
    await sleep(200);
  }
  server.stop();
  throw new Error(`${CHAT_BIN} did not answer on ${server.base} within 30 s:\n${log.join('\n')}`);
}

function sleep(ms) {
  return new Promise((done) => setTimeout(done, ms));
}

// --- the page, as a person uses it -----------------------------------------------------

/** A person in their own browser context (own storage, own network switch). */
async function person(browser, base, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const who = { name, context, base, dialogs: [], errors: [] };
  who.page = await openPage(who);
  return who;
}

/** Opens the chat in a new tab of the person's context, listening for dialogs and errors. */
async function openPage(who) {
  const page = await who.context.newPage();
  page.on('dialog', (dialog) => {
    who.dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (error) => who.errors.push(error.message));
  await page.goto(who.base);
  return page;
}

async function register(who, displayName) {
  const { page } = who;
  await page.click('#tab-register');
  await page.fill('#auth-form input[name=username]', who.name);
  await page.fill('#auth-form input[name=display_name]', displayName);
  await page.fill('#auth-form input[name=password]', PASSWORD);
  await page.click('#auth-submit');
  await waitOnline(page);
}

function waitOnline(page) {
  return page.waitForSelector('#connection[data-state="online"]');
}

async function joinPublicRoom(page, name) {
  await page.click('#browse-rooms');
  const row = page.locator('#public-rooms li', { hasText: `# ${name}` });
  await row.getByRole('button', { name: 'Join' }).click();
  await waitRoomTitle(page, `# ${name}`);
}

function waitRoomTitle(page, title) {
  return page.waitForFunction((wanted) => document.querySelector('#room-title')?.textContent === wanted, title);
}

async function send(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

/** The message rows on screen: body text, delivery state and seq. */
function messages(page) {
  return page.$$eval('#message-list .msg', (rows) =>
    rows.map((row) => ({
      body: row.querySelector('.body')?.textContent ?? '',
      state: row.dataset.state,
      seq: row.dataset.seq ? Number(row.dataset.seq) : null,
    })),
  );
}

/** Waits until a message with this body is shown (in `state`, if given). */
function waitForMessage(page, body, state) {
  return page.waitForFunction(
    ([text, wanted]) =>
      [...document.querySelectorAll('#message-list .msg')].some(
        (row) => row.querySelector('.body')?.textContent === text && (!wanted || row.dataset.state === wanted),
      ),
    [body, state],
  );
}

function waitConnection(page, state) {
  return page.waitForSelector(`#connection[data-state="${state}"]`);
}

/** How often the server's history (REST) holds a body, read with the page's own session. */
function storedCount(page, body) {
  return page.evaluate(async (text) => {
    const session = JSON.parse(localStorage.getItem(`chat.session:${location.origin}`));
    const room = document.querySelector('#room-list button[aria-current="true"]').dataset.roomId;
    const response = await fetch(`/v1/rooms/${room}/events?limit=200`, {
      headers: { authorization: `Bearer ${session.access_token}` },
    });
    const { events } = await response.json();
    return events.filter((event) => event.body === text).length;
  }, body);
}

/** A TCP listener on a free loopback port that counts the connections it gets. */
async function trap() {
  const port = await freePort();
  const listener = { port, connections: 0 };
  const server = createServer((socket) => {
    listener.connections += 1;
    socket.destroy();
  });
  await new Promise((ready) => server.listen(port, '127.0.0.1', ready));
  listener.close = () => server.close();
  return listener;
}

function count(list, body) {
  return list.filter((message) => message.body === body).length;
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/** Every seq on screen is shown once, in increasing order. */
function expectSeqsOrdered(list, who) {
  const seqs = list.map((m) => m.seq).filter((seq) => seq !== null);
  for (let i = 1; i < seqs.length; i += 1) {
    expect(seqs[i] > seqs[i - 1], `${who}: seqs out of order or repeated: ${seqs.join(',')}`);
  }
}

// --- the steps ------------------------------------------------------------------------------

const results = [];

async function step(name, run) {
  const started = Date.now();
  try {
    await run();
    results.push({ name, ok: true });
    console.log(`PASS ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${error.message.split('\n').slice(0, 6).join('\n  ')}`);
    throw error;
  }
}

async function main() {
  let browser;
  const people = [];
  try {
    const server = await startChat();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
    await scenario(browser, server, people);
  } catch (error) {
    await saveFailureShots(people);
    if (!results.some((r) => !r.ok)) {
      results.push({ name: 'setup', ok: false });
      console.log(`FAIL setup: ${error.message}`);
    }
    for (const { port, log } of servers) {
      console.log(`--- last lines of the log of chat on port ${port} ---\n${log.slice(-30).join('\n')}`);
    }
  } finally {
    await browser?.close();
    stopServers();
  }
}

async function scenario(browser, server, people) {
  const alice = await person(browser, server.base, 'alice');
  const bob = await person(browser, server.base, 'bob');
  people.push(alice, bob);

  await step('two users register and join a room', async () => {
    await register(alice, 'Alice');
    await register(bob, 'Bob');
    await joinPublicRoom(alice.page, 'general');
    await joinPublicRoom(bob.page, 'general');
  });

  await step('a link cannot point the logged-in page at another server', async () => {
    // Two listeners stand in for an attacker's gateway and api: the page
    // must never open a connection to either, whatever its URL says.
    const traps = [await trap(), await trap()];
    try {
      const page = await alice.context.newPage();
      const errors = [];
      page.on('pageerror', (error) => errors.push(error.message));
      const [ws, api] = traps.map((t) => t.port);
      await page.goto(`${alice.base}/?ws=ws://127.0.0.1:${ws}/v1/ws&api=http://127.0.0.1:${api}`);
      // Still logged in, and connected to its own server.
      await waitOnline(page);
      await sleep(1000);
      // The browser itself refuses other servers, whatever a script tries.
      const refused = await page.evaluate(async (port) => {
        try {
          await fetch(`http://127.0.0.1:${port}/`);
          return false;
        } catch {
          return true;
        }
      }, api);
      expect(refused, 'the page could fetch another origin (connect-src is not enforced)');
      await page.close();
      expect(errors.length === 0, `the page threw: ${errors.join('; ')}`);
      for (const t of traps) {
        expect(t.connections === 0, `the page connected to 127.0.0.1:${t.port} (${t.connections} times)`);
      }
    } finally {
      for (const t of traps) t.close();
    }
  });

  await step('they exchange messages (pending, then delivered)', async () => {
    await send(alice.page, 'Hi Bob! Are you there?');
    await waitForMessage(alice.page, 'Hi Bob! Are you there?', 'delivered');
    await waitForMessage(bob.page, 'Hi Bob! Are you there?');
    await send(bob.page, 'Hey Alice, loud and clear.');
    await waitForMessage(bob.page, 'Hey Alice, loud and clear.', 'delivered');
    await waitForMessage(alice.page, 'Hey Alice, loud and clear.');
  });

  await step('@username beside every display name, and no display name that passes for another user', async () => {
    const row = alice.page.locator('#message-list .msg', { hasText: 'Hey Alice, loud and clear.' });
    await row.locator('.meta .handle', { hasText: '@bob' }).waitFor();
    await alice.page.locator('#member-list li', { hasText: '@bob' }).waitFor();
    const mallory = await person(browser, server.base, 'mallory');
    try {
      const { page } = mallory;
      await page.click('#tab-register');
      const attempt = async (displayName, refusal) => {
        await page.fill('#auth-form input[name=username]', 'mallory');
        await page.fill('#auth-form input[name=display_name]', displayName);
        await page.fill('#auth-form input[name=password]', PASSWORD);
        await page.click('#auth-submit');
        await page.waitForFunction((text) => document.querySelector('#auth-error')?.textContent.includes(text), refusal);
      };
      // Another user's username, in any case; a right-to-left override.
      await attempt('BOB', "another user's username");
      await attempt('\u202Eecila', 'not allowed');
      expect(!(await page.locator('#chat-screen').isVisible()), 'an impersonating account was created');
    } finally {
      await mallory.context.close();
    }
  });

  await step('a private group with an invitation, a DM, unread counts and read markers', async () => {
    await alice.page.click('#new-group');
    await alice.page.fill('#group-form input[name=name]', 'Weekend plans');
    await alice.page.fill('#group-form input[name=topic]', 'Hiking on Saturday?');
    await alice.page.fill('#group-search', 'bob');
    await alice.page.locator('#group-results li', { hasText: '@bob' }).getByRole('button', { name: 'Add' }).click();
    await alice.page.click('#group-form button[type=submit]');
    await waitRoomTitle(alice.page, '◆ Weekend plans');
    await send(alice.page, 'Who is in for Saturday?');
    // Bob, reading #general, is told of the group and of the unread message.
    const group = bob.page.locator('#room-list button', { hasText: 'Weekend plans' });
    await group.locator('.badge').waitFor();
    await group.click();
    await waitForMessage(bob.page, 'Who is in for Saturday?');
    await group.locator('.badge').waitFor({ state: 'detached' });
    // Bob answers in a DM, found by name.
    await bob.page.click('#new-dm');
    await bob.page.fill('#people-search', 'alice');
    await bob.page.locator('#people-results li', { hasText: '@alice' }).getByRole('button', { name: 'Message' }).click();
    await waitRoomTitle(bob.page, 'Alice');
    await send(bob.page, 'Count me in!');
    await waitForMessage(bob.page, 'Count me in!', 'delivered');
    await alice.page.locator('#dm-list button', { hasText: 'Bob' }).locator('.badge').waitFor();
    // Back to #general for the rest.
    for (const who of [alice, bob]) {
      await who.page.locator('#room-list button', { hasText: 'general' }).click();
      await waitRoomTitle(who.page, '# general');
    }
  });

  await step("after a reload, the badges are the api's unread counts: only others' messages count", async () => {
    await alice.page.reload();
    await waitOnline(alice.page);
    const login = await fetch(new URL('/v1/auth/login', server.base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: PASSWORD }),
    });
    const loginText = await login.text();
    expect(login.ok, `login answered ${login.status}: ${loginText}`);
    const { access_token: token } = JSON.parse(loginText);
    const rooms = await (await fetch(new URL('/v1/rooms', server.base), { headers: { authorization: `Bearer ${token}` } })).json();
    const unread = (name) => rooms.find((r) => r.name === name || (r.kind === 'direct' && name === 'Bob'))?.unread;
    // Alice made the group and wrote in it: nothing there is unread. Bob's
    // answer in the DM is.
    expect(unread('Weekend plans') === 0, `api: the group has ${unread('Weekend plans')} unread for its only writer`);
    expect(unread('Bob') === 1, `api: the DM has ${unread('Bob')} unread`);
    for (const [list, name] of [['#room-list', 'Weekend plans'], ['#dm-list', 'Bob']]) {
      const badge = alice.page.locator(`${list} button`, { hasText: name }).locator('.badge');
      const shown = (await badge.count()) ? Number(await badge.textContent()) : 0;
      expect(shown === unread(name), `${name}: the badge shows ${shown}, the api says ${unread(name)}`);
    }
  });

  const burst = Array.from({ length: 20 }, (_, i) => `burst ${String(i + 1).padStart(2, '0')}`);
  await step('offline while 20 messages are sent: all 20 arrive in order, once, on return', async () => {
    await bob.context.setOffline(true);
    await waitConnection(bob.page, 'offline');
    for (const body of burst) await send(alice.page, body);
    await waitForMessage(alice.page, burst.at(-1), 'delivered');
    const whileAway = await messages(bob.page);
    expect(whileAway.every((m) => !m.body.startsWith('burst')), 'bob got messages while offline');
    await bob.context.setOffline(false);
    await waitConnection(bob.page, 'online');
    await waitForMessage(bob.page, burst.at(-1));
    await sleep(500); // anything duplicated would show up by now
    const shown = await messages(bob.page);
    const bursts = shown.filter((m) => m.body.startsWith('burst')).map((m) => m.body);
    expect(JSON.stringify(bursts) === JSON.stringify(burst), `bob shows ${JSON.stringify(bursts)}`);
    expectSeqsOrdered(shown, 'bob');
  });

  const typedOffline = 'typed while offline, sent once';
  await step('a message typed offline stays pending, then is delivered once', async () => {
    await bob.context.setOffline(true);
    await waitConnection(bob.page, 'offline');
    await send(bob.page, typedOffline);
    await waitForMessage(bob.page, typedOffline, 'pending');
    await sleep(500);
    expect(count(await messages(alice.page), typedOffline) === 0, 'alice got it while bob was offline');
    await bob.context.setOffline(false);
    await waitForMessage(bob.page, typedOffline, 'delivered');
    await waitForMessage(alice.page, typedOffline);
    await sleep(500);
    expect(count(await messages(bob.page), typedOffline) === 1, 'bob shows it more than once');
    expect(count(await messages(alice.page), typedOffline) === 1, 'alice shows it more than once');
    expect((await storedCount(alice.page, typedOffline)) === 1, 'the server stored it more than once');
  });

  const closedTab = 'written in a tab closed before it could send';
  await step('a pending send survives the tab closing and goes out once from the next one', async () => {
    await bob.context.setOffline(true);
    await waitConnection(bob.page, 'offline');
    await send(bob.page, closedTab);
    await waitForMessage(bob.page, closedTab, 'pending');
    await bob.page.close();
    await bob.context.setOffline(false);
    bob.page = await openPage(bob);
    await waitForMessage(bob.page, closedTab, 'delivered');
    await waitForMessage(alice.page, closedTab);
    await sleep(500);
    expect(count(await messages(bob.page), closedTab) === 1, 'bob shows it more than once');
    expect(count(await messages(alice.page), closedTab) === 1, 'alice shows it more than once');
    expect((await storedCount(alice.page, closedTab)) === 1, 'the server stored it more than once');
  });

  await step('a reload keeps the session and the history', async () => {
    const before = (await messages(alice.page)).map((m) => m.body);
    await alice.page.reload();
    await waitOnline(alice.page);
    expect(await alice.page.isHidden('#auth-screen'), 'alice was asked to log in again');
    await waitForMessage(alice.page, closedTab);
    const after = await messages(alice.page);
    expect(
      JSON.stringify(after.map((m) => m.body)) === JSON.stringify(before),
      `history after reload differs:\n${JSON.stringify(before)}\n${JSON.stringify(after.map((m) => m.body))}`,
    );
    expectSeqsOrdered(after, 'alice');
  });

  await step('HTML in a message is shown as text and runs nothing', async () => {
    await send(alice.page, XSS);
    await waitForMessage(alice.page, XSS, 'delivered');
    await waitForMessage(bob.page, XSS);
    await sleep(1000); // time for an onerror handler to fire, were the markup live
    for (const who of [alice, bob]) {
      expect((await who.page.locator('#message-list img').count()) === 0, `${who.name}'s page made an <img>`);
      expect(who.dialogs.length === 0, `${who.name} saw a dialog: ${who.dialogs.join(', ')}`);
    }
  });

  await step(`screenshot of the chat view saved to ${SCREENSHOT}`, async () => {
    await send(bob.page, 'Nothing lost while I was away. Nice!');
    await waitForMessage(alice.page, 'Nothing lost while I was away. Nice!');
    // Bob starts a reply, so the picture shows the typing indicator too.
    await bob.page.fill('#composer-input', 'Sending a few more');
    await bob.page.dispatchEvent('#composer-input', 'input');
    await alice.page.waitForFunction(() => document.querySelector('#typing').textContent.includes('Bob is typing'));
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await alice.page.screenshot({ path: SCREENSHOT });
  });

  await step('two tabs of one login outlive many short-lived tokens, refreshing one at a time', async () => {
    // A server whose access tokens live 12 s: the pages refresh about every 8 s.
    const shortLived = await startChat({ CHAT_ACCESS_TOKEN_TTL: '12s' });
    const carol = await person(browser, shortLived.base, 'carol');
    people.push(carol);
    const refreshes = [];
    carol.context.on('response', (response) => {
      if (response.url().endsWith('/v1/auth/refresh')) refreshes.push(response.status());
    });
    let socketsClosed = 0;
    carol.context.on('page', (page) => page.on('websocket', (ws) => ws.on('close', () => (socketsClosed += 1))));
    carol.page.on('websocket', (ws) => ws.on('close', () => (socketsClosed += 1)));
    await register(carol, 'Carol');
    await joinPublicRoom(carol.page, 'general');
    const secondTab = await openPage(carol);
    await waitOnline(secondTab);
    await sleep(30_000); // time passing is the point: about four token lifetimes
    expect(refreshes.length >= 2, `only ${refreshes.length} refreshes in 30 s`);
    expect(refreshes.every((status) => status === 200), `refresh answers: ${refreshes.join(', ')}`);
    expect(refreshes.length <= 6, `${refreshes.length} refreshes in 30 s: the tabs did not take turns`);
    expect(socketsClosed === 0, `${socketsClosed} socket(s) closed: the session was not renewed on the socket`);
    await send(secondTab, 'still logged in');
    await waitForMessage(secondTab, 'still logged in', 'delivered');
    await waitForMessage(carol.page, 'still logged in');
  });

  await step('a session ended from another device sends the page back to the login screen', async () => {
    const dave = await person(browser, server.base, 'dave');
    people.push(dave);
    await register(dave, 'Dave');
    // Dave logs in on a second device and ends the browser's session there.
    const post = (path, body, token) =>
      fetch(new URL(path, server.base), {
        method: body === undefined ? (token ? 'GET' : 'POST') : 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const loggedIn = await post('/v1/auth/login', { username: 'dave', password: PASSWORD });
    expect(loggedIn.ok, `the second login answered ${loggedIn.status}: ${await loggedIn.clone().text()}`);
    const login = await loggedIn.json();
    const listed = await post('/v1/auth/sessions', undefined, login.access_token);
    expect(listed.ok, `the session list answered ${listed.status}`);
    const sessions = await listed.json();
    const browserSession = sessions.find((s) => !s.current);
    const ended = await fetch(new URL(`/v1/auth/sessions/${browserSession.id}`, server.base), {
      method: 'DELETE',
      headers: { authorization: `Bearer ${login.access_token}` },
    });
    expect(ended.status === 204, `ending the session answered ${ended.status}`);
    // The gateway closes the socket (4002); the page finds its login gone.
    await dave.page.waitForSelector('#auth-screen', { state: 'visible' });
  });

  await step('no script errors on any page', async () => {
    for (const who of people) {
      expect(who.errors.length === 0, `${who.name}'s page threw: ${who.errors.join('; ')}`);
    }
  });
}

async function saveFailureShots(people) {
  mkdirSync(RESULTS, { recursive: true });
  for (const who of people) {
    await who.page?.screenshot({ path: join(RESULTS, `${who.name}.png`) }).catch(() => {});
  }
  if (people.length) console.log(`screenshots of the pages: ${RESULTS}`);
}

const watchdog = setTimeout(() => {
  console.log(`FAIL the run took longer than ${RUN_TIMEOUT_MS / 1000} s`);
  stopServers();
  process.exit(1);
}, RUN_TIMEOUT_MS);

await main();
clearTimeout(watchdog);
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
