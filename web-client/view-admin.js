/**
 * Server administration, for the server's admins and moderators: the
 * Admin button (shown when `GET /v1/users/me` carries a `server_role`),
 * and its dialog: users with search and state, deactivate and reactivate,
 * grant and revoke server roles (admins only); the report queue with
 * "delete the message" and resolve; the audit log, paged. And, for
 * everyone, the Report dialog: a message's toolbar and a member's row ask
 * for it with a `chat:report` event on `document`, so those views need no
 * handle on this one.
 *
 * @module view-admin
 */

import { byId, h, replace } from './dom.js';

/** Most entries one page of the audit log or the user list asks for. */
const PAGE = 50;

/**
 * @param {{api: import('./api.js').Api, store: import('./store.js').Store, notify: (text: string) => void}} deps
 * @returns {{enter: () => Promise<void>, leave: () => void}}
 */
export function mountAdmin({ api, store, notify }) {
  const el = {
    open: byId('admin-open'),
    dialog: byId('admin-dialog'),
    search: byId('admin-user-search'),
    users: byId('admin-user-list'),
    reports: byId('admin-report-list'),
    reportsEmpty: byId('admin-reports-empty'),
    showResolved: byId('admin-show-resolved'),
    audit: byId('admin-audit-list'),
    auditMore: byId('admin-audit-more'),
    error: byId('admin-error'),
    reportDialog: byId('report-dialog'),
    reportForm: byId('report-form'),
    reportWhat: byId('report-what'),
    reportError: byId('report-error'),
  };
  /** My server role: `admin`, `moderator` or null. */
  let role = null;
  /** Usernames by id, of every account the dialog has listed. */
  const names = new Map();
  /** What the Report dialog is about. */
  let reporting = null;
  let searchTimer = null;
  let auditCursor = null;

  const nameOf = (id) => (id ? (names.get(id) ?? store.state.users.get(id)?.username ?? id.slice(0, 8)) : 'command line');

  /** Runs an admin call, showing its refusal in the dialog. */
  async function attempt(run) {
    el.error.textContent = '';
    try {
      return await run();
    } catch (error) {
      el.error.textContent = error.message;
      return undefined;
    }
  }

  // --- users ----------------------------------------------------------------------------

  async function loadUsers() {
    const q = el.search.value.trim();
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (q) query.set('q', q);
    const accounts = await attempt(() => api.call('GET', `/v1/admin/users?${query}`));
    if (!accounts) return;
    for (const account of accounts) names.set(account.id, account.username);
    replace(el.users, accounts.map(userRow));
  }

  function userRow(account) {
    const me = account.id === store.state.me?.id;
    const deactivated = Boolean(account.deactivated_at);
    const button = (label, run) =>
      h('button', { type: 'button', className: 'ghost small', on: { click: async () => { if ((await attempt(run)) !== undefined) await loadUsers(); } } }, label);
    const path = `/v1/admin/users/${account.id}`;
    return h(
      'li',
      { dataset: { userId: account.id, username: account.username, state: deactivated ? 'deactivated' : 'active' } },
      h('span', { className: 'who' }, account.display_name, h('small', {}, `@${account.username}`)),
      account.server_role ? h('span', { className: 'role' }, account.server_role) : null,
      deactivated ? h('span', { className: 'role deactivated' }, 'deactivated') : null,
      // Moderators act on ordinary accounts only (the server says so too).
      me || (role !== 'admin' && account.server_role) ? null : deactivated
        ? button('Reactivate', () => api.call('POST', `${path}/reactivate`))
        : button('Deactivate', () => api.call('POST', `${path}/deactivate`)),
      role !== 'admin' || me
        ? null
        : account.server_role
          ? button('Remove role', () => api.call('PUT', `${path}/role`, { role: null }))
          : [
              button('Make moderator', () => api.call('PUT', `${path}/role`, { role: 'moderator' })),
              button('Make admin', () => api.call('PUT', `${path}/role`, { role: 'admin' })),
            ],
    );
  }

  // --- reports --------------------------------------------------------------------------

  async function loadReports() {
    const state = el.showResolved.checked ? 'resolved' : 'open';
    const reports = await attempt(() => api.call('GET', `/v1/admin/reports?state=${state}&limit=${PAGE}`));
    if (!reports) return;
    el.reportsEmpty.hidden = reports.length > 0;
    replace(el.reports, reports.map(reportRow));
  }

  function reportRow(report) {
    const target = report.target;
    const what = target.kind === 'message' ? `a message by @${nameOf(report.subject)}` : `@${nameOf(report.subject)}`;
    const note = h('input', { type: 'text', maxLength: 512, placeholder: 'Note', attrs: { 'aria-label': 'Resolution note' } });
    const resolve = async () => {
      const text = note.value.trim() || 'resolved';
      if ((await attempt(() => api.call('POST', `/v1/admin/reports/${report.id}/resolve`, { note: text }))) !== undefined) await loadReports();
    };
    const removeMessage = async () => {
      const path = `/v1/rooms/${target.room_id}/messages/${target.event_id}`;
      if ((await attempt(() => api.call('DELETE', path))) !== undefined) notify('The message was deleted.');
    };
    return h(
      'li',
      { className: 'report', dataset: { reportId: report.id, state: report.resolution ? 'resolved' : 'open' } },
      h('span', { className: 'who' }, `${what}: “${report.reason}”`, h('small', {}, `reported by @${nameOf(report.reporter)}`)),
      report.resolution
        ? h('span', { className: 'hint' }, `Resolved by @${nameOf(report.resolution.by)}: ${report.resolution.note}`)
        : [
            target.kind === 'message' ? h('button', { type: 'button', className: 'ghost small', on: { click: removeMessage } }, 'Delete message') : null,
            note,
            h('button', { type: 'button', className: 'small', on: { click: resolve } }, 'Resolve'),
          ],
    );
  }

  // --- audit log ------------------------------------------------------------------------

  async function loadAudit({ more = false } = {}) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (more && auditCursor) query.set('before', auditCursor);
    const entries = await attempt(() => api.call('GET', `/v1/admin/audit?${query}`));
    if (!entries) return;
    const rows = entries.map((entry) =>
      h(
        'li',
        { dataset: { action: entry.action } },
        h('time', { dateTime: entry.at }, new Date(entry.at).toLocaleString()),
        ' ',
        h('strong', {}, `@${nameOf(entry.actor)}`),
        ` ${entry.action.replaceAll('_', ' ')}`,
        entry.target_user ? ` @${nameOf(entry.target_user)}` : '',
        entry.detail ? `: ${entry.detail}` : '',
      ),
    );
    if (more) el.audit.append(...rows);
    else replace(el.audit, rows);
    auditCursor = entries.at(-1)?.id ?? auditCursor;
    el.auditMore.hidden = entries.length < PAGE;
  }

  // --- the dialog -----------------------------------------------------------------------

  function showTab(tab) {
    for (const button of el.dialog.querySelectorAll('[role="tab"]')) button.setAttribute('aria-selected', String(button.dataset.tab === tab));
    for (const panel of el.dialog.querySelectorAll('[data-panel]')) panel.hidden = panel.dataset.panel !== tab;
    if (tab === 'users') loadUsers();
    if (tab === 'reports') loadReports();
    if (tab === 'audit') loadAudit();
  }

  el.open.addEventListener('click', () => {
    el.error.textContent = '';
    el.dialog.showModal();
    showTab('users');
  });
  for (const button of el.dialog.querySelectorAll('[role="tab"]')) button.addEventListener('click', () => showTab(button.dataset.tab));
  el.search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadUsers, 250);
  });
  el.showResolved.addEventListener('change', loadReports);
  el.auditMore.addEventListener('click', () => loadAudit({ more: true }));

  // --- reporting, for everyone -------------------------------------------------------------

  document.addEventListener('chat:report', (event) => {
    reporting = event.detail;
    el.reportWhat.textContent = reporting.label;
    el.reportError.textContent = '';
    el.reportForm.elements.reason.value = '';
    el.reportDialog.showModal();
  });
  el.reportForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const reason = el.reportForm.elements.reason.value.trim();
    if (!reason) {
      el.reportError.textContent = 'Say why.';
      return;
    }
    try {
      await api.call('POST', '/v1/reports', { target: reporting.target, reason });
      el.reportDialog.close();
      notify('Thank you: the report was sent to the moderators.');
    } catch (error) {
      el.reportError.textContent = error.code === 'already_reported' ? 'You already reported this; it is being looked at.' : error.message;
    }
  });

  return {
    /** Logged in: learns my server role and shows the Admin button for staff. */
    async enter() {
      const me = await api.me().catch(() => null);
      role = me?.server_role ?? null;
      el.open.hidden = !role;
    },
    /** Logged out: nothing of the last account stays. */
    leave() {
      role = null;
      el.open.hidden = true;
      names.clear();
      if (el.dialog.open) el.dialog.close();
      if (el.reportDialog.open) el.reportDialog.close();
    },
  };
}

/**
 * Asks for the Report dialog (view-admin listens).
 * @param {{kind: 'message', room_id: string, event_id: string}|{kind: 'user', user_id: string}} target
 * @param {string} label what is reported, in words
 */
export function requestReport(target, label) {
  document.dispatchEvent(new CustomEvent('chat:report', { detail: { target, label } }));
}
