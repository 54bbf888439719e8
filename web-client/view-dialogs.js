/**
 * The dialogs: the public room directory, a new group with people to
 * invite, finding someone to message or invite, and "are you sure?".
 *
 * @module view-dialogs
 */

import { ApiError } from './api.js';
import { byId, h, replace } from './dom.js';
import { currentRoom, isOnline, roomName } from './store.js';

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {import('./api.js').Api} deps.api
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @returns {{confirm: (text: string, ok?: string) => Promise<boolean>}}
 */
export function mountDialogs({ store, api, actions }) {
  const { state } = store;
  const el = {
    browseDialog: byId('browse-dialog'),
    publicRooms: byId('public-rooms'),
    groupDialog: byId('group-dialog'),
    groupForm: byId('group-form'),
    groupSearch: byId('group-search'),
    groupResults: byId('group-results'),
    groupChosen: byId('group-chosen'),
    groupError: byId('group-error'),
    peopleDialog: byId('people-dialog'),
    peopleTitle: byId('people-title'),
    peopleSearch: byId('people-search'),
    peopleResults: byId('people-results'),
    confirmDialog: byId('confirm-dialog'),
    confirmText: byId('confirm-text'),
    confirmOk: byId('confirm-ok'),
    confirmCancel: byId('confirm-cancel'),
  };

  function presenceDot(userId) {
    const online = isOnline(state, userId);
    return h('span', {
      className: `presence${online ? ' online' : ''}`,
      title: online ? 'online' : 'offline',
      attrs: { 'aria-label': online ? 'online' : 'offline' },
    });
  }

  function personLabel(user) {
    return h('span', { className: 'who' }, user.display_name, h('small', {}, `@${user.username}`));
  }

  /** A button that runs `action` once, showing its outcome in its label. */
  function actionButton(label, action) {
    const button = h('button', { type: 'button', className: 'small' }, label);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        button.textContent = (await action()) ?? label;
      } catch (error) {
        button.disabled = false;
        actions.report(error, label);
      }
    });
    return button;
  }

  /**
   * Wires a search box to `GET /v1/users?q=`, debounced; `row(user)` builds
   * each result (me excluded).
   */
  function peopleSearch(input, results, row) {
    let timer = null;
    let latest = 0;
    const run = async () => {
      const q = input.value.trim();
      const ticket = ++latest;
      if (!q) return replace(results);
      try {
        const users = (await api.searchUsers(q)).filter((user) => user.id !== state.me.id);
        if (ticket !== latest) return; // a newer search is under way
        store.dispatch({ type: 'usersSeen', users });
        replace(results, ...(users.length ? users.map(row) : [h('li', { className: 'hint' }, 'No one by that name.')]));
      } catch (error) {
        actions.report(error, 'Searching');
      }
    };
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(run, 250);
    });
    return () => {
      input.value = '';
      replace(results);
    };
  }

  // --- people: a DM, or an invitation -----------------------------------------------------

  let peopleMode = 'dm';
  const clearPeople = peopleSearch(el.peopleSearch, el.peopleResults, (user) =>
    h(
      'li',
      {},
      presenceDot(user.id),
      personLabel(user),
      peopleMode === 'dm'
        ? actionButton('Message', async () => {
            await actions.startDm(user);
            el.peopleDialog.close();
            return 'Opened';
          })
        : actionButton('Invite', () => inviteToCurrent(user)),
    ),
  );

  function openPeople(mode) {
    peopleMode = mode;
    const room = currentRoom(state);
    el.peopleTitle.textContent = mode === 'dm' ? 'New message' : `Invite to ${room ? roomName(state, room) : 'room'}`;
    clearPeople();
    el.peopleDialog.showModal();
    el.peopleSearch.focus();
  }

  async function inviteToCurrent(user) {
    const room = currentRoom(state);
    try {
      await api.invite(room.id, user.id);
      return 'Invited';
    } catch (error) {
      if (error instanceof ApiError && error.code === 'already_member') return 'Already in';
      if (error instanceof ApiError && error.code === 'already_invited') return 'Already invited';
      throw error;
    }
  }

  // --- the public rooms ----------------------------------------------------------------------

  async function openBrowse() {
    replace(el.publicRooms, h('li', { className: 'hint' }, 'Loading…'));
    el.browseDialog.showModal();
    try {
      const rooms = await api.publicRooms();
      replace(
        el.publicRooms,
        ...rooms.map((room) =>
          h(
            'li',
            { dataset: { roomId: room.id } },
            h('span', { className: 'who' }, `# ${room.name}`, h('small', {}, room.topic || ' ')),
            state.rooms.has(room.id)
              ? actionButton('Open', () => {
                  el.browseDialog.close();
                  actions.openRoom(room.id);
                })
              : actionButton('Join', async () => {
                  await actions.joinRoom(room);
                  el.browseDialog.close();
                  return 'Joined';
                }),
          ),
        ),
      );
      if (!rooms.length) replace(el.publicRooms, h('li', { className: 'hint' }, 'No public rooms yet.'));
    } catch (error) {
      replace(el.publicRooms);
      actions.report(error, 'Listing rooms');
    }
  }

  // --- a new group ---------------------------------------------------------------------------

  /** People chosen in the group dialog, by id. */
  const chosen = new Map();

  function renderChosen() {
    replace(
      el.groupChosen,
      ...[...chosen.values()].map((user) =>
        h(
          'span',
          { className: 'chip' },
          user.display_name,
          h('button', { type: 'button', title: 'Remove', on: { click: () => { chosen.delete(user.id); renderChosen(); } } }, '×'),
        ),
      ),
    );
  }

  peopleSearch(el.groupSearch, el.groupResults, (user) =>
    h(
      'li',
      {},
      presenceDot(user.id),
      personLabel(user),
      h('button', { type: 'button', className: 'small', on: { click: () => { chosen.set(user.id, user); renderChosen(); } } }, 'Add'),
    ),
  );

  async function createGroup(event) {
    event.preventDefault();
    const form = new FormData(el.groupForm);
    const submit = el.groupForm.querySelector('[type=submit]');
    el.groupError.textContent = '';
    submit.disabled = true;
    try {
      await actions.createGroup({
        name: String(form.get('name')).trim(),
        topic: String(form.get('topic')).trim(),
        kind: form.get('public') ? 'public' : 'private',
        invite: [...chosen.keys()],
      });
      el.groupDialog.close();
    } catch (error) {
      el.groupError.textContent = error.message;
    } finally {
      submit.disabled = false;
    }
  }

  // --- are you sure? --------------------------------------------------------------------------

  /** @type {((ok: boolean) => void)|null} */
  let answer = null;

  /**
   * Asks in the page (a browser's own confirm() blocks everything).
   * @param {string} text
   * @param {string} [ok] the confirming button's label
   * @returns {Promise<boolean>}
   */
  function confirm(text, ok = 'OK') {
    answer?.(false);
    el.confirmText.textContent = text;
    el.confirmOk.textContent = ok;
    el.confirmDialog.showModal();
    el.confirmOk.focus();
    return new Promise((resolve) => {
      answer = resolve;
    });
  }

  function settle(ok) {
    const resolve = answer;
    answer = null;
    if (el.confirmDialog.open) el.confirmDialog.close();
    resolve?.(ok);
  }

  el.confirmOk.addEventListener('click', () => settle(true));
  el.confirmCancel.addEventListener('click', () => settle(false));
  el.confirmDialog.addEventListener('close', () => settle(false));

  // --- wiring ---------------------------------------------------------------------------------

  byId('browse-rooms').addEventListener('click', openBrowse);
  byId('new-dm').addEventListener('click', () => openPeople('dm'));
  byId('invite').addEventListener('click', () => openPeople('invite'));
  byId('new-group').addEventListener('click', () => {
    el.groupForm.reset();
    chosen.clear();
    renderChosen();
    replace(el.groupResults);
    el.groupError.textContent = '';
    el.groupDialog.showModal();
  });
  el.groupForm.addEventListener('submit', createGroup);
  for (const button of document.querySelectorAll('dialog [data-close]')) {
    button.addEventListener('click', () => button.closest('dialog').close());
  }

  return { confirm };
}
