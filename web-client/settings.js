/**
 * Where the page finds the api and the gateways: only where the operator
 * who serves the page says, never anywhere a link could say. A page that a
 * URL such as `/?ws=ws://elsewhere/` could point at another server would
 * hand that server its access token on the handshake, and every renewed
 * token and typed message after it.
 *
 * The api is always this page's own origin (the api answers other
 * origins only if its operator lists them in `CHAT_CORS_ORIGINS`, for
 * third-party clients; this page never needs that). The gateways
 * are this origin's `/v1/ws`, unless `config.json`, served beside this
 * page by its operator, lists others:
 *
 *     { "gateways": ["wss://ws1.example.org/v1/ws", "wss://ws2.example.org/v1/ws"] }
 *
 * Each reconnect tries the next. The server that serves the page lists the
 * same origins in its Content-Security-Policy's `connect-src`, so the
 * browser itself refuses any other.
 *
 * @module settings
 */

/** The operator's configuration, beside index.html. */
const CONFIG_URL = 'config.json';

/**
 * @typedef {object} Settings
 * @property {string} apiBase this page's origin, e.g. `http://127.0.0.1:8080`
 * @property {string[]} wsUrls gateway URLs; each reconnect tries the next
 */

/**
 * Reads `config.json` (same origin, never cached stale); with none, or one
 * that lists no usable gateway, the page's own origin serves both.
 * @returns {Promise<Settings>}
 */
export async function loadSettings() {
  let config = {};
  try {
    const response = await fetch(CONFIG_URL, { cache: 'no-cache', credentials: 'omit' });
    if (response.ok) config = await response.json();
  } catch {
    // No configuration: this origin serves everything.
  }
  return settingsFrom(config, location.origin);
}

/**
 * The settings a configuration gives a page served from `origin`. Only
 * `ws:`/`wss:` URLs count as gateways; anything else in the list is ignored.
 * @param {unknown} config the parsed `config.json`
 * @param {string} origin e.g. `http://127.0.0.1:8080`
 * @returns {Settings}
 */
export function settingsFrom(config, origin) {
  const listed = config && typeof config === 'object' && Array.isArray(config.gateways) ? config.gateways : [];
  const wsUrls = listed.map(gatewayUrl).filter((url) => url !== null);
  return { apiBase: origin, wsUrls: wsUrls.length ? wsUrls : [socketUrlFor(origin)] };
}

/** A gateway URL as given, if it is a WebSocket URL. */
function gatewayUrl(value) {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value.trim());
    return url.protocol === 'ws:' || url.protocol === 'wss:' ? url.href : null;
  } catch {
    return null;
  }
}

/** The gateway on the page's own host: the all-in-one server, or a proxy routing `/v1/ws`. */
function socketUrlFor(origin) {
  const url = new URL('/v1/ws', origin);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}
