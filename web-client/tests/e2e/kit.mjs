// The kit every end-to-end suite of the web client shares: a real `chat`
// server on a free port with a fresh data dir, people in their own browser
// contexts of one headless Chromium, the waits a person's eye would make,
// and the step runner that prints one PASS/FAIL line per step.
//
// A suite is a file `web-client/tests/e2e*.mjs` that ends with
// `await run(scenario, env)` (or `run(scenario, env, { browserArgs })` for
// Chromium flags of its own); `scripts/e2e` runs every one.
//
// Environment: CHAT_BIN (default target/debug/chat, relative to the repo),
// CHROMIUM (default /usr/bin/chromium), E2E_SCREENSHOT (default
// docs/screenshot.png). A suite stops at its first failing step (the later
// ones build on it) and saves a screenshot of each person's page under
// web-client/test-results/ for a look.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '..', '..', '..');
export const CHAT_BIN = resolve(REPO, process.env.CHAT_BIN ?? 'target/debug/chat');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT = resolve(REPO, process.env.E2E_SCREENSHOT ?? 'docs/screenshot.png');
export const RESULTS = join(HERE, '..', '..', 'test-results');

/** Every wait in the test is bounded by this (Playwright's default timeout). */
export const STEP_TIMEOUT_MS = 20_000;
/** The whole run, server start and browser included. */
export const RUN_TIMEOUT_MS = 5 * 60_000;

export const PASSWORD = 'correct horse battery staple';
export const XSS = '<img src=x onerror=alert(1)>';

// --- the server ----------------------------------------------------------------

export function freePort() {
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

export function stopServers() {
  for (const server of servers) server.stop();
}

/**
 * Starts `chat` on a free port with a fresh data dir (and `env` on top);
 * resolves once `/` answers.
 */
export async function startChat(env = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-e2e-'));
  const log = [];
  const child = spawn(CHAT_BIN, [], {
    // The page under test is this checkout's (not the one a binary was built beside).
    env: { CHAT_WEB_DIR: join(REPO, 'web-client'), ...process.env, CHAT_ADDR: `127.0.0.1:${port}`, CHAT_DATA_DIR: dataDir, CHAT_LOG: process.env.CHAT_LOG ?? 'warn', ...env },
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
    // For commands run against the same store (`chat admin grant`).
    dataDir,
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

export function sleep(ms) {
  return new Promise((done) => setTimeout(done, ms));
}

// --- the page, as a person uses it -----------------------------------------------------

/** A person in their own browser context (own storage, own network switch). */
export async function person(browser, base, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const who = { name, context, base, dialogs: [], errors: [] };
  who.page = await openPage(who);
  return who;
}

/** Opens the chat in a new tab of the person's context, listening for dialogs and errors. */
export async function openPage(who) {
  const page = await who.context.newPage();
  page.on('dialog', (dialog) => {
    who.dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (error) => who.errors.push(error.message));
  await page.goto(who.base);
  return page;
}

export async function register(who, displayName) {
  const { page } = who;
  await page.click('#tab-register');
  await page.fill('#auth-form input[name=username]', who.name);
  await page.fill('#auth-form input[name=display_name]', displayName);
  await page.fill('#auth-form input[name=password]', PASSWORD);
  await page.click('#auth-submit');
  await waitOnline(page);
}

export function waitOnline(page) {
  return page.waitForSelector('#connection[data-state="online"]');
}

export async function joinPublicRoom(page, name) {
  await page.click('#browse-rooms');
  const row = page.locator('#public-rooms li', { hasText: `# ${name}` });
  await row.getByRole('button', { name: 'Join' }).click();
  await waitRoomTitle(page, `# ${name}`);
}

export function waitRoomTitle(page, title) {
  return page.waitForFunction((wanted) => document.querySelector('#room-title')?.textContent === wanted, title);
}

export async function send(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

/** The message rows on screen: body text, delivery state and seq. */
export function messages(page) {
  return page.$$eval('#message-list .msg', (rows) =>
    rows.map((row) => ({
      body: row.querySelector('.body')?.textContent ?? '',
      state: row.dataset.state,
      seq: row.dataset.seq ? Number(row.dataset.seq) : null,
    })),
  );
}

/** Waits until a message with this body is shown (in `state`, if given). */
export function waitForMessage(page, body, state) {
  return page.waitForFunction(
    ([text, wanted]) =>
      [...document.querySelectorAll('#message-list .msg')].some(
        (row) => row.querySelector('.body')?.textContent === text && (!wanted || row.dataset.state === wanted),
      ),
    [body, state],
  );
}

export function waitConnection(page, state) {
  return page.waitForSelector(`#connection[data-state="${state}"]`);
}

/** How often the server's history (REST) holds a body, read with the page's own session. */
export function storedCount(page, body) {
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
export async function trap() {
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

export function count(list, body) {
  return list.filter((message) => message.body === body).length;
}

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/** Every seq on screen is shown once, in increasing order. */
export function expectSeqsOrdered(list, who) {
  const seqs = list.map((m) => m.seq).filter((seq) => seq !== null);
  for (let i = 1; i < seqs.length; i += 1) {
    expect(seqs[i] > seqs[i - 1], `${who}: seqs out of order or repeated: ${seqs.join(',')}`);
  }
}


// --- messages and what people do to them ------------------------------------------------

/** Opens a room (or DM) of the sidebar by its name. */
export async function openRoomNamed(page, name, title = name) {
  await page.locator('.sidebar .room-list button', { hasText: name }).first().click();
  await waitRoomTitle(page, title);
}

/** Waits until a delivered message with this body text is shown; resolves to its event id. */
export async function messageId(page, body) {
  const handle = await page.waitForFunction(
    (text) =>
      [...document.querySelectorAll('#message-list .msg')].find((row) => row.dataset.id && row.querySelector('.body')?.textContent === text)
        ?.dataset.id,
    body,
  );
  return handle.jsonValue();
}

/** The row of a message, by event id. */
export function row(page, id) {
  return page.locator(`#message-list .msg[data-id="${id}"]`);
}

/** Hovers a message and clicks one of its actions (reply, react, edit, delete, pin, unpin). */
export async function act(page, id, action) {
  const message = row(page, id);
  // Its top left corner: never under the pins panel.
  await message.hover({ position: { x: 12, y: 8 } });
  await message.locator(`.msg-actions [data-action="${action}"]`).click();
}

/** Waits until a message's body reads `text` (and, if given, whether it shows "(edited)"). */
export function waitBody(page, id, text, edited) {
  return page.waitForFunction(
    ([id, text, edited]) => {
      const message = document.querySelector(`#message-list .msg[data-id="${id}"]`);
      const body = message?.querySelector('.body');
      return body?.textContent === text && (edited === undefined || Boolean(message.querySelector('.edited')) === edited);
    },
    [id, text, edited],
  );
}

/** Waits until a message shows as a tombstone. */
export function waitTombstone(page, id) {
  return page.waitForFunction((id) => {
    const message = document.querySelector(`#message-list .msg[data-id="${id}"]`);
    return message?.classList.contains('deleted') && message.querySelector('.body.tombstone')?.textContent === 'message deleted';
  }, id);
}

/** Waits until a message's chip for `emoji` shows `count` (0: no chip), highlighted as mine or not. */
export function waitReaction(page, id, emoji, count, mine) {
  return page.waitForFunction(
    ([id, emoji, count, mine]) => {
      const chip = [...document.querySelectorAll(`#message-list .msg[data-id="${id}"] .reaction`)].find((c) => c.dataset.emoji === emoji);
      if (count === 0) return !chip;
      return chip?.querySelector('.count').textContent === String(count) && chip.classList.contains('mine') === mine && chip.getAttribute('aria-pressed') === String(mine);
    },
    [id, emoji, count, mine],
  );
}

/** The pins panel's entries: `[{id, text}]`, waited for until `wanted` matches. */
export function waitPins(page, wanted) {
  return page.waitForFunction(
    (wanted) => {
      const panel = document.querySelector('#pins-panel');
      if (!panel || panel.hidden) return false;
      const shown = [...panel.querySelectorAll('#pin-list .pin')].map((pin) => `${pin.dataset.id}|${pin.querySelector('.pin-body').textContent}`);
      return JSON.stringify(shown) === JSON.stringify(wanted.map((p) => `${p.id}|${p.text}`));
    },
    wanted,
  );
}

/** A REST call with the page's own session. */
export function apiAs(page, method, path, body) {
  return page.evaluate(
    async ([method, path, body]) => {
      const session = JSON.parse(localStorage.getItem(`chat.session:${location.origin}`));
      const response = await fetch(path, {
        method,
        headers: { authorization: `Bearer ${session.access_token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: response.status, json: await response.json().catch(() => null) };
    },
    [method, path, body],
  );
}

/** The open room's id, from the sidebar. */
export function openRoomId(page) {
  return page.$eval('.sidebar button[aria-current="true"]', (button) => button.dataset.roomId);
}

// --- files ------------------------------------------------------------------------------------

/**
 * A PNG of `width` × `height`, drawn on a canvas of the page (never added
 * to it); `noise` fills it with random pixels, which do not compress (a
 * file large for its size in pixels).
 */
export async function pngOf(page, width, height, { noise = false } = {}) {
  const base64 = await page.evaluate(
    ([width, height, noise]) => {
      const canvas = document.createElement('canvas');
      canvas.width = width;
      canvas.height = height;
      const context = canvas.getContext('2d');
      context.fillStyle = '#3b5bdb';
      context.fillRect(0, 0, width, height);
      context.fillStyle = '#fab005';
      context.fillRect(width / 4, height / 4, width / 2, height / 2);
      if (noise) {
        const pixels = context.getImageData(0, 0, width, height);
        crypto.getRandomValues(pixels.data.subarray(0, Math.min(pixels.data.length, 65536)));
        for (let i = 65536; i < pixels.data.length; i += 65536) crypto.getRandomValues(pixels.data.subarray(i, i + 65536));
        for (let i = 3; i < pixels.data.length; i += 4) pixels.data[i] = 255;
        context.putImageData(pixels, 0, 0);
      }
      return canvas.toDataURL('image/png').split(',')[1];
    },
    [width, height, noise],
  );
  return Buffer.from(base64, 'base64');
}

/** Fires a synthetic `paste` or `drop` carrying `files` at an element, as a person's paste or drop would. */
export function dispatchFiles(page, selector, type, files) {
  return page.evaluate(
    ([selector, type, files]) => {
      const transfer = new DataTransfer();
      for (const file of files) {
        const bytes = Uint8Array.from(atob(file.base64), (c) => c.charCodeAt(0));
        transfer.items.add(new File([bytes], file.name, { type: file.type }));
      }
      const init = { bubbles: true, cancelable: true };
      const event = type === 'paste' ? new ClipboardEvent('paste', { ...init, clipboardData: transfer }) : new DragEvent(type, { ...init, dataTransfer: transfer });
      document.querySelector(selector).dispatchEvent(event);
    },
    [selector, type, files.map((file) => ({ name: file.name, type: file.type, base64: file.buffer.toString('base64') }))],
  );
}

/** The row of the message with this text. */
export function messageRow(page, body) {
  return page.locator('#message-list .msg').filter({ has: page.locator('.body', { hasText: body }) });
}

/** Waits until every chip of the composer is in `state` (and there are `count`). */
export function waitChips(page, count, state) {
  return page.waitForFunction(
    ([count, state]) => {
      const chips = [...document.querySelectorAll('#upload-list .upload-chip')];
      return chips.length === count && chips.every((chip) => chip.dataset.state === state);
    },
    [count, state],
  );
}

/** Waits until a thumbnail in a message's row has loaded; resolves to its shown and natural sizes. */
export async function loadedThumbnail(page, body) {
  const image = messageRow(page, body).locator('.attachment.image img.thumb').first();
  await image.waitFor();
  await page.waitForFunction((img) => img.complete && img.naturalWidth > 0, await image.elementHandle());
  return image.evaluate((img) => {
    const box = img.getBoundingClientRect();
    return { width: box.width, height: box.height, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight };
  });
}

// --- the steps ------------------------------------------------------------------------------

const results = [];

export async function step(name, run) {
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

async function main(scenario, env, browserArgs) {
  let browser;
  const people = [];
  try {
    const server = await startChat(env);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync', ...browserArgs],
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

async function saveFailureShots(people) {
  mkdirSync(RESULTS, { recursive: true });
  for (const who of people) {
    await who.page?.screenshot({ path: join(RESULTS, `${who.name}.png`) }).catch(() => {});
  }
  if (people.length) console.log(`screenshots of the pages: ${RESULTS}`);
}

/**
 * Runs one suite: starts `chat` (with `env` on top of its defaults) and a
 * browser (with `browserArgs` after the kit's flags), calls
 * `scenario(browser, server, people)` (pushing each person it makes onto
 * `people`, for the failure screenshots), prints the tally and exits
 * non-zero on any failure.
 * @param {Function} scenario
 * @param {Record<string, string>} [env]
 * @param {{browserArgs?: string[]}} [options]
 */
export async function run(scenario, env = {}, { browserArgs = [] } = {}) {
const watchdog = setTimeout(() => {
  console.log(`FAIL the run took longer than ${RUN_TIMEOUT_MS / 1000} s`);
  stopServers();
  process.exit(1);
}, RUN_TIMEOUT_MS);

await main(scenario, env, browserArgs);
clearTimeout(watchdog);
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
}
