// End-to-end test of server administration in the web client, in headless
// Chromium against a real `chat`: the first admin made from the command
// line against the server's data dir, a member's report of a message in
// the admin's queue (the message deleted, the report resolved), an admin
// deactivating a connected user (whose page shows they were signed out and
// who cannot log in again), and the audit log showing each action.
//
//   CHAT_BIN=$CARGO_TARGET_DIR/debug/chat node web-client/tests/e2e-admin.mjs
//
// The server, the people and the step runner are the kit's (`e2e/kit.mjs`).

import { spawnSync } from 'node:child_process';
import {
  CHAT_BIN,
  PASSWORD,
  person,
  register,
  waitOnline,
  joinPublicRoom,
  send,
  messageId,
  act,
  waitTombstone,
  expect,
  step,
  run,
} from './e2e/kit.mjs';

/** Runs `chat admin <args>` against the server's store; its exit status and output. */
function chatAdmin(server, ...args) {
  const result = spawnSync(CHAT_BIN, ['admin', ...args], {
    env: { ...process.env, CHAT_DATA_DIR: server.dataDir, CHAT_LOG: 'warn' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr.trim() };
}

/** Opens the admin dialog on a tab. */
async function adminTab(page, tab) {
  if (!(await page.locator('#admin-dialog').evaluate((d) => d.open))) await page.click('#admin-open');
  await page.click(`#admin-dialog [role="tab"][data-tab="${tab}"]`);
}

async function scenario(browser, server, people) {
  const root = await person(browser, server.base, 'root');
  const alice = await person(browser, server.base, 'alice');
  const bob = await person(browser, server.base, 'bob');
  people.push(root, alice, bob);

  await step('the first admin is made with `chat admin grant` on the server\'s store', async () => {
    await register(root, 'Root');
    expect(await root.page.locator('#admin-open').isHidden(), 'a user with no server role is offered the admin page');
    const unknown = chatAdmin(server, 'grant', 'nobody');
    expect(unknown.status !== 0, 'granting an unknown user succeeded');
    expect(unknown.stderr === 'chat admin: no user named "nobody"', `unexpected error output: ${unknown.stderr}`);
    const granted = chatAdmin(server, 'grant', 'root');
    expect(granted.status === 0, `chat admin grant failed: ${granted.stderr}`);
    expect(granted.stdout === 'root is now a server admin', `unexpected output: ${granted.stdout}`);
    await root.page.reload();
    await waitOnline(root.page);
    await root.page.waitForSelector('#admin-open:not([hidden])');
  });

  let spam;
  await step('a member reports a message and its sender; both show in the admin\'s queue, which deletes the message and resolves its report', async () => {
    await register(alice, 'Alice');
    await register(bob, 'Bob');
    for (const who of [alice, bob]) await joinPublicRoom(who.page, 'general');
    await send(bob.page, 'buy cheap pills now');
    spam = await messageId(alice.page, 'buy cheap pills now');
    await act(alice.page, spam, 'report');
    await alice.page.fill('#report-form textarea[name=reason]', 'spam, again');
    await alice.page.click('#report-form button[type=submit]');
    await alice.page.waitForSelector('.toast:has-text("report was sent")');
    expect(!(await alice.page.locator('#report-dialog').evaluate((d) => d.open)), 'the report dialog stayed open');
    // The same message twice: the dialog says it is already being looked at.
    await act(alice.page, spam, 'report');
    await alice.page.fill('#report-form textarea[name=reason]', 'spam, still');
    await alice.page.click('#report-form button[type=submit]');
    await alice.page.waitForFunction(() => document.querySelector('#report-error')?.textContent.includes('already reported'));
    await alice.page.click('#report-dialog [data-close]');
    // And the sender himself, from the member list.
    const member = alice.page.locator('#member-list li', { hasText: '@bob' });
    await member.hover();
    await member.getByRole('button', { name: 'Report Bob' }).click();
    await alice.page.fill('#report-form textarea[name=reason]', 'keeps spamming');
    await alice.page.click('#report-form button[type=submit]');
    await alice.page.waitForFunction(() => !document.querySelector('#report-dialog').open);

    await adminTab(root.page, 'reports');
    const report = root.page.locator('#admin-report-list li[data-state="open"]', { hasText: 'spam, again' });
    await report.waitFor();
    expect((await report.textContent()).includes('@bob'), 'the report does not name the sender');
    await report.getByRole('button', { name: 'Delete message' }).click();
    await waitTombstone(alice.page, spam);
    await report.getByRole('textbox', { name: 'Resolution note' }).fill('removed the spam');
    await report.getByRole('button', { name: 'Resolve' }).click();
    await report.waitFor({ state: 'detached' });
    // The report of the user stays open, naming him.
    const ofBob = root.page.locator('#admin-report-list li[data-state="open"]', { hasText: 'keeps spamming' });
    expect((await ofBob.textContent()).startsWith('@bob'), 'the report of a user does not name him');
    expect((await root.page.locator('#admin-report-list li').count()) === 1, 'the resolved report is still in the open queue');
    await root.page.check('#admin-show-resolved');
    await root.page.locator('#admin-report-list li[data-state="resolved"]', { hasText: 'removed the spam' }).waitFor();
  });

  await step('an admin deactivates a connected user: their page shows they were signed out, and they cannot log in again', async () => {
    await waitOnline(bob.page);
    await adminTab(root.page, 'users');
    await root.page.fill('#admin-user-search', 'bob');
    const row = root.page.locator('#admin-user-list li[data-username="bob"]');
    await row.getByRole('button', { name: 'Deactivate' }).click();
    await root.page.locator('#admin-user-list li[data-username="bob"][data-state="deactivated"]').waitFor();
    // Bob did nothing: his socket was closed and his page says so.
    await bob.page.waitForSelector('#auth-screen:not([hidden])');
    await bob.page.waitForFunction(() => document.querySelector('#auth-error')?.textContent.includes('session has ended'));
    expect(await bob.page.locator('#chat-screen').isHidden(), 'bob still sees the chat');
    await bob.page.fill('#auth-form input[name=username]', 'bob');
    await bob.page.fill('#auth-form input[name=password]', PASSWORD);
    await bob.page.click('#auth-submit');
    await bob.page.waitForFunction(() => document.querySelector('#auth-error')?.textContent.includes('deactivated'));
    expect(await bob.page.locator('#chat-screen').isHidden(), 'a deactivated account logged in');
  });

  await step('the audit log shows who deactivated whom, the deletion and the resolution', async () => {
    await adminTab(root.page, 'audit');
    const entry = (action, text) => root.page.locator(`#admin-audit-list li[data-action="${action}"]`, { hasText: text });
    await entry('deactivate', '@root deactivate @bob').waitFor();
    await entry('resolve_report', 'removed the spam').waitFor();
    await entry('delete_message', '@bob').waitFor();
    await entry('grant_role', 'command line').waitFor();
    const actions = await root.page.$$eval('#admin-audit-list li', (items) => items.map((li) => li.dataset.action));
    expect(
      JSON.stringify(actions) === JSON.stringify(['deactivate', 'resolve_report', 'delete_message', 'grant_role']),
      `the audit log is not newest first: ${actions}`,
    );
  });
}

await run(scenario);
