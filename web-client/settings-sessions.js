/**
 * Settings: where I am logged in. Each session with its browser and times;
 * any but this one can be ended (it is logged out at once, its sockets
 * closed).
 *
 * @module settings-sessions
 */

import { h } from './dom.js';
import { refusalText } from './view-settings.js';

/** @type {import('./view-settings.js').SettingsSection} */
export const sessionsSection = {
  id: 'sessions',
  title: 'Sessions',
  mount(container, { api }) {
    const list = h('ul', { className: 'session-list', attrs: { id: 'settings-sessions' } });
    const error = h('p', { className: 'form-error', attrs: { role: 'alert', id: 'settings-sessions-error' } });
    container.append(h('p', { className: 'hint' }, 'Where you are logged in. End a session you do not recognise.'), list, error);

    const when = (iso) => new Date(iso).toLocaleString();

    function row(session) {
      const end = session.current
        ? h('span', { className: 'hint' }, 'This session')
        : h('button', { type: 'button', className: 'ghost small', on: { click: () => endSession(session) } }, 'End');
      return h(
        'li',
        { dataset: { sessionId: session.id, current: session.current } },
        h('span', { className: 'session-agent' }, session.user_agent || 'Unknown client'),
        h('span', { className: 'hint' }, `since ${when(session.created_at)}, last active ${when(session.last_used_at)}`),
        end,
      );
    }

    async function load() {
      error.textContent = '';
      try {
        const sessions = await api.call('GET', '/v1/auth/sessions');
        list.replaceChildren(...sessions.map(row));
      } catch (failure) {
        error.textContent = refusalText(failure);
      }
    }

    async function endSession(session) {
      error.textContent = '';
      try {
        await api.call('DELETE', `/v1/auth/sessions/${encodeURIComponent(session.id)}`);
      } catch (failure) {
        // Already gone (ended elsewhere): the list below says so.
        if (failure.code !== 'not_found') error.textContent = refusalText(failure);
      }
      await load();
    }

    return { open: load };
  },
};
