// End-to-end test of the web client in headless Chromium, against a real
// `chat` server it starts itself (fresh data dir, free port): two people
// talk, go offline, edit, react, pin, search and share files.
//
//   CHAT_BIN=target/debug/chat node web-client/tests/e2e.mjs
//
// The server, the people and the step runner are the kit's (`e2e/kit.mjs`).

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  SCREENSHOT,
  PASSWORD,
  XSS,
  startChat,
  sleep,
  person,
  openPage,
  register,
  waitOnline,
  joinPublicRoom,
  waitRoomTitle,
  send,
  messages,
  waitForMessage,
  waitConnection,
  storedCount,
  trap,
  count,
  expect,
  expectSeqsOrdered,
  openRoomNamed,
  messageId,
  row,
  act,
  waitBody,
  waitTombstone,
  waitReaction,
  waitPins,
  apiAs,
  openRoomId,
  pngOf,
  dispatchFiles,
  messageRow,
  waitChips,
  loadedThumbnail,
  step,
  run,
} from './e2e/kit.mjs';

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
    // Bob, reading #general, is asked first: he accepts the invitation
    // (and stays where he is reading until the group has news).
    await bob.page.locator('#invite-list li', { hasText: 'Weekend plans' }).getByRole('button', { name: 'Accept' }).click();
    const group = bob.page.locator('#room-list button', { hasText: 'Weekend plans' });
    await group.waitFor();
    await bob.page.locator('#room-list button', { hasText: 'general' }).click();
    await waitRoomTitle(bob.page, '# general');
    await send(alice.page, 'Who is in for Saturday?');
    // Bob is told of the unread message.
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


  // --- what people do to messages ------------------------------------------------------------

  let replyId;
  await step('a reply shows its quote on both sides, and a click on the quote brings the original into view', async () => {
    const original = await messageId(bob.page, 'Hi Bob! Are you there?');
    await act(bob.page, original, 'reply');
    await bob.page.locator('#reply-bar', { hasText: 'Replying to Alice' }).waitFor();
    await send(bob.page, 'Answering your very first message');
    for (const who of [bob, alice]) {
      replyId = await messageId(who.page, 'Answering your very first message');
      const quote = row(who.page, replyId).locator('.reply-preview');
      await quote.locator('.reply-sender', { hasText: 'Alice' }).waitFor();
      expect((await quote.locator('.reply-text').textContent()) === 'Hi Bob! Are you there?', `${who.name}: the quote reads ${await quote.textContent()}`);
    }
    expect(await bob.page.isHidden('#reply-bar'), 'the reply bar stayed after sending');
    // The original is far up (the burst came after it): the quote takes Alice there.
    await row(alice.page, replyId).locator('.reply-preview').click();
    await alice.page.waitForSelector(`#message-list .msg[data-id="${original}"].highlight`);
    await alice.page.waitForFunction((id) => {
      const box = document.querySelector('#messages').getBoundingClientRect();
      const target = document.querySelector(`#message-list .msg[data-id="${id}"]`).getBoundingClientRect();
      return target.top >= box.top && target.bottom <= box.bottom;
    }, original);
  });

  await step('reactions: counts and my own highlighted on both sides, a click toggles, any emoji can be typed', async () => {
    // Bob picks 👍 from the picker; Alice adds hers by clicking the chip.
    await act(bob.page, replyId, 'react');
    await bob.page.locator('#reaction-picker button[data-emoji="👍"]').click();
    await waitReaction(bob.page, replyId, '👍', 1, true);
    await waitReaction(alice.page, replyId, '👍', 1, false);
    await row(alice.page, replyId).locator('.reaction[data-emoji="👍"]').click();
    await waitReaction(alice.page, replyId, '👍', 2, true);
    await waitReaction(bob.page, replyId, '👍', 2, true);
    // Bob takes his back.
    await row(bob.page, replyId).locator('.reaction[data-emoji="👍"]').click();
    await waitReaction(bob.page, replyId, '👍', 1, false);
    await waitReaction(alice.page, replyId, '👍', 1, true);
    // Alice types one that is not in the picker.
    await act(alice.page, replyId, 'react');
    await alice.page.fill('#reaction-input', '🚀');
    await alice.page.press('#reaction-input', 'Enter');
    await waitReaction(bob.page, replyId, '🚀', 1, false);
    await waitReaction(alice.page, replyId, '🚀', 1, true);
    // Not one emoji: the server says no, and the page says so.
    await act(alice.page, replyId, 'react');
    await alice.page.fill('#reaction-input', 'abc');
    await alice.page.press('#reaction-input', 'Enter');
    await alice.page.locator('.toast', { hasText: 'Reacting did not work' }).first().waitFor();
  });

  await step('an edit and a deletion are seen live by the other person; only the sender may edit', async () => {
    await send(alice.page, 'Meet at 10 by the lake?');
    const meet = await messageId(bob.page, 'Meet at 10 by the lake?');
    await send(alice.page, 'a typo to take back');
    const typo = await messageId(bob.page, 'a typo to take back');
    expect((await row(bob.page, meet).locator('[data-action="edit"], [data-action="delete"]').count()) === 0, "bob is offered to edit or delete alice's message");
    await act(alice.page, meet, 'edit');
    const editor = row(alice.page, meet).locator('.edit-input');
    await editor.fill('Meet at **11** by the lake?');
    await editor.press('Enter');
    for (const who of [alice, bob]) {
      await waitBody(who.page, meet, 'Meet at 11 by the lake?', true);
      await row(who.page, meet).locator('.body strong', { hasText: '11' }).waitFor();
    }
    // Escape leaves the text as it was.
    await act(alice.page, meet, 'edit');
    await row(alice.page, meet).locator('.edit-input').fill('never saved');
    await row(alice.page, meet).locator('.edit-input').press('Escape');
    await waitBody(alice.page, meet, 'Meet at 11 by the lake?', true);
    await act(alice.page, typo, 'delete');
    await alice.page.locator('#confirm-dialog', { hasText: 'Delete this message' }).waitFor();
    await alice.page.click('#confirm-ok');
    await waitTombstone(alice.page, typo);
    await waitTombstone(bob.page, typo);
  });

  await step('an edit and a deletion made while the other person is offline arrive when they are back', async () => {
    await send(alice.page, 'to be edited while you are away');
    await send(alice.page, 'to be deleted while you are away');
    const edited = await messageId(bob.page, 'to be edited while you are away');
    const deleted = await messageId(bob.page, 'to be deleted while you are away');
    await bob.context.setOffline(true);
    await waitConnection(bob.page, 'offline');
    await act(alice.page, edited, 'edit');
    await row(alice.page, edited).locator('.edit-input').fill('edited while you were away');
    await row(alice.page, edited).locator('.edit-input').press('Enter');
    await act(alice.page, deleted, 'delete');
    await alice.page.click('#confirm-ok');
    await waitBody(alice.page, edited, 'edited while you were away', true);
    await waitTombstone(alice.page, deleted);
    await waitBody(bob.page, edited, 'to be edited while you are away', false);
    await bob.context.setOffline(false);
    await waitConnection(bob.page, 'online');
    await waitBody(bob.page, edited, 'edited while you were away', true);
    await waitTombstone(bob.page, deleted);
  });

  let pinned;
  await step("pins: an owner pins and unpins; the pins panel follows pins, unpins, an edit and a deletion (the owner's, of another's message) on both sides", async () => {
    for (const who of [alice, bob]) await openRoomNamed(who.page, 'Weekend plans', '◆ Weekend plans');
    await send(alice.page, 'Plan: train at 8, hike at 9');
    pinned = await messageId(bob.page, 'Plan: train at 8, hike at 9');
    // Bob is a member here: no pinning for him.
    expect((await row(bob.page, pinned).locator('[data-action="pin"]').count()) === 0, 'a member is offered to pin');
    for (const who of [alice, bob]) {
      await who.page.click('#pins-toggle');
      await waitPins(who.page, []);
      await who.page.locator('#pins-empty').waitFor();
    }
    await act(alice.page, pinned, 'pin');
    for (const who of [alice, bob]) {
      await row(who.page, pinned).locator('.pin-mark').waitFor();
      await waitPins(who.page, [{ id: pinned, text: 'Plan: train at 8, hike at 9' }]);
      await who.page.locator('#pins-count', { hasText: 'Pinned (1)' }).waitFor();
    }
    await act(alice.page, pinned, 'edit');
    await row(alice.page, pinned).locator('.edit-input').fill('Plan: train at 8:15, hike at 9');
    await row(alice.page, pinned).locator('.edit-input').press('Enter');
    await waitPins(bob.page, [{ id: pinned, text: 'Plan: train at 8:15, hike at 9' }]);
    // Unpinned from the panel, gone from both panels.
    await alice.page.locator(`#pin-list .pin[data-id="${pinned}"] [data-action="unpin"]`).click();
    for (const who of [alice, bob]) {
      await waitPins(who.page, []);
      await row(who.page, pinned).locator('.pin-mark').waitFor({ state: 'detached' });
    }
    // A click in the panel shows the message in the conversation.
    await act(alice.page, pinned, 'pin');
    await waitPins(bob.page, [{ id: pinned, text: 'Plan: train at 8:15, hike at 9' }]);
    await bob.page.locator(`#pin-list .pin[data-id="${pinned}"] .pin-open`).click();
    await bob.page.waitForSelector(`#message-list .msg[data-id="${pinned}"].highlight`);
    // An owner may delete anyone's message, and a deleted message leaves the pins.
    await send(bob.page, 'a note of mine the owner takes down');
    const note = await messageId(alice.page, 'a note of mine the owner takes down');
    await act(alice.page, note, 'pin');
    const both = [{ id: note, text: 'a note of mine the owner takes down' }, { id: pinned, text: 'Plan: train at 8:15, hike at 9' }];
    for (const who of [alice, bob]) await waitPins(who.page, both);
    await act(alice.page, note, 'delete');
    await alice.page.locator('#confirm-dialog', { hasText: 'by Bob' }).waitFor();
    await alice.page.click('#confirm-ok');
    for (const who of [alice, bob]) {
      await waitTombstone(who.page, note);
      await waitPins(who.page, [{ id: pinned, text: 'Plan: train at 8:15, hike at 9' }]);
    }
    for (const who of [alice, bob]) await who.page.click('#pins-close');
  });

  await step('@room, from the owner, mentions everyone; a member is not offered it', async () => {
    await bob.page.click('#composer-input');
    await bob.page.keyboard.type('@ro');
    expect((await bob.page.locator('#mention-list li[data-username="room"]').count()) === 0, 'a member is offered @room');
    await bob.page.fill('#composer-input', '');
    await alice.page.click('#composer-input');
    await alice.page.keyboard.type('@ro');
    await alice.page.locator('#mention-list li[data-username="room"]').waitFor();
    await alice.page.keyboard.press('Tab');
    await alice.page.keyboard.type('the train leaves at 8');
    await alice.page.keyboard.press('Enter');
    const everyone = await messageId(bob.page, '@room the train leaves at 8');
    await bob.page.locator(`#message-list .msg.mentioned[data-id="${everyone}"] .body .mention`, { hasText: '@room' }).waitFor();
  });

  await step('@ completion of members, the mention highlighted, and a mention badge apart from the unread count', async () => {
    // Bob stays in the group; Alice writes in #general.
    await openRoomNamed(alice.page, 'general', '# general');
    await alice.page.click('#composer-input');
    await alice.page.keyboard.type('Look @bo');
    await alice.page.locator('#mention-list li[data-username="bob"]').waitFor();
    await alice.page.keyboard.press('Enter');
    expect((await alice.page.inputValue('#composer-input')) === 'Look @bob ', `the completion gave "${await alice.page.inputValue('#composer-input')}"`);
    await alice.page.keyboard.type('at the plan');
    await alice.page.keyboard.press('Enter');
    await waitForMessage(alice.page, 'Look @bob at the plan', 'delivered');
    const general = bob.page.locator('#room-list button', { hasText: 'general' });
    await general.locator('.mention-badge', { hasText: '@1' }).waitFor();
    await general.locator('.badge', { hasText: '1' }).waitFor();
    // From the room list after a reload (the api's unread_mentions).
    await bob.page.reload();
    await waitOnline(bob.page);
    await waitRoomTitle(bob.page, '◆ Weekend plans');
    await bob.page.locator('#room-list button', { hasText: 'general' }).locator('.mention-badge', { hasText: '@1' }).waitFor();
    await openRoomNamed(bob.page, 'general', '# general');
    const mention = await messageId(bob.page, 'Look @bob at the plan');
    await bob.page.locator(`#message-list .msg.mentioned[data-id="${mention}"] .body .mention`, { hasText: '@bob' }).waitFor();
    await general.locator('.mention-badge').waitFor({ state: 'detached' });
    // Alice's own message mentions someone else: not highlighted for her.
    expect((await alice.page.locator(`#message-list .msg.mentioned[data-id="${mention}"]`).count()) === 0, "alice's message is highlighted as mentioning her");
  });

  await step('a reload shows messages as they are now: edits, tombstones, reactions, replies and pins', async () => {
    await alice.page.reload();
    await waitOnline(alice.page);
    await waitRoomTitle(alice.page, '# general');
    const meet = await messageId(alice.page, 'Meet at 11 by the lake?');
    await waitBody(alice.page, meet, 'Meet at 11 by the lake?', true);
    await waitBody(alice.page, await messageId(alice.page, 'edited while you were away'), 'edited while you were away', true);
    expect((await alice.page.locator('#message-list .msg.deleted .body.tombstone').count()) === 2, 'the two deleted messages are not both tombstones');
    expect((await alice.page.locator('#message-list .body', { hasText: 'a typo to take back' }).count()) === 0, 'a deleted text is shown');
    await waitReaction(alice.page, replyId, '👍', 1, true);
    await waitReaction(alice.page, replyId, '🚀', 1, true);
    await row(alice.page, replyId).locator('.reply-preview .reply-text', { hasText: 'Hi Bob! Are you there?' }).waitFor();
    await openRoomNamed(alice.page, 'Weekend plans', '◆ Weekend plans');
    await row(alice.page, pinned).locator('.pin-mark').waitFor();
    await waitBody(alice.page, pinned, 'Plan: train at 8:15, hike at 9', true);
    await alice.page.locator('#pins-count', { hasText: 'Pinned (1)' }).waitFor();
    await openRoomNamed(alice.page, 'general', '# general');
  });

  await step('search finds a message with its room, time and marked words, and a click opens it, loading older history', async () => {
    // A room of 61 messages made over REST: its first one is older than
    // the first page the room opens with.
    const created = await apiAs(alice.page, 'POST', '/v1/rooms', { name: 'Archive', kind: 'private' });
    expect(created.status === 201, `creating a room: ${created.status}`);
    const archive = created.json.id;
    const first = await apiAs(alice.page, 'POST', `/v1/rooms/${archive}/messages`, { client_id: 'archive-0', body: `The quarterly forecast is attached ${XSS}` });
    expect(first.status === 201, `sending: ${first.status}`);
    for (let i = 1; i <= 60; i += 1) {
      // Past the send budget's burst, wait for it to refill.
      let sent;
      while ((sent = await apiAs(alice.page, 'POST', `/v1/rooms/${archive}/messages`, { client_id: `archive-${i}`, body: `filler ${i}` })).status === 429) {
        await sleep(1000);
      }
      expect(sent.status === 201, `sending filler ${i}: ${sent.status}`);
    }
    await alice.page.locator('.sidebar .room-list button', { hasText: 'Archive' }).waitFor();
    await openRoomNamed(alice.page, 'general', '# general');

    await alice.page.fill('#search-input', '"quarterly forecast" -draft');
    await alice.page.press('#search-input', 'Enter');
    const hit = alice.page.locator('#search-results .search-hit');
    await hit.first().waitFor();
    expect((await hit.count()) === 1, `${await hit.count()} results`);
    const shown = await hit.evaluate((button) => ({
      id: button.dataset.id,
      room: button.querySelector('.search-room').textContent,
      time: button.querySelector('time').dateTime,
      text: button.querySelector('.search-text').textContent,
      marks: [...button.querySelectorAll('.search-text mark')].map((mark) => mark.textContent),
      elements: [...button.querySelectorAll('.search-text *')].map((node) => node.tagName),
    }));
    expect(shown.id === first.json.id, `the result is ${shown.id}, not the message sent`);
    expect(shown.room === 'Archive', `the result's room shows as ${shown.room}`);
    expect(shown.time === first.json.ts, `the result's time is ${shown.time}`);
    expect(shown.text === `The quarterly forecast is attached ${XSS}`, `the result's text is ${shown.text}`);
    expect(JSON.stringify(shown.marks) === '["quarterly","forecast"]', `marked: ${JSON.stringify(shown.marks)}`);
    expect(shown.elements.every((tag) => tag === 'MARK'), `the result's text holds elements ${shown.elements}`);

    await hit.click();
    await waitRoomTitle(alice.page, '◆ Archive');
    const target = row(alice.page, first.json.id);
    await target.waitFor();
    await alice.page.waitForFunction((id) => document.querySelector(`#message-list .msg[data-id="${id}"]`)?.classList.contains('highlight'), first.json.id);
    expect(await target.isVisible(), 'the message is not in view');
    const inView = await target.evaluate((li) => {
      const box = li.getBoundingClientRect();
      const list = document.querySelector('#messages').getBoundingClientRect();
      return box.bottom > list.top && box.top < list.bottom;
    });
    expect(inView, 'the message is not scrolled into view');

    // A query with nothing to find says so, and the page stays as it is.
    await alice.page.fill('#search-input', '-forecast');
    await alice.page.press('#search-input', 'Enter');
    await alice.page.locator('#search-status', { hasText: 'Type a word to find' }).waitFor();
    await alice.page.click('#search-close');
    expect(await alice.page.locator('#search-panel').isHidden(), 'the search panel stays open');
    await openRoomNamed(alice.page, 'general', '# general');
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

  await step('HTML, scripts and odd links in bodies, edits, reply quotes and display names are shown as text and run nothing', async () => {
    // Eve signs up over REST with a display name that is markup, joins
    // #general, and writes the corpus there.
    const displayName = '"><svg onload=alert(1)><img src=x onerror=alert(1)>';
    const registered = await fetch(new URL('/v1/auth/register', server.base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'eve', password: PASSWORD, display_name: displayName }),
    });
    const registeredText = await registered.text();
    expect(registered.ok, `register answered ${registered.status}: ${registeredText}`);
    const token = JSON.parse(registeredText).access_token;
    const room = await openRoomId(alice.page);
    const rest = async (method, path, body) => {
      const response = await fetch(new URL(path, server.base), {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await response.text();
      expect(response.ok, `${method} ${path} answered ${response.status}: ${text}`);
      return JSON.parse(text);
    };
    await rest('POST', `/v1/rooms/${room}/join`);
    const corpus = [
      // [body as sent, its text as shown]
      ['<img src=x onerror=alert(1)>', '<img src=x onerror=alert(1)>'],
      ['<script>alert(1)</script>', '<script>alert(1)</script>'],
      ['javascript:alert(1)', 'javascript:alert(1)'],
      ['[x](javascript:alert(1))', '[x](javascript:alert(1))'],
      ['**<b>bold</b>**', '<b>bold</b>'],
      ['"><svg onload=alert(1)>', '"><svg onload=alert(1)>'],
      ['<img src=x onerror="window.__pwned=1">', '<img src=x onerror="window.__pwned=1">'],
      ['`<iframe src=javascript:alert(1)>`', '<iframe src=javascript:alert(1)>'],
      ['> <a href="javascript:alert(1)">quoted</a>', '<a href="javascript:alert(1)">quoted</a>'],
      ['see https://example.org/"onmouseover="alert(1) ok', 'see https://example.org/"onmouseover="alert(1) ok'],
    ];
    let client = 0;
    const sent = [];
    for (const [body] of corpus) sent.push(await rest('POST', `/v1/rooms/${room}/messages`, { client_id: `xss-${client++}`, body }));
    // An edit into markup, and a reply quoting markup.
    const harmless = await rest('POST', `/v1/rooms/${room}/messages`, { client_id: `xss-${client++}`, body: 'harmless for now' });
    await rest('PATCH', `/v1/rooms/${room}/messages/${harmless.id}`, { client_id: `xss-${client++}`, body: '<svg><script>alert(1)</script></svg>' });
    await rest('POST', `/v1/rooms/${room}/messages`, { client_id: `xss-${client++}`, body: 'quoting it', reply_to: sent[0].id });
    for (const who of [alice, bob]) {
      for (const [, shown] of corpus) await waitForMessage(who.page, shown);
      await waitBody(who.page, harmless.id, '<svg><script>alert(1)</script></svg>', true);
      const quote = who.page.locator('#message-list .msg', { hasText: 'quoting it' }).locator('.reply-preview');
      await quote.locator('.reply-text', { hasText: '<img src=x onerror=alert(1)>' }).waitFor();
      expect((await quote.locator('.reply-sender').textContent()) === displayName, `${who.name}: the quote's sender reads ${await quote.locator('.reply-sender').textContent()}`);
      await who.page.locator('#message-list .msg .meta .sender', { hasText: displayName }).first().waitFor();
      await who.page.locator('#member-list li', { hasText: displayName }).waitFor();
      const found = await who.page.evaluate(() => {
        const allowed = new Set(['STRONG', 'EM', 'CODE', 'PRE', 'BLOCKQUOTE', 'A', 'SPAN']);
        const made = [...document.querySelectorAll('#message-list .body *, #pin-list .pin-body *')].map((el) => el.tagName).filter((tag) => !allowed.has(tag));
        const links = [...document.querySelectorAll('#message-list .body a')].map((a) => ({ href: a.getAttribute('href'), rel: a.rel, target: a.target }));
        return {
          made,
          links,
          markup: document.querySelectorAll('img, svg, iframe, object, embed, #chat-screen script').length,
          scripts: document.scripts.length,
          handlers: [...document.querySelectorAll('#chat-screen *')].filter((el) => [...el.attributes].some((a) => a.name.startsWith('on'))).length,
          pwned: window.__pwned,
        };
      });
      expect(found.made.length === 0, `${who.name}'s page made ${found.made.join(', ')} in a message`);
      expect(found.markup === 0 && found.scripts === 1 && found.handlers === 0, `${who.name}'s page holds markup from a message: ${JSON.stringify(found)}`);
      expect(found.pwned === undefined, `${who.name}'s page ran a script from a message`);
      for (const link of found.links) {
        expect(/^https?:\/\//.test(link.href) && link.rel === 'noopener noreferrer' && link.target === '_blank', `${who.name}: a link ${JSON.stringify(link)}`);
      }
      expect(found.links.every((link) => !link.href.includes('"')), `${who.name}: a link took a quote: ${JSON.stringify(found.links)}`);
      expect(who.dialogs.length === 0, `${who.name} saw a dialog: ${who.dialogs.join(', ')}`);
    }
  });

  // --- files ------------------------------------------------------------------------------------

  await step('an image attached by the button uploads with progress, and the other person sees its thumbnail and opens it full size', async () => {
    await openRoomNamed(alice.page, 'Bob');
    await openRoomNamed(bob.page, 'Alice');
    // About 700 KB of noise, sent at 256 KB/s: the chip is seen uploading for a while.
    const wide = await pngOf(alice.page, 600, 300, { noise: true });
    const network = await alice.context.newCDPSession(alice.page);
    const throttle = (bytesPerSecond) =>
      network.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond });
    await network.send('Network.enable');
    await throttle(256 * 1024);
    const chooser = alice.page.waitForEvent('filechooser');
    await alice.page.click('#attach');
    await (await chooser).setFiles({ name: 'wide.png', mimeType: 'image/png', buffer: wide });
    await alice.page.locator('#upload-list .upload-chip[data-state="uploading"]', { hasText: 'wide.png' }).locator('progress').waitFor();
    expect(await alice.page.isDisabled('#send'), 'Send was enabled while a file was uploading');
    // Part of the way: the bar moves.
    await alice.page.waitForFunction(() => {
      const chip = document.querySelector('#upload-list .upload-chip[data-state="uploading"]');
      const shown = Number(chip?.dataset.progress);
      return shown > 0 && shown < 100 && chip.querySelector('progress').value > 0;
    });
    await waitChips(alice.page, 1, 'done');
    await throttle(-1);
    await network.detach();
    expect(await alice.page.isEnabled('#send'), 'Send stayed disabled after the upload');
    await send(alice.page, 'a wide picture');
    await waitForMessage(alice.page, 'a wide picture', 'delivered');
    await alice.page.locator('#upload-list').waitFor({ state: 'hidden' });
    const seen = await loadedThumbnail(bob.page, 'a wide picture');
    expect(Math.abs(seen.width / seen.height - 2) < 0.05, `bob's thumbnail is shown ${seen.width} × ${seen.height}, not 2:1`);
    expect(Math.abs(seen.naturalWidth / seen.naturalHeight - 2) < 0.05, `bob's thumbnail is ${seen.naturalWidth} × ${seen.naturalHeight}, not 2:1`);
    await messageRow(bob.page, 'a wide picture').locator('.attachment.image').click();
    await bob.page.waitForFunction(() => {
      const image = document.querySelector('.lightbox img.full');
      return image?.complete && image.naturalWidth === 600 && image.naturalHeight === 300;
    });
    await bob.page.keyboard.press('Escape');
    await bob.page.locator('.lightbox').waitFor({ state: 'detached' });
  });

  await step('a file that is not an image shows as a card with its name and size, and its download link answers 200', async () => {
    const notes = Buffer.from('meeting notes\n'.repeat(100)); // 1400 bytes
    await alice.page.setInputFiles('#attach-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: notes });
    await waitChips(alice.page, 1, 'done');
    // No text: the file alone is the message.
    await alice.page.press('#composer-input', 'Enter');
    const card = bob.page.locator('#message-list .attachment.file', { hasText: 'notes.txt' });
    await card.waitFor();
    const size = await card.locator('.file-size').textContent();
    expect(size === '1.4 KB', `the card says ${size}`);
    await card.locator('.download[href]').waitFor({ state: 'attached' });
    const fetched = await card.locator('.download').evaluate(async (link) => {
      const response = await fetch(link.href);
      return { status: response.status, text: await response.text() };
    });
    expect(fetched.status === 200 && fetched.text === notes.toString(), `the download answered ${fetched.status}: ${fetched.text.slice(0, 80)}`);
    await alice.page.locator('#message-list .attachment.file', { hasText: 'notes.txt' }).waitFor();
  });

  await step('a pasted image and a dropped file each join the message, and it carries both', async () => {
    const tall = await pngOf(alice.page, 40, 80);
    await dispatchFiles(alice.page, '#composer-input', 'paste', [{ name: 'pasted.png', type: 'image/png', buffer: tall }]);
    await waitChips(alice.page, 1, 'done');
    await dispatchFiles(alice.page, '#conversation', 'drop', [{ name: 'dropped.txt', type: 'text/plain', buffer: Buffer.from('dropped in') }]);
    await waitChips(alice.page, 2, 'done');
    await send(alice.page, 'pasted and dropped');
    const row = messageRow(bob.page, 'pasted and dropped');
    await row.locator('.attachment.file', { hasText: 'dropped.txt' }).waitFor();
    const seen = await loadedThumbnail(bob.page, 'pasted and dropped');
    expect(Math.abs(seen.height / seen.width - 2) < 0.1, `the pasted image is shown ${seen.width} × ${seen.height}, not 1:2`);
  });

  await step('a refused upload says why, and nothing is sent', async () => {
    const [aliceBefore, bobBefore] = [(await messages(alice.page)).length, (await messages(bob.page)).length];
    await alice.page.setInputFiles('#attach-input', { name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from('this is text, not a PNG') });
    const refused = alice.page.locator('#upload-list .upload-chip[data-state="refused"]', { hasText: 'fake.png' });
    await refused.waitFor();
    const reason = await refused.locator('.upload-error').textContent();
    expect(reason.includes('not what its name or type says'), `the chip says: ${reason}`);
    expect(await alice.page.isDisabled('#send'), 'Send is enabled with only a refused file');
    await alice.page.press('#composer-input', 'Enter');
    await sleep(500);
    expect((await messages(alice.page)).length === aliceBefore, 'alice sent something');
    expect((await messages(bob.page)).length === bobBefore, 'bob got something');
    await refused.locator('button.remove').click();
    await alice.page.locator('#upload-list').waitFor({ state: 'hidden' });
    // Over the server's limit (2 MiB here).
    await alice.page.setInputFiles('#attach-input', { name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(3 * 1024 * 1024, 7) });
    const tooBig = alice.page.locator('#upload-list .upload-chip[data-state="refused"]', { hasText: 'big.bin' });
    await tooBig.waitFor();
    const why = await tooBig.locator('.upload-error').textContent();
    expect(/too large|size limit/.test(why), `the chip says: ${why}`);
    expect(await alice.page.isDisabled('#send'), 'Send is enabled with only a refused file');
    await tooBig.locator('button.remove').click();
    await alice.page.locator('#upload-list').waitFor({ state: 'hidden' });
    await sleep(300);
    expect((await messages(bob.page)).length === bobBefore, 'bob got something');
  });

  const offlineText = 'sent offline with a file, then the page reloaded';
  await step('a message with a file written offline survives a reload and arrives, file included, once back online', async () => {
    const small = await pngOf(alice.page, 90, 60);
    await alice.context.setOffline(true);
    await waitConnection(alice.page, 'offline');
    await alice.page.setInputFiles('#attach-input', { name: 'offline.png', mimeType: 'image/png', buffer: small });
    await waitChips(alice.page, 1, 'waiting');
    await send(alice.page, offlineText);
    await waitForMessage(alice.page, offlineText, 'pending');
    await messageRow(alice.page, offlineText).locator('.attachment.pending', { hasText: 'offline.png' }).waitFor();
    // Offline, the reload ends this page (an error page takes its place).
    await alice.page.evaluate(() => (window.beforeReload = true));
    await alice.page.reload().catch(() => {});
    const survived = await alice.page.evaluate(() => window.beforeReload).catch(() => undefined);
    expect(survived === undefined, 'the page was not reloaded');
    await sleep(500);
    expect(count(await messages(bob.page), offlineText) === 0, 'bob got it while alice was offline');
    await alice.context.setOffline(false);
    await alice.page.goto(alice.base);
    await waitOnline(alice.page);
    await waitForMessage(alice.page, offlineText, 'delivered');
    const seen = await loadedThumbnail(bob.page, offlineText);
    expect(Math.abs(seen.naturalWidth / seen.naturalHeight - 1.5) < 0.05, `the file bob got is ${seen.naturalWidth} × ${seen.naturalHeight}`);
    await sleep(500);
    expect(count(await messages(bob.page), offlineText) === 1, 'bob shows it more than once');
    expect(count(await messages(alice.page), offlineText) === 1, 'alice shows it more than once');
  });

  const staleText = 'its upload expired before it was sent';
  await step('a send whose upload expired unsent is uploaded again from the kept file and arrives', async () => {
    // An upload the server no longer takes (this one was sent already),
    // as an upload left unsent for over an hour would be.
    const spent = await bob.page.locator('#message-list .attachment.file', { hasText: 'notes.txt' }).getAttribute('data-attachment-id');
    await alice.context.setOffline(true);
    await waitConnection(alice.page, 'offline');
    await alice.page.setInputFiles('#attach-input', { name: 'stale.txt', mimeType: 'text/plain', buffer: Buffer.from('kept on this device') });
    await waitChips(alice.page, 1, 'waiting');
    await send(alice.page, staleText);
    await waitForMessage(alice.page, staleText, 'pending');
    await alice.page.evaluate(
      ([body, spent]) => {
        const key = Object.keys(localStorage).find((k) => k.startsWith('chat.outbox:'));
        const entries = JSON.parse(localStorage.getItem(key));
        entries.find((entry) => entry.body === body).attachments[0].id = spent;
        localStorage.setItem(key, JSON.stringify(entries));
      },
      [staleText, spent],
    );
    await alice.context.setOffline(false);
    await waitForMessage(alice.page, staleText, 'delivered');
    const card = messageRow(bob.page, staleText).locator('.attachment.file', { hasText: 'stale.txt' });
    await card.waitFor();
    expect((await card.getAttribute('data-attachment-id')) !== spent, 'bob got the spent upload');
    await sleep(500);
    expect(count(await messages(bob.page), staleText) === 1, 'bob shows it more than once');
    expect(alice.dialogs.length === 0 && (await alice.page.locator('.msg[data-state="failed"]').count()) === 0, 'alice was told it failed');
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

// Uploads up to 2 MiB: a test can go over the limit cheaply.
await run(scenario, { CHAT_MAX_UPLOAD_BYTES: String(2 * 1024 * 1024) });
