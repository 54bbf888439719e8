// End-to-end test of moderation in rooms, in headless Chromium against a
// real `chat` server: an owner mutes a member from the member list, the
// member sees the banner with the end time and a closed composer, a send
// they had queued offline is refused with the server's words (and not
// retried), an unmute gives them their voice back, slow mode shows its
// countdown after a member's message, an invitation waits for the
// invitee's accept, and an invite link lets one newcomer in.
//
//   CHAT_BIN=$PWD/target/debug/chat node web-client/tests/e2e-moderation.mjs
//
// The server, the people and the step runner are the kit's (`e2e/kit.mjs`).

import {
  person,
  register,
  joinPublicRoom,
  openRoomNamed,
  waitRoomTitle,
  send,
  waitForMessage,
  waitConnection,
  waitOnline,
  storedCount,
  expect,
  apiAs,
  step,
  run,
} from './e2e/kit.mjs';

/** The open room's id, from the sidebar. */
function openRoomIdOf(page) {
  return page.$eval('.sidebar button[aria-current="true"]', (button) => button.dataset.roomId);
}

/** The logged-in user's id, from the page's own session. */
function myId(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem(`chat.session:${location.origin}`)).user.id);
}

/** The member-list row of someone, by display name. */
function memberRow(page, name) {
  return page.locator('#member-list li', { hasText: name });
}

async function scenario(browser, server, people) {
  const alice = await person(browser, server.base, 'alice');
  const bob = await person(browser, server.base, 'bob');
  people.push(alice, bob);

  await step('alice opens a room of her own and bob joins it', async () => {
    await register(alice, 'Alice');
    await register(bob, 'Bob');
    const created = await apiAs(alice.page, 'POST', '/v1/rooms', { name: 'moderated', kind: 'public' });
    expect(created.status === 201, `creating the room: ${JSON.stringify(created)}`);
    await openRoomNamed(alice.page, 'moderated', '# moderated');
    await joinPublicRoom(bob.page, 'moderated');
    await memberRow(alice.page, 'Bob').waitFor();
    // Nobody but the owner (and admins) is offered a mute, and not on themselves.
    expect((await memberRow(bob.page, 'Alice').getByRole('button', { name: 'Mute' }).count()) === 0, 'a member was offered a mute');
    expect((await memberRow(alice.page, 'Alice').getByRole('button', { name: 'Mute' }).count()) === 0, 'the owner was offered to mute herself');
  });

  await step('a timeout is shown to the muted member: banner with the end, composer closed', async () => {
    // Bob writes while offline: his message waits in the outbox.
    await bob.context.setOffline(true);
    await waitConnection(bob.page, 'offline');
    await send(bob.page, 'written before the mute');
    await waitForMessage(bob.page, 'written before the mute', 'pending');

    await memberRow(alice.page, 'Bob').getByRole('button', { name: 'Mute' }).click();
    await alice.page.selectOption('#mute-duration', '600');
    await alice.page.click('#mute-form button[type=submit]');
    await memberRow(alice.page, 'Bob').locator('.muted-badge').waitFor();
    await alice.page.locator('#message-list .notice', { hasText: 'Alice muted Bob until' }).waitFor();

    await bob.context.setOffline(false);
    await waitOnline(bob.page);
    const banner = bob.page.locator('#mute-banner');
    await banner.waitFor({ state: 'visible' });
    const text = await banner.textContent();
    expect(/You are muted in this room until \S/.test(text), `banner: ${text}`);
    expect(await bob.page.isDisabled('#composer-input'), 'the muted member can still type');
    const placeholder = await bob.page.getAttribute('#composer-input', 'placeholder');
    expect(placeholder.startsWith('Muted until '), `placeholder: ${placeholder}`);
  });

  await step('the send he queued is refused with the documented message, not retried', async () => {
    await bob.page.waitForFunction(() =>
      [...document.querySelectorAll('#message-list .msg')].some(
        (row) => row.dataset.state === 'failed' && row.textContent.includes('you are muted in this room until'),
      ),
    );
    expect((await storedCount(alice.page, 'written before the mute')) === 0, 'the refused message was stored');
    // Over REST too, with the same code.
    const room = await bob.page.$eval('.sidebar button[aria-current="true"]', (b) => b.dataset.roomId);
    const refused = await apiAs(bob.page, 'POST', `/v1/rooms/${room}/messages`, { client_id: 'rest-1', body: 'over rest' });
    expect(refused.status === 403 && refused.json?.error?.code === 'muted', `REST send: ${JSON.stringify(refused)}`);
  });

  await step('an unmute gives the member his voice back', async () => {
    await memberRow(alice.page, 'Bob').getByRole('button', { name: 'Unmute' }).click();
    await bob.page.locator('#mute-banner').waitFor({ state: 'hidden' });
    await bob.page.waitForFunction(() => !document.querySelector('#composer-input').disabled);
    await send(bob.page, 'back again');
    await waitForMessage(bob.page, 'back again', 'delivered');
    await waitForMessage(alice.page, 'back again');
  });

  await step('slow mode: the member sees the interval and a countdown after his message', async () => {
    await alice.page.click('#slow-mode');
    await alice.page.selectOption('#slow-mode-seconds', '30');
    await alice.page.click('#slow-mode-form button[type=submit]');
    const line = bob.page.locator('#slow-mode-line');
    await line.filter({ hasText: 'one message every 30 seconds' }).waitFor();
    await alice.page.locator('#slow-mode-line', { hasText: 'you are exempt' }).waitFor();
    await send(bob.page, 'one for now');
    await waitForMessage(bob.page, 'one for now', 'delivered');
    await line.filter({ hasText: /you can send again in \d+ s/ }).waitFor();
    await bob.page.fill('#composer-input', 'too soon');
    expect(await bob.page.isDisabled('#send'), 'Send is enabled during the wait');
    // Turned off: Send comes back.
    await alice.page.click('#slow-mode');
    await alice.page.selectOption('#slow-mode-seconds', '0');
    await alice.page.click('#slow-mode-form button[type=submit]');
    await line.waitFor({ state: 'hidden' });
    await bob.page.waitForFunction(() => !document.querySelector('#send').disabled);
  });

  await step('an invitation waits for consent: the invitee accepts and the room opens', async () => {
    const created = await apiAs(alice.page, 'POST', '/v1/rooms', { name: 'secret plans', kind: 'private' });
    expect(created.status === 201, `creating the room: ${JSON.stringify(created)}`);
    await openRoomNamed(alice.page, 'secret plans', '◆ secret plans');
    await alice.page.click('#invite');
    await alice.page.fill('#people-search', 'bob');
    await alice.page.locator('#people-results li', { hasText: '@bob' }).getByRole('button', { name: 'Invite' }).click();
    await alice.page.locator('#people-results li', { hasText: 'Invited' }).waitFor();
    await alice.page.keyboard.press('Escape');
    const invitation = bob.page.locator('#invite-list li', { hasText: 'secret plans' });
    await invitation.waitFor();
    const text = await invitation.textContent();
    expect(text.includes('from Alice'), `invitation: ${text}`);
    // Not in the room before saying yes.
    expect((await bob.page.locator('#room-list button', { hasText: 'secret plans' }).count()) === 0, 'in the room before accepting');
    await invitation.getByRole('button', { name: 'Accept' }).click();
    await waitRoomTitle(bob.page, '◆ secret plans');
    await invitation.waitFor({ state: 'detached' });
    await alice.page.locator('#message-list .notice', { hasText: 'Bob joined' }).waitFor();
    await send(alice.page, 'welcome in');
    await waitForMessage(bob.page, 'welcome in');
  });

  await step('an invite link lets a newcomer in once: made, used, then refused with its reason', async () => {
    await alice.page.click('#invite-links');
    await alice.page.selectOption('#link-uses', '1');
    await alice.page.click('#link-form button[type=submit]');
    const field = alice.page.locator('#link-list li input').first();
    await field.waitFor();
    const url = await field.inputValue();
    expect(/\/#join=[A-Za-z0-9_-]{22}$/.test(url), `link: ${url}`);
    await alice.page.keyboard.press('Escape');

    const carol = await person(browser, server.base, 'carol');
    people.push(carol);
    await register(carol, 'Carol');
    await carol.page.goto(url);
    await waitRoomTitle(carol.page, '◆ secret plans');
    await waitForMessage(carol.page, 'welcome in');
    await alice.page.locator('#message-list .notice', { hasText: 'Carol joined' }).waitFor();

    // Its one use is spent: the next newcomer is told why.
    const dave = await person(browser, server.base, 'dave');
    people.push(dave);
    await register(dave, 'Dave');
    await dave.page.goto(url);
    await dave.page.locator('.toast', { hasText: 'used as often as it allows' }).waitFor();
    expect((await dave.page.locator('#room-list button', { hasText: 'secret plans' }).count()) === 0, 'joined by a spent link');
    await alice.page.click('#invite-links');
    await alice.page.locator('#link-list li', { hasText: 'used up' }).waitFor();
    await alice.page.keyboard.press('Escape');
  });

  await step('an invitation not yet answered is withdrawn: it leaves the invitee\'s list', async () => {
    const erin = await person(browser, server.base, 'erin');
    people.push(erin);
    await register(erin, 'Erin');
    const room = await openRoomIdOf(alice.page);
    const invited = await apiAs(alice.page, 'POST', `/v1/rooms/${room}/members`, { user_id: await myId(erin.page) });
    expect(invited.status === 201, `inviting: ${JSON.stringify(invited)}`);
    const invitation = erin.page.locator('#invite-list li', { hasText: 'secret plans' });
    await invitation.waitFor();
    await alice.page.click('#invite-links');
    const pending = alice.page.locator('#pending-list li', { hasText: '@erin' });
    await pending.waitFor();
    await pending.getByRole('button', { name: 'Withdraw' }).click();
    await pending.waitFor({ state: 'detached' });
    await alice.page.keyboard.press('Escape');
    await invitation.waitFor({ state: 'detached' });
    await alice.page.locator('#message-list .notice', { hasText: 'Alice withdrew the invitation of' }).waitFor();
  });
}

await run(scenario);
