/**
 * The settings page: a dialog opened from the sidebar, made of sections,
 * each a small module of its own (`settings-*.js`) that builds its part
 * inside the container it is given. A section is
 * `{ id, title, mount(container, deps) }`; `mount` may return
 * `{ open() }`, called each time the page opens (to load what it shows
 * afresh). app.js lists the sections in order, so a new one is a module
 * and a line there.
 *
 * @module view-settings
 */

import { byId, h } from './dom.js';

/**
 * @typedef {object} SettingsDeps
 * @property {import('./store.js').Store} store
 * @property {import('./api.js').Api} api
 * @property {(text: string) => void} notify
 * @property {(text: string, ok: string) => Promise<boolean>} confirm
 * @property {() => void} refresh reloads every section (one changed what another shows)
 * @property {() => void} close closes the page
 */

/**
 * @typedef {object} SettingsSection
 * @property {string} id short name, used in element ids
 * @property {string} title shown as the section's heading
 * @property {(container: HTMLElement, deps: SettingsDeps) => ({ open?: () => void } | void)} mount
 */

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {import('./api.js').Api} deps.api
 * @param {(text: string) => void} deps.notify
 * @param {(text: string, ok: string) => Promise<boolean>} deps.confirm
 * @param {SettingsSection[]} deps.sections in the order they are shown
 */
export function mountSettings({ store, api, notify, confirm, sections }) {
  const dialog = byId('settings-dialog');
  const list = byId('settings-sections');
  const deps = { store, api, notify, confirm, refresh, close: () => dialog.close() };
  const mounted = sections.map((section) => {
    const titleId = `settings-${section.id}-title`;
    const container = h(
      'section',
      { className: 'settings-section', dataset: { section: section.id }, attrs: { 'aria-labelledby': titleId } },
      h('h3', { attrs: { id: titleId } }, section.title),
    );
    list.append(container);
    return section.mount(container, deps) ?? {};
  });

  function refresh() {
    for (const section of mounted) section.open?.();
  }

  function open() {
    refresh();
    dialog.showModal();
  }

  byId('open-settings').addEventListener('click', open);
  // Logged out (here or by another device): the page goes with the chat.
  store.subscribe((state, changed) => {
    if (changed.has('me') && !state.me && dialog.open) dialog.close();
  });
}

/**
 * The words for a refusal of the api, for a section's inline error.
 * @param {{ code?: string, message: string }} error
 * @returns {string}
 */
export function refusalText(error) {
  switch (error.code) {
    case 'wrong_password':
      return 'The current password is wrong.';
    case 'rate_limited':
      return 'Too many attempts. Wait a minute and try again.';
    case 'network':
      return 'Cannot reach the server. Try again when you are back online.';
    default:
      return error.message;
  }
}
