// End-to-end test of consent between users in headless Chromium, against a
// real `chat` server it starts itself: a block (the blocked user's DM is
// refused with a clear message, the blocker sees their message in a shared
// room folded, unblocking restores it), and a DM request from a stranger
// (listed for the recipient only from its first message, as a request;
// accepted, a DM both write in), then closed.
//
//   CHAT_BIN=target/debug/chat node web-client/tests/e2e-consent.mjs
//
// The server, the people and the step runner are the kit's (`e2e/kit.mjs`).

import {
  person,
  register,
  joinPublicRoom,
  send,
  waitForMessage,
  expect,
  step,
  run,
} from './e2e/kit.mjs';

/** Waits for a notice (toast) containing `text`; returns its text. */
async function waitToast(page, text) {
  const toast = page.locator('#toasts .toast', { hasText: text });
  await toast.first().waitFor();
  return toast.first().textContent();
}

async function scenario(browser, server, people) {
  const alice = await person(browser, server.base, 'alice');
  const bob = await person(browser, server.base, 'bob');
  people.push(alice, bob);

  await step('two users register and share a room', async () => {
    await register(alice, 'Alice');
    await register(bob, 'Bob');
    await joinPublicRoom(alice.page, 'general');
    await joinPublicRoom(bob.page, 'general');
    await send(bob.page, 'before the block');
    await waitForMessage(alice.page, 'before the block');
  });

  await step('alice blocks bob from the member list', async () => {
    const row = alice.page.locator('#member-list li', { hasText: 'Bob' });
    await row.getByRole('button', { name: 'Block' }).click();
    await row.getByRole('button', { name: 'Unblock' }).waitFor();
    // His earlier message folds at once.
    await alice.page.locator('#message-list .blocked-message').first().waitFor();
    const shown = await alice.page.locator('#message-list .msg .body', { hasText: 'before the block' }).count();
    expect(shown === 0, 'the blocked user’s message is folded');
  });

  await step('bob cannot open a DM with alice, and is told why', async () => {
    await bob.page.click('#new-dm');
    await bob.page.fill('#people-search', 'alice');
    const result = bob.page.locator('#people-results li', { hasText: 'Alice' });
    await result.getByRole('button', { name: 'Message' }).click();
    const text = await waitToast(bob.page, 'blocks');
    expect(/cannot open a DM/.test(text), `a clear refusal: ${text}`);
    await bob.page.keyboard.press('Escape');
    const dms = await bob.page.locator('#dm-list li').count();
    expect(dms === 0, 'no DM was made');
  });

  await step('bob’s message in the shared room reaches alice folded, and she can show it', async () => {
    await send(bob.page, 'can you hear me');
    await waitForMessage(bob.page, 'can you hear me', 'delivered');
    const folded = alice.page.locator('#message-list .blocked-message');
    await alice.page.waitForFunction(() => document.querySelectorAll('#message-list .blocked-message').length === 2);
    const badge = await alice.page.locator('#room-list .badge').count();
    expect(badge === 0, 'a blocked user’s message is not unread');
    await folded.last().getByRole('button', { name: 'show' }).click();
    await waitForMessage(alice.page, 'can you hear me');
  });

  await step('alice unblocks bob from her blocked users, and all is restored', async () => {
    // The settings page lists him too.
    await alice.page.click('#open-settings');
    await alice.page.locator('#settings-blocks li', { hasText: 'Bob' }).waitFor();
    await alice.page.keyboard.press('Escape');
    await alice.page.click('#blocked-users');
    const listed = alice.page.locator('#blocks-section li', { hasText: 'Bob' });
    await listed.getByRole('button', { name: 'Unblock' }).click();
    await alice.page.locator('#blocks-section p.hint:not([hidden])').waitFor();
    await alice.page.keyboard.press('Escape');
    await waitForMessage(alice.page, 'before the block');
    await send(bob.page, 'after the block');
    await waitForMessage(alice.page, 'after the block');
    const folded = await alice.page.locator('#message-list .blocked-message').count();
    expect(folded === 0, 'nothing is folded any more');
    // And bob may message her again.
    await bob.page.click('#new-dm');
    await bob.page.fill('#people-search', 'alice');
    const result = bob.page.locator('#people-results li', { hasText: 'Alice' });
    await result.getByRole('button', { name: 'Message' }).click();
    await bob.page.locator('#dm-list li', { hasText: 'Alice' }).waitFor();
  });
}

async function dmRequest(browser, server, people) {
  const alice = people[0];
  const carol = await person(browser, server.base, 'carol');
  people.push(carol);

  await step('a stranger opens a DM: it is in nobody’s list until written in', async () => {
    await register(carol, 'Carol');
    await carol.page.click('#new-dm');
    await carol.page.fill('#people-search', 'alice');
    const result = carol.page.locator('#people-results li', { hasText: 'Alice' });
    await result.getByRole('button', { name: 'Message' }).click();
    await carol.page.keyboard.press('Escape');
    await carol.page.waitForFunction(() => document.querySelector('#room-title')?.textContent === 'Alice');
    const forAlice = await alice.page.locator('#request-list li, #dm-list li', { hasText: 'Carol' }).count();
    expect(forAlice === 0, 'nothing for alice before the first message');
  });

  await step('the first message reaches alice as a request she can read, and she accepts it', async () => {
    await send(carol.page, 'hi alice, it is carol');
    await waitForMessage(carol.page, 'hi alice, it is carol', 'delivered');
    const request = alice.page.locator('#request-list li', { hasText: 'Carol' });
    await request.waitFor();
    const plain = await alice.page.locator('#dm-list li', { hasText: 'Carol' }).count();
    expect(plain === 0, 'a request, not a DM yet');
    await request.locator('button').click();
    await waitForMessage(alice.page, 'hi alice, it is carol');
    await alice.page.locator('#request-bar:not([hidden])').waitFor();
    expect(await alice.page.locator('#composer').isHidden(), 'no writing before accepting');
    await alice.page.click('#request-accept');
    await alice.page.locator('#dm-list li', { hasText: 'Carol' }).waitFor();
    await alice.page.locator('#request-bar').waitFor({ state: 'hidden' });
    await send(alice.page, 'hello carol');
    await waitForMessage(carol.page, 'hello carol');
  });

  await step('carol closes the DM; alice’s next message brings it back', async () => {
    await carol.page.click('#close-dm');
    await carol.page.locator('#dm-list li', { hasText: 'Alice' }).waitFor({ state: 'detached' });
    await send(alice.page, 'still there?');
    await carol.page.locator('#dm-list li', { hasText: 'Alice' }).waitFor();
  });
}

await run(async (browser, server, people) => {
  await scenario(browser, server, people);
  await dmRequest(browser, server, people);
});
