/**
 * Settings: my display name. Saved through the api, which tells everyone
 * who shares a room with me (`user_updated`); the page shows it at once.
 *
 * @module settings-profile
 */

import { h } from './dom.js';
import { refusalText } from './view-settings.js';

/** @type {import('./view-settings.js').SettingsSection} */
export const profileSection = {
  id: 'profile',
  title: 'Profile',
  mount(container, { store, api }) {
    const input = h('input', { name: 'display_name', maxLength: 64, required: true, autocomplete: 'nickname', attrs: { id: 'settings-display-name' } });
    const error = h('p', { className: 'form-error', attrs: { role: 'alert', id: 'settings-profile-error' } });
    const status = h('p', { className: 'hint', attrs: { role: 'status', id: 'settings-profile-status' } });
    const save = h('button', { type: 'submit', className: 'primary' }, 'Save name');
    const form = h(
      'form',
      { className: 'stack', attrs: { id: 'settings-profile-form' }, on: { submit } },
      h('label', { attrs: { for: 'settings-display-name' } }, 'Display name'),
      input,
      error,
      status,
      h('div', { className: 'buttons' }, save),
    );
    container.append(form);

    async function submit(event) {
      event.preventDefault();
      error.textContent = '';
      status.textContent = '';
      const name = input.value.trim();
      if (!name) {
        error.textContent = 'A display name needs at least one character.';
        return;
      }
      save.disabled = true;
      try {
        const user = await api.call('PATCH', '/v1/account/profile', { display_name: name });
        store.dispatch({ type: 'profileUpdated', user });
        input.value = user.display_name;
        status.textContent = 'Saved. People in your rooms see the new name now.';
      } catch (failure) {
        error.textContent = failure.code === 'display_name_taken' ? 'That name is another user’s username.' : refusalText(failure);
      } finally {
        save.disabled = false;
      }
    }

    return {
      open() {
        error.textContent = '';
        status.textContent = '';
        input.value = store.state.me?.display_name ?? '';
      },
    };
  },
};
