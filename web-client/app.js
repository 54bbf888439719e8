/**
 * The chat page, put together: the settings, the login session and the
 * REST api (`api.js`), one {@link Store} (`store.js`) that only actions
 * change, the page's behaviour (`actions.js`), which turns the protocol
 * client's events (`chat-client.js`) and the person's actions into store
 * actions, and the views (`view-*.js`), each drawing its part of the page
 * from the store. User text only ever becomes text nodes (`dom.js`,
 * `format.js`).
 *
 * @module app
 */

import { AuthRequiredError, ChatClient, Outbox } from './chat-client.js';
import { Api, AuthSession } from './api.js';
import { byId, h } from './dom.js';
import { loadSettings } from './settings.js';
import { Store } from './store.js';
import { BlobKeeper } from './attachments.js';
import { createActions } from './actions.js';
import { mountAdmin } from './view-admin.js';
import { mountComposer } from './view-composer.js';
import { mountDialogs } from './view-dialogs.js';
import { mountMembers } from './view-members.js';
import { mountBlocksDialog } from './view-blocks.js';
import { mountRequests } from './view-requests.js';
import { mountInvites } from './view-invites.js';
import { mountMessages } from './view-messages.js';
import { mountModeration } from './view-moderation.js';
import { mountPins } from './view-pins.js';
import { mountRoom } from './view-room.js';
import { mountSearch } from './view-search.js';
import { mountSettings } from './view-settings.js';
import { mountUserLookup } from './user-lookup.js';
import { profileSection } from './settings-profile.js';
import { passwordSection } from './settings-password.js';
import { blocksSection } from './settings-blocks.js';
import { sessionsSection } from './settings-sessions.js';
import { deleteSection } from './settings-delete.js';
import { mountSidebar } from './view-sidebar.js';
import { CallEngine } from './calls.js';
import { mountCall } from './view-call.js';

const NOTICE_SHOWN_MS = 5000;

const settings = await loadSettings();
const auth = new AuthSession({ apiBase: settings.apiBase });
const api = new Api({ apiBase: settings.apiBase, auth });
const store = new Store();

const el = {
  authScreen: byId('auth-screen'),
  authForm: byId('auth-form'),
  authError: byId('auth-error'),
  authSubmit: byId('auth-submit'),
  displayNameField: byId('display-name-field'),
  tabLogin: byId('tab-login'),
  tabRegister: byId('tab-register'),
  chatScreen: byId('chat-screen'),
  messages: byId('messages'),
  toasts: byId('toasts'),
};

/** Shows a notice for a few seconds. */
function notify(text) {
  const item = h('div', { className: 'toast', attrs: { role: 'status' } }, text);
  el.toasts.append(item);
  setTimeout(() => item.remove(), NOTICE_SHOWN_MS);
}

const actions = createActions({ store, api, settings, notify });
const { confirm } = mountDialogs({ store, api, actions });
const messagesView = mountMessages({ store, actions, confirm, notify });
mountRoom({ store, actions, confirm });
// Calls: the engine follows each login's socket; the view draws it.
const calls = new CallEngine({ iceServers: () => api.iceServers(), notify });
mountCall({ store, calls });
mountSidebar({
  store,
  actions,
  isReading: () =>
    document.visibilityState === 'visible' &&
    !el.messages.hidden &&
    el.messages.scrollHeight - el.messages.scrollTop - el.messages.clientHeight < 80,
});
// Its controls come from moderation, mounted after the composer (below).
mountMembers({ store, actions, controls: (row) => moderation.controls(row) });
mountBlocksDialog({ store, actions });
mountRequests({ store, actions, confirm });
mountPins({ store, actions, jumpTo: (id) => messagesView.jumpTo(id) });
mountSearch({ store, api, actions, jumpTo: (id) => messagesView.jumpTo(id) });
mountComposer({ store, actions, notify, onSent: () => messagesView.stickToBottom() });
// After the composer: its hold on Send is applied after the composer's own rule.
const moderation = mountModeration({ store, api, notify });
const invitesView = mountInvites({ store, api, actions, notify });
const adminView = mountAdmin({ api, store, notify });
// Names for senders who are no longer members (left, or deleted).
mountUserLookup({ store, api });
// The settings page, one section a module, in the order shown.
mountSettings({ store, api, notify, confirm, sections: [profileSection, passwordSection, sessionsSection, blocksSection(actions), deleteSection] });

// --- signing in and out -------------------------------------------------------------------

let authMode = 'login';

function setAuthMode(mode) {
  authMode = mode;
  el.tabLogin.setAttribute('aria-selected', String(mode === 'login'));
  el.tabRegister.setAttribute('aria-selected', String(mode === 'register'));
  el.displayNameField.hidden = mode === 'login';
  el.authSubmit.textContent = mode === 'login' ? 'Log in' : 'Create account';
  el.authForm.elements.password.autocomplete = mode === 'login' ? 'current-password' : 'new-password';
  el.authError.textContent = '';
}

async function submitAuth(event) {
  event.preventDefault();
  if (!el.authForm.reportValidity()) return;
  const form = new FormData(el.authForm);
  const credentials = { username: String(form.get('username')).trim(), password: String(form.get('password')) };
  el.authSubmit.disabled = true;
  el.authError.textContent = '';
  try {
    if (authMode === 'login') await auth.login(credentials);
    else await auth.register({ ...credentials, display_name: String(form.get('display_name')).trim() });
  } catch (error) {
    el.authError.textContent = authErrorText(error);
  } finally {
    el.authSubmit.disabled = false;
  }
}

function authErrorText(error) {
  switch (error.code) {
    case 'invalid_credentials':
      return 'Wrong username or password.';
    case 'account_deactivated':
      return 'This account has been deactivated by an administrator.';
    case 'username_taken':
      return 'That username is taken.';
    case 'rate_limited':
      return 'Too many attempts. Wait a minute and try again.';
    case 'network':
      return `Cannot reach the server at ${settings.apiBase}.`;
    default:
      return error.message;
  }
}

function showAuth(message = '') {
  el.chatScreen.hidden = true;
  el.authScreen.hidden = false;
  el.authError.textContent = message;
  document.title = 'chat';
  el.authForm.elements.username.focus();
}

/** Logged in: connect, list rooms, open the last one. */
async function enterChat() {
  if (actions.client) return;
  const me = auth.user;
  store.dispatch({ type: 'loggedIn', user: me });
  el.authScreen.hidden = true;
  el.chatScreen.hidden = false;
  const outbox = new Outbox({ key: `chat.outbox:${settings.apiBase}:${me.id}` });
  // The bytes of files of messages not sent yet, beside the outbox.
  const keeper = new BlobKeeper(`chat.files:${settings.apiBase}:${me.id}`);
  const client = new ChatClient({
    url: settings.wsUrls,
    getToken: socketToken,
    outbox,
    rescueSend: (entry, error) => actions.rescueSend(entry, error),
  });
  client.on('authFailed', () => leaveChat('Your session has ended. Please log in again.'));
  invitesView.start(client);
  calls.attach(client);
  await actions.start(client, { keeper });
  await adminView.enter();
}

/** The socket's token; when handshakes keep failing a REST call tells whether the login is the reason. */
async function socketToken({ reason }) {
  if (reason === 'suspect') {
    await api.me().catch((error) => {
      if (error instanceof AuthRequiredError) throw error;
    });
  }
  const token = await auth.accessToken();
  return { token, expiresAt: auth.expiresAt };
}

function leaveChat(message) {
  calls.detach();
  actions.stop();
  adminView.leave();
  invitesView.stop();
  store.dispatch({ type: 'loggedOut' });
  el.toasts.replaceChildren();
  setAuthMode('login');
  el.authForm.elements.password.value = '';
  showAuth(message);
}

async function logout() {
  const unsent = actions.client?.outbox.list().length ?? 0;
  if (unsent && !(await confirm(`${unsent} message(s) or change(s) are not sent yet and will be lost. Log out anyway?`, 'Log out'))) return;
  actions.client?.outbox.clear();
  await actions.keeper?.forget('');
  await auth.logout();
}

el.tabLogin.addEventListener('click', () => setAuthMode('login'));
el.tabRegister.addEventListener('click', () => setAuthMode('register'));
el.authForm.addEventListener('submit', submitAuth);
byId('logout').addEventListener('click', logout);
auth.onChange((change) => {
  if (change === 'loggedIn') enterChat();
  if (change === 'loggedOut') leaveChat(store.state.me ? 'You have been logged out.' : '');
});

setAuthMode('login');
if (auth.user) enterChat();
else showAuth();
