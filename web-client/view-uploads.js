/**
 * The files about to be sent from the composer: added by the attach
 * button, by dropping them on the conversation, or by pasting them into
 * the text box; each uploaded at once into the open room, shown as a chip
 * (name, size, a progress bar, a remove button, and the reason if the api
 * refused it). Offline, a file waits: the message takes it along and the
 * outbox uploads it once back online. Chips are kept per room.
 *
 * @module view-uploads
 */

import { byId, h, replace } from './dom.js';
import { MAX_ATTACHMENTS } from './chat-client.js';
import { formatSize, isCut, isRetryable, uploadErrorText } from './attachments.js';

/**
 * One file of the composer.
 * @typedef {object} Chip
 * @property {number} key
 * @property {File} file
 * @property {'uploading'|'done'|'waiting'|'refused'} state `waiting`: not
 *   uploaded (no network), the outbox will; `refused`: never sent
 * @property {number} progress 0 to 1
 * @property {object} [attachment] the api's answer, once uploaded
 * @property {string} [error] why it was refused, or why it waits
 * @property {AbortController} [abort]
 * @property {string} [preview] an object URL of the image, for its chip
 */

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(text: string) => void} deps.notify
 * @param {() => void} deps.onChange the files changed (the composer re-checks its Send button)
 */
export function mountUploads({ store, actions, notify, onChange }) {
  const { state } = store;
  const el = {
    list: byId('upload-list'),
    button: byId('attach'),
    input: byId('attach-input'),
    text: byId('composer-input'),
    dropZone: byId('conversation'),
  };
  /** @type {Map<string, Chip[]>} room id → its chips */
  const byRoom = new Map();
  let nextKey = 1;
  let shownRoomId = null;

  const chipsOf = (roomId) => byRoom.get(roomId) ?? [];

  /** Adds files to the open room's message, and starts uploading them. */
  function add(files) {
    const roomId = state.currentRoomId;
    if (!roomId || !files.length) return;
    const chips = chipsOf(roomId);
    const room = MAX_ATTACHMENTS - chips.filter((chip) => chip.state !== 'refused').length;
    if (files.length > room) notify(`A message carries at most ${MAX_ATTACHMENTS} files: ${files.length - Math.max(0, room)} left out.`);
    for (const file of files.slice(0, Math.max(0, room))) {
      const chip = { key: nextKey++, file, state: 'waiting', progress: 0 };
      // An image shows in its chip from the file itself, before any upload.
      if (/^image\/(png|jpeg|gif|webp)$/.test(file.type) && globalThis.URL?.createObjectURL) chip.preview = URL.createObjectURL(file);
      chips.push(chip);
      start(roomId, chip);
    }
    byRoom.set(roomId, chips);
    changed();
  }

  function start(roomId, chip) {
    if (globalThis.navigator?.onLine === false) {
      chip.state = 'waiting';
      chip.error = uploadErrorText({ code: 'network', status: 0 }, chip.file.name);
      return;
    }
    chip.state = 'uploading';
    chip.progress = 0;
    chip.error = undefined;
    chip.abort = new AbortController();
    actions
      .upload(roomId, chip.file, {
        signal: chip.abort.signal,
        onProgress: (fraction) => {
          chip.progress = fraction;
          drawChip(chip);
        },
      })
      .then(
        (attachment) => {
          chip.state = 'done';
          chip.progress = 1;
          chip.attachment = attachment;
        },
        (error) => {
          if (error.code === 'aborted') return;
          // No network, a busy server: the message may still take it, the
          // outbox uploads it later. Anything else is final, and so is a
          // cut while the socket lives (likely a file over the limit).
          const cut = isCut(error, actions.client);
          chip.state = isRetryable(error) && !cut ? 'waiting' : 'refused';
          chip.error = uploadErrorText(cut ? { ...error, code: 'upload_cut' } : error, chip.file.name);
        },
      )
      .finally(() => {
        chip.abort = undefined;
        changed();
      });
  }

  /** A chip goes: its upload stops and its preview is let go. */
  function drop(chip) {
    chip.abort?.abort();
    if (chip.preview) URL.revokeObjectURL(chip.preview);
  }

  function remove(roomId, chip) {
    drop(chip);
    byRoom.set(roomId, chipsOf(roomId).filter((c) => c !== chip));
    changed();
    el.text.focus();
  }

  function changed() {
    render();
    onChange();
  }

  // --- drawing --------------------------------------------------------------------------

  function render() {
    const roomId = state.currentRoomId;
    shownRoomId = roomId;
    const chips = chipsOf(roomId);
    el.list.hidden = chips.length === 0;
    replace(el.list, chips.map((chip) => buildChip(roomId, chip)));
  }

  function buildChip(roomId, chip) {
    const progress = h('progress', { max: 1, value: chip.progress });
    return h(
      'li',
      {
        className: `upload-chip ${chip.state}`,
        dataset: { key: chip.key, state: chip.state, progress: Math.round(chip.progress * 100) },
        title: chip.error ?? `${chip.file.name} (${formatSize(chip.file.size)})`,
      },
      chip.preview
        ? h('img', {
            className: 'chip-preview',
            src: chip.preview,
            alt: '',
            // Refused (a server whose policy does not allow blob: images): no preview.
            on: { error: (event) => event.target.remove() },
          })
        : null,
      h('span', { className: 'file-name' }, chip.file.name || 'pasted file'),
      h('span', { className: 'file-size' }, formatSize(chip.file.size)),
      chip.state === 'uploading' ? progress : null,
      chip.error ? h('span', { className: 'upload-error', attrs: { role: chip.state === 'refused' ? 'alert' : 'status' } }, chip.error) : null,
      h(
        'button',
        { type: 'button', className: 'ghost small remove', attrs: { 'aria-label': `Remove ${chip.file.name}` }, on: { click: () => remove(roomId, chip) } },
        '×',
      ),
    );
  }

  /** Progress moves often: only the chip's bar and its data change. */
  function drawChip(chip) {
    const item = el.list.querySelector(`[data-key="${chip.key}"]`);
    if (!item) return;
    item.dataset.progress = String(Math.round(chip.progress * 100));
    const bar = item.querySelector('progress');
    if (bar) bar.value = chip.progress;
  }

  // --- how files come ---------------------------------------------------------------------

  el.button.addEventListener('click', () => el.input.click());
  el.input.addEventListener('change', () => {
    add([...el.input.files]);
    el.input.value = ''; // the same file may be chosen again
    el.text.focus();
  });
  el.text.addEventListener('paste', (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (!files.length) return;
    add(files);
    // A copied image often comes with its markup too; the text box takes only text.
    if (!event.clipboardData.types.includes('text/plain')) event.preventDefault();
  });
  const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
  el.dropZone.addEventListener('dragover', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = state.currentRoomId ? 'copy' : 'none';
    if (state.currentRoomId) el.dropZone.classList.add('dropping');
  });
  // A file dropped anywhere else would make the browser open it in place
  // of the chat.
  for (const type of ['dragover', 'drop']) {
    document.addEventListener(type, (event) => {
      if (!carriesFiles(event) || el.dropZone.contains(event.target)) return;
      event.preventDefault();
      if (type === 'dragover') event.dataTransfer.dropEffect = 'none';
    });
  }
  el.dropZone.addEventListener('dragleave', (event) => {
    if (!el.dropZone.contains(event.relatedTarget)) el.dropZone.classList.remove('dropping');
  });
  el.dropZone.addEventListener('drop', (event) => {
    el.dropZone.classList.remove('dropping');
    if (!carriesFiles(event) && !event.dataTransfer?.files?.length) return;
    event.preventDefault();
    add([...event.dataTransfer.files]);
  });
  // Back online: the files that waited upload now.
  globalThis.addEventListener('online', () => {
    for (const [roomId, chips] of byRoom) {
      for (const chip of chips) if (chip.state === 'waiting') start(roomId, chip);
    }
    changed();
  });

  store.subscribe((_state, topics) => {
    if (topics.has('current') && state.currentRoomId !== shownRoomId) changed();
    if (topics.has('me') && !state.me) {
      for (const chips of byRoom.values()) for (const chip of chips) drop(chip);
      byRoom.clear();
      changed();
    }
  });

  return {
    /** @returns {boolean} whether a file of the open room is still uploading */
    busy: () => chipsOf(state.currentRoomId).some((chip) => chip.state === 'uploading'),
    /** @returns {{file: File, attachment?: object}[]} the files a message takes: uploaded, or waiting for the network */
    ready: () =>
      chipsOf(state.currentRoomId)
        .filter((chip) => chip.state === 'done' || chip.state === 'waiting')
        .map((chip) => ({ file: chip.file, attachment: chip.attachment })),
    /** The message went: its files go with it (refused ones too, their reason was shown). */
    clear() {
      // The upload is done or handed to the outbox, which keeps the file itself.
      for (const chip of chipsOf(state.currentRoomId)) if (chip.preview) URL.revokeObjectURL(chip.preview);
      byRoom.delete(state.currentRoomId);
      changed();
    },
  };
}
