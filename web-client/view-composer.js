/**
 * The composer: the text box (Enter sends, Shift+Enter breaks the line),
 * the message being answered above it, `@` completion of the room's
 * members (and `@room` for its owners and admins), and the files to send
 * (`view-uploads.js`): Send works with text or at least one file, once no
 * file is still uploading.
 *
 * @module view-composer
 */

import { byId, h, replace } from './dom.js';
import { plainText } from './format.js';
import { canMentionRoom, currentRoom, timelineOf, userName } from './store.js';
import { mountUploads } from './view-uploads.js';
import { filesText } from './attachments.js';

/** Most people offered at once. */
const MAX_SUGGESTIONS = 8;
/** An `@` that starts a name (not inside one, as in an e-mail address), up to the caret. */
const MENTION_BEFORE_CARET = /(?:^|[^A-Za-z0-9_.\-@])@([A-Za-z0-9_.-]{0,32})$/;

/**
 * @param {object} deps
 * @param {import('./store.js').Store} deps.store
 * @param {ReturnType<import('./actions.js').createActions>} deps.actions
 * @param {(text: string) => void} deps.notify
 * @param {() => void} deps.onSent called after a message of mine is queued
 */
export function mountComposer({ store, actions, notify, onSent }) {
  const { state } = store;
  const el = {
    form: byId('composer'),
    input: byId('composer-input'),
    mentions: byId('mention-list'),
    replyBar: byId('reply-bar'),
    replyName: byId('reply-name'),
    replyText: byId('reply-text'),
    replyCancel: byId('reply-cancel'),
    send: byId('send'),
  };
  const uploads = mountUploads({ store, actions, notify, onChange: updateSend });
  /** The open suggestions: `{start, query, options, selected}` or null. */
  let suggest = null;
  let shownRoomId = null;
  let shownReply = null;

  function render(_state, changed) {
    const room = currentRoom(state);
    if (room?.id !== shownRoomId) {
      shownRoomId = room?.id ?? null;
      closeSuggestions();
      if (room) el.input.focus();
    }
    if (changed.has('ui') || changed.has('current') || changed.has(`timeline:${room?.id}`)) renderReply(room);
  }

  function renderReply(room) {
    const reply = state.ui.replyTo;
    const quoted = room && reply?.roomId === room.id ? timelineOf(state, room.id).byId(reply.id) : null;
    el.replyBar.hidden = !quoted;
    const started = quoted && shownReply !== reply;
    shownReply = quoted ? reply : null;
    if (!quoted) return;
    el.replyName.textContent = userName(state, quoted.sender);
    el.replyText.textContent = quoted.deleted ? 'message deleted' : plainText(quoted.body) || filesText(quoted.attachments);
    // A new reply: write it.
    if (started) el.input.focus();
  }

  /** Send works with text or a file, and not while a file is still uploading. */
  function updateSend() {
    const files = uploads.ready().length;
    el.send.disabled = uploads.busy() || (!el.input.value.trim() && !files);
    el.send.title = uploads.busy() ? 'Waiting for the files to upload' : '';
  }

  function sendComposed() {
    if (uploads.busy()) return;
    if (!actions.send(el.input.value, uploads.ready())) return;
    el.input.value = '';
    uploads.clear();
    fit();
    closeSuggestions();
    onSent();
  }

  function fit() {
    el.input.style.height = 'auto';
    el.input.style.height = `${Math.min(el.input.scrollHeight + 2, 160)}px`;
  }

  // --- @ completion ----------------------------------------------------------------------

  function updateSuggestions() {
    const room = currentRoom(state);
    const caret = el.input.selectionStart;
    const found = room && caret === el.input.selectionEnd ? MENTION_BEFORE_CARET.exec(el.input.value.slice(0, caret)) : null;
    if (!found) return closeSuggestions();
    const query = found[1].toLowerCase();
    const options = [];
    for (const id of state.members.get(room.id)?.keys() ?? []) {
      const user = state.users.get(id);
      if (!user || id === state.me.id) continue;
      const username = user.username.toLowerCase();
      const words = user.display_name.toLowerCase().split(/\s+/);
      if (username.startsWith(query) || words.some((word) => word.startsWith(query))) {
        options.push({ username: user.username, label: user.display_name });
      }
    }
    options.sort((a, b) => a.username.localeCompare(b.username));
    if (canMentionRoom(room) && 'room'.startsWith(query)) options.push({ username: 'room', label: 'everyone in the room' });
    if (!options.length) return closeSuggestions();
    const keep = suggest?.options[suggest.selected]?.username;
    const selected = Math.max(0, options.findIndex((o) => o.username === keep));
    suggest = { start: caret - found[1].length - 1, query, options: options.slice(0, MAX_SUGGESTIONS), selected: Math.min(selected, MAX_SUGGESTIONS - 1) };
    renderSuggestions();
  }

  function renderSuggestions() {
    replace(
      el.mentions,
      suggest.options.map((option, index) =>
        h(
          'li',
          {
            id: `mention-option-${index}`,
            className: index === suggest.selected ? 'selected' : '',
            dataset: { username: option.username },
            attrs: { role: 'option', 'aria-selected': String(index === suggest.selected) },
            on: {
              // Before the text box loses focus.
              pointerdown: (event) => {
                event.preventDefault();
                choose(index);
              },
            },
          },
          h('span', { className: 'who' }, option.label),
          ' ',
          h('small', { className: 'handle' }, `@${option.username}`),
        ),
      ),
    );
    el.mentions.hidden = false;
    el.input.setAttribute('aria-expanded', 'true');
    el.input.setAttribute('aria-activedescendant', `mention-option-${suggest.selected}`);
  }

  function closeSuggestions() {
    suggest = null;
    el.mentions.hidden = true;
    el.mentions.replaceChildren();
    el.input.setAttribute('aria-expanded', 'false');
    el.input.removeAttribute('aria-activedescendant');
  }

  function choose(index) {
    const option = suggest?.options[index];
    if (!option) return;
    const { value } = el.input;
    const caret = el.input.selectionStart;
    const before = `${value.slice(0, suggest.start)}@${option.username} `;
    const after = value.slice(caret).replace(/^ /, '');
    el.input.value = before + after;
    el.input.setSelectionRange(before.length, before.length);
    closeSuggestions();
    el.input.focus();
    fit();
  }

  /** Keys the suggestions take while open; true if taken. */
  function suggestionKey(event) {
    if (!suggest) return false;
    switch (event.key) {
      case 'ArrowDown':
      case 'ArrowUp': {
        const step = event.key === 'ArrowDown' ? 1 : -1;
        suggest.selected = (suggest.selected + step + suggest.options.length) % suggest.options.length;
        renderSuggestions();
        return true;
      }
      case 'Enter':
      case 'Tab':
        choose(suggest.selected);
        return true;
      case 'Escape':
        closeSuggestions();
        return true;
      default:
        return false;
    }
  }

  // --- wiring ---------------------------------------------------------------------------------

  el.form.addEventListener('submit', (event) => {
    event.preventDefault();
    sendComposed();
  });
  el.input.addEventListener('keydown', (event) => {
    if (event.isComposing) return;
    if (suggestionKey(event)) {
      event.preventDefault();
      return;
    }
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      sendComposed();
    } else if (event.key === 'Escape' && state.ui.replyTo) {
      actions.message.cancelReply();
    } else if (event.key === 'ArrowUp' && !el.input.value) {
      // Up in an empty box edits my last message.
      const room = currentRoom(state);
      const last = room && timelineOf(state, room.id).items().findLast((item) => item.type === 'message' && item.sender === state.me.id && !item.deleted && !item.provisional);
      if (last) {
        event.preventDefault();
        actions.message.startEdit(room.id, last);
      }
    }
  });
  el.input.addEventListener('input', () => {
    fit();
    updateSend();
    updateSuggestions();
    if (el.input.value.trim()) actions.typing();
  });
  el.input.addEventListener('click', updateSuggestions);
  el.input.addEventListener('blur', closeSuggestions);
  el.replyCancel.addEventListener('click', () => actions.message.cancelReply());

  store.subscribe(render);
  updateSend();
}
