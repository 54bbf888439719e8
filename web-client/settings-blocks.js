/**
 * Settings: the people I block, each with Unblock: the same list as the
 * top bar's "Blocked users" dialog (view-blocks.js), on the settings page.
 *
 * @module settings-blocks
 */

import { h } from './dom.js';
import { mountBlockedUsers } from './view-blocks.js';

/**
 * The section, over the page's actions (blocking lives there).
 * @param {ReturnType<import('./actions.js').createActions>} actions
 * @returns {import('./view-settings.js').SettingsSection}
 */
export function blocksSection(actions) {
  return {
    id: 'blocks',
    title: 'Blocked users',
    mount(container, { store }) {
      const holder = h('div', { attrs: { id: 'settings-blocks' } });
      container.append(holder);
      const view = mountBlockedUsers({ container: holder, store, actions, heading: false });
      return { open: () => view.refresh() };
    },
  };
}
