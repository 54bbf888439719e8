/**
 * Where the page finds the api and the gateways. By default both are this
 * page's own origin (the all-in-one `chat`, or a proxy in front of an api
 * and a gateway pool); a settings form stores other addresses in
 * localStorage, and the query parameters `?api=…&ws=…` override them for
 * one visit.
 *
 * @module settings
 */

const SETTINGS_KEY = 'chat.settings';

/**
 * @typedef {object} Settings
 * @property {{api?: string, ws?: string}} stored what the form saved (empty: defaults)
 * @property {string} apiBase e.g. `http://127.0.0.1:8080`, no trailing slash
 * @property {string[]} wsUrls gateway URLs; each reconnect tries the next
 */

/** @returns {Settings} */
export function loadSettings() {
  const stored = readStored();
  const query = new URLSearchParams(location.search);
  const apiSetting = (query.get('api') ?? stored.api ?? '').trim();
  const wsSetting = (query.get('ws') ?? stored.ws ?? '').trim();
  const apiBase = (apiSetting || location.origin).replace(/\/+$/, '');
  const wsUrls = wsSetting
    ? wsSetting.split(',').map((url) => url.trim()).filter(Boolean)
    : [socketUrlFor(apiBase)];
  return { stored, apiBase, wsUrls };
}

/**
 * Stores the form's values; empty strings mean "this page's own server".
 * @param {{api: string, ws: string}} values
 */
export function saveSettings({ api, ws }) {
  localStorage.setItem(SETTINGS_KEY, JSON.stringify({ api: api.trim(), ws: ws.trim() }));
}

/** The gateway on the api's host: the all-in-one server, or a proxy routing `/v1/ws`. */
function socketUrlFor(apiBase) {
  const url = new URL(`${apiBase}/v1/ws`);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

function readStored() {
  try {
    const stored = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? '{}');
    return stored && typeof stored === 'object' ? stored : {};
  } catch {
    return {};
  }
}
