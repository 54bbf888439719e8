/**
 * Settings: deleting my account, behind a typed confirmation (my
 * username) and my password. Once deleted every session of it ends, this
 * one too, and the page goes back to the login screen; what I sent stays,
 * shown to others as from "deleted user".
 *
 * @module settings-delete
 */

import { h } from './dom.js';
import { refusalText } from './view-settings.js';

/** @type {import('./view-settings.js').SettingsSection} */
export const deleteSection = {
  id: 'delete',
  title: 'Delete account',
  mount(container, { store, api, close }) {
    const confirmInput = h('input', { name: 'confirm_username', required: true, autocomplete: 'off', spellcheck: false, attrs: { id: 'settings-delete-confirm', autocapitalize: 'off' } });
    const password = h('input', { type: 'password', name: 'password', required: true, autocomplete: 'current-password', attrs: { id: 'settings-delete-password', maxlength: 256 } });
    const prompt = h('label', { attrs: { for: 'settings-delete-confirm' } });
    const error = h('p', { className: 'form-error', attrs: { role: 'alert', id: 'settings-delete-error' } });
    const submit = h('button', { type: 'submit', className: 'primary danger' }, 'Delete my account');
    const form = h(
      'form',
      { className: 'stack', attrs: { id: 'settings-delete-form' }, on: { submit: remove } },
      h(
        'p',
        { className: 'hint' },
        'This cannot be undone. You leave every room (rooms you own go to their longest-standing admin or member; a room with nobody else in it is deleted), every session ends, and your username becomes free. Your messages stay, shown as from “deleted user”.',
      ),
      prompt,
      confirmInput,
      h('label', { attrs: { for: 'settings-delete-password' } }, 'Password'),
      password,
      error,
      h('div', { className: 'buttons' }, submit),
    );
    container.append(form);

    async function remove(event) {
      event.preventDefault();
      error.textContent = '';
      const username = store.state.me?.username ?? '';
      if (confirmInput.value.trim() !== username) {
        error.textContent = `Type your username, ${username}, to confirm.`;
        confirmInput.focus();
        return;
      }
      submit.disabled = true;
      try {
        await api.call('DELETE', '/v1/account', { password: password.value });
      } catch (failure) {
        error.textContent = refusalText(failure);
        if (failure.code === 'wrong_password') password.focus();
        submit.disabled = false;
        return;
      }
      form.reset();
      submit.disabled = false;
      close();
      // The account is gone: forget its session here (the server ended it).
      await api.auth.logout();
    }

    return {
      open() {
        form.reset();
        error.textContent = '';
        prompt.textContent = `Type your username (${store.state.me?.username ?? ''}) to confirm`;
      },
    };
  },
};
