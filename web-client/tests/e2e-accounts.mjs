// End-to-end suite of account self-service, in headless Chromium against a
// real `chat`: the settings page (profile, password, sessions) as people
// use it, and what others see of it. Run with
// `CHAT_BIN=$CARGO_TARGET_DIR/debug/chat node web-client/tests/e2e-accounts.mjs`.

import {
  PASSWORD,
  person,
  register,
  waitOnline,
  joinPublicRoom,
  send,
  waitForMessage,
  expect,
  pngOf,
  step,
  run,
} from './e2e/kit.mjs';

const NEW_PASSWORD = 'a much longer new passphrase';

/** Logs `who` in through the login form. */
async function login(who, password) {
  const { page } = who;
  await page.fill('#auth-form input[name=username]', who.name);
  await page.fill('#auth-form input[name=password]', password);
  await page.click('#auth-submit');
  await waitOnline(page);
}

/** Opens the settings page from the sidebar, with the keyboard. */
async function openSettings(page) {
  await page.focus('#open-settings');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#settings-dialog[open]');
}

/** Closes the settings page with Escape. */
async function closeSettings(page) {
  await page.keyboard.press('Escape');
  await page.waitForSelector('#settings-dialog', { state: 'hidden' });
}

/** The session rows of the settings page. */
function sessionRows(page) {
  return page.$$eval('#settings-sessions li', (rows) => rows.map((row) => ({ id: row.dataset.sessionId, current: row.dataset.current === 'true' })));
}

async function scenario(browser, server, people) {
  const alice = await person(browser, server.base, 'alice');
  const bob = await person(browser, server.base, 'bob');
  // Alice's second device: a browser context of its own, same account.
  const laptop = await person(browser, server.base, 'alice');
  laptop.name = 'alice';
  people.push(alice, bob, laptop);

  await step('two users register and meet in a room; Alice logs in on a second device', async () => {
    await register(alice, 'Alice');
    await register(bob, 'Bob');
    await joinPublicRoom(alice.page, 'general');
    await joinPublicRoom(bob.page, 'general');
    await login(laptop, PASSWORD);
  });

  await step('the settings page lists both of her sessions, this one marked', async () => {
    await openSettings(alice.page);
    await alice.page.waitForFunction(() => document.querySelectorAll('#settings-sessions li').length === 2);
    const rows = await sessionRows(alice.page);
    expect(rows.filter((r) => r.current).length === 1, `one current session: ${JSON.stringify(rows)}`);
  });

  await step('a wrong current password or a mistyped repetition is refused inline, and nothing changes', async () => {
    const { page } = alice;
    await page.fill('#settings-current_password', 'not my password');
    await page.fill('#settings-new_password', NEW_PASSWORD);
    await page.fill('#settings-repeat_password', NEW_PASSWORD);
    await page.press('#settings-repeat_password', 'Enter');
    await page.waitForFunction(() => document.querySelector('#settings-password-error').textContent === 'The current password is wrong.');
    await page.fill('#settings-current_password', PASSWORD);
    await page.fill('#settings-repeat_password', `${NEW_PASSWORD}!`);
    await page.press('#settings-repeat_password', 'Enter');
    await page.waitForFunction(() => document.querySelector('#settings-password-error').textContent.includes('differ'));
    expect(await laptop.page.isHidden('#auth-screen'), 'the other device was logged out by a refused change');
  });

  await step('a password change signs the other device out, and this tab stays in', async () => {
    const { page } = alice;
    await page.fill('#settings-current_password', PASSWORD);
    await page.fill('#settings-new_password', NEW_PASSWORD);
    await page.fill('#settings-repeat_password', NEW_PASSWORD);
    await page.press('#settings-repeat_password', 'Enter');
    await page.waitForFunction(() => document.querySelector('#settings-password-status').textContent.startsWith('Password changed'));
    // The other device's socket is closed by the server: back to the login screen.
    await laptop.page.waitForSelector('#auth-screen', { state: 'visible' });
    // The list now holds this session only.
    await page.waitForFunction(() => document.querySelectorAll('#settings-sessions li').length === 1);
    await closeSettings(page);
    await waitOnline(page);
    await send(page, 'still here after the change');
    await waitForMessage(page, 'still here after the change', 'delivered');
    await waitForMessage(bob.page, 'still here after the change');
    // The old password no longer works; the new one does.
    await laptop.page.fill('#auth-form input[name=username]', 'alice');
    await laptop.page.fill('#auth-form input[name=password]', PASSWORD);
    await laptop.page.click('#auth-submit');
    await laptop.page.waitForFunction(() => document.querySelector('#auth-error').textContent === 'Wrong username or password.');
    await login(laptop, NEW_PASSWORD);
  });

  await step('ending a session from the list sends that device to the login screen', async () => {
    const { page } = alice;
    await openSettings(page);
    await page.waitForFunction(() => document.querySelectorAll('#settings-sessions li').length === 2);
    await page.click('#settings-sessions li[data-current="false"] button');
    await laptop.page.waitForSelector('#auth-screen', { state: 'visible' });
    await page.waitForFunction(() => document.querySelectorAll('#settings-sessions li').length === 1);
    await closeSettings(page);
  });

  await step('a display name change is seen live by another user, and another user’s username is refused', async () => {
    const { page } = alice;
    await send(page, 'who am I now?');
    await waitForMessage(bob.page, 'who am I now?');
    await openSettings(page);
    await page.fill('#settings-display-name', 'bob');
    await page.press('#settings-display-name', 'Enter');
    await page.waitForFunction(() => document.querySelector('#settings-profile-error').textContent.includes('username'));
    await page.fill('#settings-display-name', 'Alice Liddell');
    await page.press('#settings-display-name', 'Enter');
    await page.waitForFunction(() => document.querySelector('#settings-profile-status').textContent.startsWith('Saved'));
    await closeSettings(page);
    await page.waitForFunction(() => document.querySelector('#me').textContent.startsWith('Alice Liddell'));
    // A reload shows the new name too (the stored login still has the old one).
    await page.reload();
    await waitOnline(page);
    await page.waitForFunction(() => document.querySelector('#me').textContent.startsWith('Alice Liddell'));
    // Bob sees it on her message and in the member list without a reload.
    await bob.page.waitForFunction(() => {
      const senders = [...document.querySelectorAll('#message-list .sender')].map((name) => name.textContent);
      return senders.includes('Alice Liddell') && !senders.includes('Alice');
    });
    await bob.page.waitForFunction(() => [...document.querySelectorAll('#member-list .name')].some((name) => name.textContent.includes('Alice Liddell')));
  });

  await step('an avatar upload shows in her settings and beside her name in the member list for Bob; a file that is no image is refused', async () => {
    const { page } = alice;
    await openSettings(page);
    await page.setInputFiles('#settings-avatar-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not an image') });
    await page.waitForFunction(() => document.querySelector('#settings-avatar-error').textContent.includes('not a PNG'));
    const photo = await pngOf(page, 640, 480);
    await page.setInputFiles('#settings-avatar-file', { name: 'me.png', mimeType: 'image/png', buffer: photo });
    await page.waitForFunction(() => {
      const img = document.querySelector('#settings-avatar-preview');
      return img && img.complete && img.naturalWidth === 128 && img.naturalHeight === 128;
    });
    await closeSettings(page);
    const mine = await page.evaluate(() => document.querySelector('#settings-avatar-preview').getAttribute('src'));
    await bob.page.waitForFunction(
      (src) => [...document.querySelectorAll('#member-list .avatar')].some((img) => img.getAttribute('src') === src && img.complete && img.naturalWidth === 128),
      mine,
    );
  });

  await step('deleting the account needs the typed username; then her messages show as from "deleted user" to others', async () => {
    const { page } = alice;
    await openSettings(page);
    await page.fill('#settings-delete-confirm', 'alicia');
    await page.fill('#settings-delete-password', NEW_PASSWORD);
    await page.press('#settings-delete-password', 'Enter');
    await page.waitForFunction(() => document.querySelector('#settings-delete-error').textContent.startsWith('Type your username'));
    await page.fill('#settings-delete-confirm', 'alice');
    await page.fill('#settings-delete-password', 'not my password');
    await page.press('#settings-delete-password', 'Enter');
    await page.waitForFunction(() => document.querySelector('#settings-delete-error').textContent === 'The current password is wrong.');
    await page.fill('#settings-delete-password', NEW_PASSWORD);
    await page.press('#settings-delete-password', 'Enter');
    await page.waitForSelector('#auth-screen', { state: 'visible' });
    // Bob: she left, and what she sent stays, from "deleted user".
    await bob.page.waitForFunction(() => {
      const senders = [...document.querySelectorAll('#message-list .sender')].map((name) => name.textContent);
      return senders.includes('deleted user') && !senders.includes('Alice Liddell');
    });
    await waitForMessage(bob.page, 'who am I now?');
    // And after a reload, read anew from the server.
    await bob.page.reload();
    await waitOnline(bob.page);
    await waitForMessage(bob.page, 'who am I now?');
    await bob.page.waitForFunction(() => {
      const senders = [...document.querySelectorAll('#message-list .sender')].map((name) => name.textContent);
      return senders.includes('deleted user') && !senders.some((name) => name.includes('Alice') || name === 'a former member');
    });
    // Its placeholder username is no handle to show.
    expect(!(await bob.page.$$eval('#message-list .handle', (handles) => handles.some((handle) => handle.textContent.includes('deleted-')))), 'a deleted account shows an @handle');
    await bob.page.waitForFunction(() => ![...document.querySelectorAll('#member-list .name')].some((name) => name.textContent.includes('Alice') || name.textContent.includes('deleted')));
    // The name no longer logs in.
    await page.fill('#auth-form input[name=username]', 'alice');
    await page.fill('#auth-form input[name=password]', NEW_PASSWORD);
    await page.click('#auth-submit');
    await page.waitForFunction(() => document.querySelector('#auth-error').textContent === 'Wrong username or password.');
  });

  await step('no script errors on any page', async () => {
    for (const who of people) {
      expect(who.errors.length === 0, `${who.name}'s page threw: ${who.errors.join('; ')}`);
    }
  });
}

await run(scenario);
