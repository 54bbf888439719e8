/**
 * Safe formatting of message text: a small Markdown subset and links.
 *
 * - `**bold**`, `*italic*` and `_italic_` (an `_` only at a word's edge,
 *   so snake_case stays text), `` `code` ``;
 * - fenced code blocks (a line of three backticks, to the next such line
 *   or the end), and `> ` block quotes;
 * - `http://` and `https://` URLs become links that open in a new tab
 *   (`rel="noopener noreferrer"`); nothing else ever does: no
 *   `[text](url)`, no `javascript:`, no other scheme, no raw HTML;
 * - `@username` of a room member (and `@room`) is marked as a mention;
 * - a backslash before `* _ \` ` > [ ] @` shows that character as itself.
 *
 * {@link parse} turns text into a small tree (plain data: tested without a
 * browser, `tests/format.test.mjs`), and {@link render} builds DOM nodes
 * from it with createElement and text nodes only: the text is never HTML,
 * and the only elements made are those of {@link ALLOWED_TAGS}.
 *
 * Also the words and times of calls ({@link callSummary} for the
 * timeline, {@link formatClock} for a call in progress).
 *
 * @module format
 */

/** Every element {@link render} can make. */
export const ALLOWED_TAGS = Object.freeze(['strong', 'em', 'code', 'pre', 'blockquote', 'a', 'span']);

/** Characters a backslash makes literal. */
const ESCAPABLE = new Set(['*', '_', '\\', '`', '>', '[', ']', '@']);
/** A quoted line: `> ` (or a lone `>`), so `>_<` stays text. */
const QUOTE = /^ {0,3}>( |$)/;
/** Nesting deeper than this is shown as text (and keeps parsing linear). */
const MAX_DEPTH = 4;

/**
 * @typedef {{type: 'text', text: string}
 *   | {type: 'strong'|'em'|'blockquote', children: Node[]}
 *   | {type: 'code'|'pre', text: string}
 *   | {type: 'link', href: string, text: string}
 *   | {type: 'mention', name: string, text: string}} Node
 */

/**
 * @typedef {object} ParseOptions
 * @property {(name: string) => boolean} [isMention] whether `@name` (lowercased,
 *   `room` for `@room`) mentions someone; default: nothing is a mention
 */

/**
 * Parses message text into blocks and inline nodes.
 * @param {string} text
 * @param {ParseOptions} [options]
 * @returns {Node[]}
 */
export function parse(text, options = {}) {
  const isMention = options.isMention ?? (() => false);
  const lines = String(text).split(/\r?\n/);
  const nodes = [];
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) push(nodes, parseInline(paragraph.join('\n'), isMention));
    paragraph = [];
  };
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    if (/^ {0,3}```/.test(line)) {
      flush();
      const code = [];
      i += 1;
      while (i < lines.length && !/^ {0,3}```\s*$/.test(lines[i])) code.push(lines[i++]);
      i += 1; // the closing fence (or the end)
      nodes.push({ type: 'pre', text: code.join('\n') });
      continue;
    }
    if (QUOTE.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(lines[i++].replace(/^ {0,3}> ?/, ''));
      nodes.push({ type: 'blockquote', children: parseInline(quoted.join('\n'), isMention) });
      continue;
    }
    paragraph.push(line);
    i += 1;
  }
  flush();
  return nodes;
}

/** Appends nodes, merging neighbouring text. */
function push(nodes, more) {
  for (const node of more) {
    const last = nodes.at(-1);
    if (node.type === 'text' && last?.type === 'text') last.text += node.text;
    else if (node.type !== 'text' || node.text) nodes.push(node);
  }
}

const isSpace = (c) => c === undefined || /\s/.test(c);
const isWord = (c) => c !== undefined && /[\p{L}\p{N}]/u.test(c);
const isNameChar = (c) => c !== undefined && /[A-Za-z0-9_.-]/.test(c);

/**
 * Inline formatting of a run of text.
 * @param {string} text
 * @param {(name: string) => boolean} isMention
 * @param {number} [depth]
 * @returns {Node[]}
 */
export function parseInline(text, isMention = () => false, depth = 0) {
  const nodes = [];
  let plain = '';
  const emit = (node) => {
    if (plain) nodes.push({ type: 'text', text: plain });
    plain = '';
    nodes.push(node);
  };
  // Delimiters that have no closer from some position on: each is looked
  // for at most once past that point, so long runs stay linear.
  const noCloserFrom = new Map();
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && ESCAPABLE.has(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (c === '`') {
      const run = text.slice(i).match(/^`+/)[0];
      const close = findCodeClose(text, i + run.length, run.length);
      if (close >= 0) {
        let code = text.slice(i + run.length, close);
        if (code.length > 1 && code.startsWith(' ') && code.endsWith(' ') && code.trim()) code = code.slice(1, -1);
        emit({ type: 'code', text: code });
        i = close + run.length;
      } else {
        plain += run;
        i += run.length;
      }
      continue;
    }
    if ((c === 'h' || c === 'H') && !isWord(text[i - 1])) {
      const link = matchUrl(text, i);
      if (link) {
        emit({ type: 'link', href: link.href, text: link.text });
        i += link.text.length;
        continue;
      }
    }
    if (c === '@' && !isNameChar(text[i - 1])) {
      const mention = matchMention(text, i, isMention);
      if (mention) {
        emit(mention);
        i += mention.text.length;
        continue;
      }
    }
    if ((c === '*' || c === '_') && depth < MAX_DEPTH) {
      const double = c === '*' && text[i + 1] === '*';
      const marker = double ? '**' : c;
      const span = matchEmphasis(text, i, marker, noCloserFrom);
      if (span) {
        emit({ type: double ? 'strong' : 'em', children: parseInline(span.inner, isMention, depth + 1) });
        i = span.end;
        continue;
      }
      plain += marker;
      i += marker.length;
      continue;
    }
    plain += c;
    i += 1;
  }
  if (plain) nodes.push({ type: 'text', text: plain });
  return nodes;
}

/** The start of the closing backtick run of exactly `length`, or -1. */
function findCodeClose(text, from, length) {
  const run = '`'.repeat(length);
  for (let at = text.indexOf(run, from); at >= 0; at = text.indexOf(run, at + 1)) {
    const before = text[at - 1];
    const after = text[at + length];
    if (before !== '`' && after !== '`') return at;
    // Skip the whole longer run.
    while (text[at + 1] === '`') at += 1;
  }
  return -1;
}

/**
 * An emphasis span opening at `i` with `marker` (`*`, `_` or `**`): it
 * opens before a non-space, closes after a non-space; `_` only at the
 * edges of words.
 * @returns {{inner: string, end: number}|null}
 */
function matchEmphasis(text, i, marker, noCloserFrom) {
  const open = i + marker.length;
  if (isSpace(text[open]) || text[open] === marker[0]) return null;
  if (marker === '_' && isWord(text[i - 1])) return null;
  const known = noCloserFrom.get(marker);
  if (known !== undefined && open >= known) return null;
  for (let at = text.indexOf(marker, open + 1); at >= 0; at = text.indexOf(marker, at + 1)) {
    if (isSpace(text[at - 1]) || text[at - 1] === '\\') continue;
    if (marker === '_' && isWord(text[at + 1])) continue;
    if (marker === '*' && (text[at + 1] === '*' || text[at - 1] === '*')) continue;
    return { inner: text.slice(open, at), end: at + marker.length };
  }
  noCloserFrom.set(marker, Math.min(known ?? Infinity, open));
  return null;
}

/** Punctuation that ends a sentence, not a URL. */
const TRAILING = /[.,:;!?'"*_]+$/;

/**
 * An http(s) URL starting at `i`: up to a space, `<`, `>` or `"`, less
 * sentence punctuation and an unmatched `)` at its end.
 * @returns {{href: string, text: string}|null}
 */
export function matchUrl(text, i) {
  const found = /^https?:\/\/[^\s<>"`]+/i.exec(text.slice(i, i + 2048));
  if (!found) return null;
  let candidate = found[0];
  for (;;) {
    const before = candidate;
    candidate = candidate.replace(TRAILING, '');
    if (candidate.endsWith(')') && count(candidate, '(') < count(candidate, ')')) candidate = candidate.slice(0, -1);
    if (candidate === before) break;
  }
  const href = safeHref(candidate);
  return href ? { href, text: candidate } : null;
}

function count(text, char) {
  return text.split(char).length - 1;
}

/**
 * The URL to link to, if `text` is an absolute http(s) URL with a host;
 * null for anything else (`javascript:`, `data:`, relative, malformed).
 * @param {string} text
 * @returns {string|null}
 */
export function safeHref(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (!url.hostname || url.username || url.password) return null;
  return url.href;
}

/** `@name` at `i`, when `isMention(name)` says it names someone. */
function matchMention(text, i, isMention) {
  const found = /^@([A-Za-z0-9][A-Za-z0-9_.-]*)/.exec(text.slice(i, i + 40));
  if (!found) return null;
  const name = found[1].replace(/[.-]+$/, '');
  if (!isMention(name.toLowerCase())) return null;
  return { type: 'mention', name: name.toLowerCase(), text: `@${name}` };
}

/**
 * Builds the nodes of {@link parse} as DOM nodes.
 * @param {Node[]} nodes
 * @param {Document} [doc]
 * @returns {globalThis.Node[]}
 */
export function render(nodes, doc = globalThis.document) {
  return nodes.map((node) => renderNode(node, doc));
}

function renderNode(node, doc) {
  const element = (tag, children) => {
    const el = doc.createElement(tag);
    for (const child of children) el.appendChild(child);
    return el;
  };
  const text = (value) => doc.createTextNode(value);
  switch (node.type) {
    case 'strong':
    case 'em':
    case 'blockquote':
      return element(node.type, render(node.children, doc));
    case 'code':
      return element('code', [text(node.text)]);
    case 'pre':
      return element('pre', [element('code', [text(node.text)])]);
    case 'link': {
      const a = element('a', [text(node.text)]);
      a.setAttribute('href', node.href);
      a.setAttribute('rel', 'noopener noreferrer');
      a.setAttribute('target', '_blank');
      return a;
    }
    case 'mention': {
      const span = element('span', [text(node.text)]);
      span.setAttribute('class', 'mention');
      return span;
    }
    default:
      return text(node.text ?? '');
  }
}

/**
 * Message text as DOM nodes, formatted.
 * @param {string} text
 * @param {ParseOptions} [options]
 * @param {Document} [doc]
 * @returns {globalThis.Node[]}
 */
export function format(text, options, doc) {
  return render(parse(text, options), doc);
}

/**
 * The text as a one-line plain string, with the formatting marks taken
 * away (for previews of quoted messages, where only text is shown).
 * @param {string} text
 * @returns {string}
 */
export function plainText(text) {
  const flatten = (nodes) => nodes.map((node) => ('children' in node ? flatten(node.children) : node.text)).join('');
  const block = (node) => node.type === 'pre' || node.type === 'blockquote';
  return parse(text)
    .map((node) => (block(node) ? ` ${flatten([node])} ` : flatten([node])))
    .join('')
    .replace(/\s+/g, ' ')
    .trim();
}

// --- calls ------------------------------------------------------------------------------

/**
 * A call's length for the timeline: `45 s`, `3 min`, `1 h 5 min`.
 * @param {number} secs whole seconds
 * @returns {string}
 */
export function formatDuration(secs) {
  const s = Math.max(0, Math.floor(secs));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
}

/**
 * The running clock of a call in progress: `00:12`, `03:05`, `1:02:03`.
 * @param {number} ms time since it connected
 * @returns {string}
 */
export function formatClock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const two = (n) => String(n).padStart(2, '0');
  const hours = Math.floor(s / 3600);
  const clock = `${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
  return hours ? `${hours}:${clock}` : clock;
}

/**
 * How the timeline names a finished call (a `call_ended` event): its
 * length once it was accepted, else why it ended, as the one reading sees
 * it (a missed call is "No answer" to its caller).
 * @param {{reason: string, duration_secs?: number|null}} ended the event
 * @param {{video?: boolean, iAmCaller?: boolean}} [context] `video` from
 *   its `call_started`, if held
 * @returns {string}
 */
export function callSummary(ended, { video = false, iAmCaller = false } = {}) {
  if (typeof ended.duration_secs === 'number') return `${video ? 'Video call' : 'Call'}, ${formatDuration(ended.duration_secs)}`;
  switch (ended.reason) {
    case 'missed':
      return iAmCaller ? 'No answer' : 'Missed call';
    case 'declined':
      return 'Declined call';
    case 'cancelled':
      return 'Cancelled call';
    case 'busy':
      return 'Busy';
    default:
      return 'Call failed';
  }
}
