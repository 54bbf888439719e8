/**
 * Files in messages, without the DOM: the bytes of unsent files kept in
 * IndexedDB ({@link BlobKeeper}) so a message with attachments survives
 * offline and reloads as a text does; the outbox's uploads
 * ({@link OutboxUploader}), which upload a held send's files when the
 * network is back and then let it go with its ids; short-lived download
 * links cached until shortly before they expire ({@link LinkCache}); and
 * the words for sizes and for the api's refusals of an upload.
 *
 * @module attachments
 */

import { AuthRequiredError } from './chat-client.js';

/** A link is used until this long before it expires; then a fresh one is fetched. */
const LINK_MARGIN_MS = 30_000;
/** Retries of an upload that found no network or a busy server: first delay, doubling to the last. */
const RETRY_FIRST_MS = 2_000;
const RETRY_MAX_MS = 60_000;
/** Uploads of one file cut with the socket live before it is taken for refused. */
const CUTS_BEFORE_GIVING_UP = 3;

/** @returns {string} a size for people: `812 B`, `1.4 KB`, `3.2 MB` */
export function formatSize(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/**
 * What stands for a message's text where it has only files (a reply's
 * quote, a pin): their names, or "files" when they are not known.
 * @param {{name: string}[]} [attachments]
 */
export function filesText(attachments) {
  if (!attachments?.length) return 'files';
  return attachments.map((attachment) => attachment.name).join(', ');
}

/** Whether an upload that failed so may work later (no network, a busy or unreachable server). */
export function isRetryable(error) {
  return error?.status === 0 || error?.status === 429 || error?.status === 503 || error?.status === 502 || error?.status === 504;
}

/**
 * Whether an upload's failure with no answer is likelier the api cutting it
 * (it refuses a file over its limit before reading it, and closes the
 * connection; a browser may see only the cut) than the network: the
 * browser is online and the socket is live.
 * @param {import('./chat-client.js').ChatClient|null} client
 */
export function isCut(error, client) {
  return error?.status === 0 && error.code === 'network' && globalThis.navigator?.onLine !== false && client?.state === 'online';
}

/**
 * Why an upload was refused, in words, for a file `name`.
 * @param {{status: number, code: string, message: string}} error an ApiError
 * @param {string} name
 */
export function uploadErrorText(error, name) {
  switch (error.code) {
    case 'payload_too_large':
      return `${name} is too large to send (the server takes files up to its limit, 25 MB unless set otherwise).`;
    case 'type_mismatch':
      return `${name} is not what its name or type says (its contents are of another kind).`;
    case 'invalid_file_name':
      return `${name}: the server does not accept this file name; rename the file.`;
    case 'image_too_large':
      return `${name} is an image too large in pixels to show.`;
    case 'unreadable_image':
      return `${name} looks like an image but cannot be read (damaged?).`;
    case 'not_member':
      return `${name}: you are not a member of this room any more.`;
    case 'rate_limited':
      return `${name}: too many uploads just now; it will be tried again.`;
    case 'network':
      return `${name}: no connection; it will be uploaded when you are back online.`;
    case 'upload_cut':
      return `${name} could not be uploaded: the server closed the connection (the file may be over its size limit).`;
    case 'aborted':
      return `${name}: cancelled.`;
    default:
      return error.status === 503 ? `${name}: the server cannot store files just now; it will be tried again.` : `${name}: ${error.message}`;
  }
}

/**
 * Blobs by key, in IndexedDB (which stores Blobs and Files as they are),
 * with a copy in memory for this page: the page never waits for the disk
 * to use a file it has, and a browser without IndexedDB (a privacy mode)
 * still keeps files until the page goes.
 */
export class BlobKeeper {
  /** @param {string} name the database's name; make it per user and server */
  constructor(name) {
    this.name = name;
    /** @type {Map<string, Blob>} */
    this.memory = new Map();
    /** @type {Promise<IDBDatabase|null>|null} */
    this.database = null;
  }

  /** Keeps a blob (in memory at once, on disk soon after). */
  put(key, blob) {
    this.memory.set(key, blob);
    return this.#run('readwrite', (store) => store.put(blob, key)).catch(() => {});
  }

  /** @returns {Promise<Blob|null>} the blob, or null if it was not kept */
  async get(key) {
    if (this.memory.has(key)) return this.memory.get(key);
    try {
      return (await this.#run('readonly', (store) => store.get(key))) ?? null;
    } catch {
      return null;
    }
  }

  /** Forgets every blob whose key starts with `prefix`. */
  async forget(prefix) {
    for (const key of this.memory.keys()) if (key.startsWith(prefix)) this.memory.delete(key);
    await this.#run('readwrite', (store) => store.delete(IDBKeyRange.bound(prefix, `${prefix}\uffff`))).catch(() => {});
  }

  /** @returns {Promise<string[]>} every key on disk */
  async keys() {
    try {
      return (await this.#run('readonly', (store) => store.getAllKeys())) ?? [];
    } catch {
      return [];
    }
  }

  #open() {
    this.database ??= new Promise((resolve) => {
      if (!globalThis.indexedDB) return resolve(null);
      const request = indexedDB.open(this.name, 1);
      request.onupgradeneeded = () => request.result.createObjectStore('blobs');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => resolve(null);
    });
    return this.database;
  }

  async #run(mode, operation) {
    const database = await this.#open();
    if (!database) throw new Error('no IndexedDB');
    return new Promise((resolve, reject) => {
      const request = operation(database.transaction('blobs', mode).objectStore('blobs'));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
}

/** The key a send's `index`-th file is kept under. */
export function blobKey(clientId, index) {
  return `${clientId}/${index}`;
}

/**
 * Download links by (attachment, variant), each used until shortly before
 * it expires; callers at the same time share one request.
 */
export class LinkCache {
  /** @param {import('./api.js').Api} api */
  constructor(api) {
    this.api = api;
    /** @type {Map<string, {url?: string, expiresAt: number, promise: Promise<string>}>} */
    this.links = new Map();
  }

  /** @returns {string|null} a link still good, without asking (for drawing at once) */
  fresh(id, variant) {
    const link = this.links.get(`${id}:${variant}`);
    return link?.url && link.expiresAt - Date.now() > LINK_MARGIN_MS ? link.url : null;
  }

  /** @returns {Promise<string>} a link good for a while yet */
  get(id, variant = 'file') {
    const key = `${id}:${variant}`;
    const known = this.links.get(key);
    if (known && (!known.url || known.expiresAt - Date.now() > LINK_MARGIN_MS)) return known.promise;
    const entry = { expiresAt: Infinity };
    entry.promise = this.api.attachmentLink(id, variant).then(
      (link) => {
        entry.url = link.url;
        entry.expiresAt = Date.parse(link.expires_at) || Date.now() + 60_000;
        return link.url;
      },
      (error) => {
        this.links.delete(key);
        throw error;
      },
    );
    this.links.set(key, entry);
    return entry.promise;
  }
}

/**
 * Uploads the files of held sends (queued while offline, or whose uploads
 * expired unsent) from the bytes kept in a {@link BlobKeeper}, one file at
 * a time, and hands each send its ids; it then goes out with its own
 * `client_id`. No network or a busy server: tried again later (and at
 * once when the browser is back online). A refusal, or a file no longer
 * kept, fails the send with the reason.
 */
export class OutboxUploader {
  /**
   * @param {object} deps
   * @param {import('./chat-client.js').ChatClient} deps.client
   * @param {import('./api.js').Api} deps.api
   * @param {BlobKeeper} deps.keeper
   * @param {(clientId: string, fraction: number|null) => void} [deps.onProgress] null: done
   */
  constructor({ client, api, keeper, onProgress = () => {} }) {
    this.client = client;
    this.api = api;
    this.keeper = keeper;
    this.onProgress = onProgress;
    this.running = false;
    this.again = false;
    this.retryTimer = null;
    this.retryDelay = RETRY_FIRST_MS;
    this.stopped = false;
    /** @type {Map<string, number>} client id → uploads cut with the socket live, in a row */
    this.cuts = new Map();
  }

  /** Looks for held sends to upload (now, or after the run in progress). */
  kick() {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.#run()
      .catch((error) => console.warn('uploads of the outbox', error))
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  async #run() {
    if (globalThis.navigator?.onLine === false) return;
    for (const entry of this.client.pending()) {
      if (this.stopped) return;
      if (!entry.attachments?.some((attachment) => !attachment.id)) continue;
      // Another tab of mine may be uploading the same send.
      const locks = globalThis.navigator?.locks;
      const upload = () => this.#uploadEntry(entry.client_id);
      const outcome = locks ? await locks.request(`chat.upload:${entry.client_id}`, { ifAvailable: true }, (lock) => (lock ? upload() : 'busy')) : await upload();
      if (outcome === 'retry') {
        this.#retryLater();
        return;
      }
    }
    this.retryDelay = RETRY_FIRST_MS;
  }

  /** @returns {Promise<'done'|'retry'|'failed'>} */
  async #uploadEntry(clientId) {
    for (;;) {
      const entry = this.client.outbox.get(clientId);
      if (!entry) return 'done'; // sent or dropped meanwhile (another tab)
      const index = entry.attachments.findIndex((attachment) => !attachment.id);
      if (index < 0) return 'done';
      const pending = entry.attachments[index];
      const blob = pending.local ? await this.keeper.get(pending.local) : null;
      if (!blob) {
        this.onProgress(clientId, null);
        this.client.failSend(clientId, 'file_lost', `${pending.name} is no longer kept on this device; attach it again`);
        return 'failed';
      }
      const done = entry.attachments.filter((attachment) => attachment.id).length;
      try {
        const uploaded = await this.api.upload(entry.room_id, blob, {
          name: pending.name,
          onProgress: (fraction) => this.onProgress(clientId, (done + fraction) / entry.attachments.length),
        });
        const now = this.client.outbox.get(clientId);
        if (!now) return 'done';
        const attachments = now.attachments.map((attachment, i) => (i === index ? { ...uploaded, local: attachment.local } : attachment));
        if (attachments.every((attachment) => attachment.id)) this.onProgress(clientId, null);
        this.client.setAttachments(clientId, attachments);
      } catch (error) {
        if (error instanceof AuthRequiredError) return 'retry';
        // Cut again and again while the socket lives: the api refuses it.
        const cuts = isCut(error, this.client) ? (this.cuts.get(clientId) ?? 0) + 1 : 0;
        this.cuts.set(clientId, cuts);
        if (isRetryable(error) && cuts < CUTS_BEFORE_GIVING_UP) return 'retry';
        this.cuts.delete(clientId);
        if (cuts) error = { ...error, code: 'upload_cut' };
        this.onProgress(clientId, null);
        this.client.failSend(clientId, error.code, uploadErrorText(error, pending.name));
        return 'failed';
      }
    }
  }

  #retryLater() {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.kick(), this.retryDelay);
    this.retryDelay = Math.min(RETRY_MAX_MS, this.retryDelay * 2);
  }
}
