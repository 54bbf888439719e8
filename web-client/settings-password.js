/**
 * Settings: changing my password. The api checks the current one like a
 * login; once changed, every other session of mine is logged out (their
 * tabs go back to the login screen) and this one stays.
 *
 * @module settings-password
 */

import { h } from './dom.js';
import { refusalText } from './view-settings.js';

/** @type {import('./view-settings.js').SettingsSection} */
export const passwordSection = {
  id: 'password',
  title: 'Password',
  mount(container, { api, refresh }) {
    const field = (name, label, autocomplete) => {
      const input = h('input', { type: 'password', name, required: true, autocomplete, attrs: { id: `settings-${name}`, maxlength: 256 } });
      return [h('label', { attrs: { for: `settings-${name}` } }, label), input];
    };
    const error = h('p', { className: 'form-error', attrs: { role: 'alert', id: 'settings-password-error' } });
    const status = h('p', { className: 'hint', attrs: { role: 'status', id: 'settings-password-status' } });
    const save = h('button', { type: 'submit', className: 'primary' }, 'Change password');
    const form = h(
      'form',
      { className: 'stack', attrs: { id: 'settings-password-form' }, on: { submit } },
      field('current_password', 'Current password', 'current-password'),
      field('new_password', 'New password (at least 8 characters)', 'new-password'),
      field('repeat_password', 'New password again', 'new-password'),
      error,
      status,
      h('div', { className: 'buttons' }, save),
    );
    container.append(form);

    async function submit(event) {
      event.preventDefault();
      error.textContent = '';
      status.textContent = '';
      const { current_password, new_password, repeat_password } = form.elements;
      if (new_password.value !== repeat_password.value) {
        error.textContent = 'The new password and its repetition differ.';
        repeat_password.focus();
        return;
      }
      if ([...new_password.value].length < 8) {
        error.textContent = 'The new password needs at least 8 characters.';
        new_password.focus();
        return;
      }
      save.disabled = true;
      try {
        await api.call('POST', '/v1/account/password', { current_password: current_password.value, new_password: new_password.value });
        form.reset();
        status.textContent = 'Password changed. Your other sessions have been logged out.';
        refresh();
      } catch (failure) {
        error.textContent = refusalText(failure);
        if (failure.code === 'wrong_password') current_password.focus();
      } finally {
        save.disabled = false;
      }
    }

    return {
      open() {
        // Keep a success notice across the refresh it triggers; clear the rest.
        error.textContent = '';
      },
    };
  },
};
