/**
 * Settings: my display name and my avatar. Saved through the api, which
 * tells everyone who shares a room with me (`user_updated`); the page
 * shows it at once. An avatar is any PNG, JPEG, GIF or WebP up to 5 MiB;
 * the server keeps a 128 px square of it.
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

    // The avatar: a preview, a file picker and a removal.
    // The preview's <img> exists only while there is an avatar to show.
    const preview = h('span', { className: 'avatar-slot' });
    const picker = h('input', { type: 'file', accept: 'image/png,image/jpeg,image/gif,image/webp', attrs: { id: 'settings-avatar-file' }, on: { change: () => upload(picker.files?.[0]) } });
    const remove = h('button', { type: 'button', className: 'ghost small', attrs: { id: 'settings-avatar-remove' }, on: { click: removeAvatar } }, 'Remove');
    const avatarError = h('p', { className: 'form-error', attrs: { role: 'alert', id: 'settings-avatar-error' } });
    container.append(
      h('div', { className: 'avatar-row' }, preview, h('label', { attrs: { for: 'settings-avatar-file' } }, 'Avatar image'), picker, remove),
      avatarError,
    );

    function showAvatar() {
      const path = store.state.me?.avatar ?? null;
      if (!path) preview.replaceChildren();
      else if (preview.firstChild?.getAttribute('src') !== path) {
        preview.replaceChildren(h('img', { className: 'avatar large', src: path, alt: 'Your avatar', width: 64, height: 64, attrs: { id: 'settings-avatar-preview' } }));
      }
      remove.hidden = !path;
    }

    /** The api's refusal of an upload, as thrown by `api.call`. */
    async function refusal(response) {
      const json = await response.json().catch(() => null);
      return { code: json?.error?.code ?? `http_${response.status}`, message: json?.error?.message ?? response.statusText };
    }

    async function upload(file) {
      avatarError.textContent = '';
      if (!file) return;
      if (file.size > 5 * 1024 * 1024) {
        avatarError.textContent = 'That image is over 5 MiB.';
        return;
      }
      try {
        const token = await api.auth.accessToken();
        const response = await fetch(`${api.apiBase}/v1/account/avatar`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': file.type || 'application/octet-stream' },
          body: file,
        });
        if (!response.ok) throw await refusal(response);
        store.dispatch({ type: 'profileUpdated', user: await response.json() });
        showAvatar();
      } catch (failure) {
        avatarError.textContent = failure.code === 'type_mismatch' ? 'That is not a PNG, JPEG, GIF or WebP image.' : refusalText(failure);
      } finally {
        picker.value = '';
      }
    }

    async function removeAvatar() {
      avatarError.textContent = '';
      try {
        const user = await api.call('DELETE', '/v1/account/avatar');
        store.dispatch({ type: 'profileUpdated', user });
        showAvatar();
      } catch (failure) {
        avatarError.textContent = refusalText(failure);
      }
    }

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
        avatarError.textContent = '';
        showAvatar();
      },
    };
  },
};
