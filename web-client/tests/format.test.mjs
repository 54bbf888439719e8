// Unit tests of the message formatter (format.js): the Markdown subset, the
// links, and that nothing but text and the allowed elements ever comes out.
// No browser: render() runs on a tiny stand-in for `document`.
// Run: node --test web-client/tests/format.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALLOWED_TAGS, callSummary, format, formatClock, formatDuration, matchUrl, parse, plainText, safeHref } from '../format.js';

const text = (value) => ({ type: 'text', text: value });

/** A minimal DOM: elements with attributes and children, and text nodes. */
class FakeText {
  constructor(value) {
    this.nodeType = 3;
    this.textContent = value;
  }
}
class FakeElement {
  constructor(tag) {
    this.nodeType = 1;
    this.tagName = tag.toUpperCase();
    this.attributes = {};
    this.childNodes = [];
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }
  appendChild(child) {
    this.childNodes.push(child);
    return child;
  }
  get textContent() {
    return this.childNodes.map((c) => c.textContent).join('');
  }
}
const fakeDocument = {
  created: [],
  createElement(tag) {
    const el = new FakeElement(tag);
    this.created.push(el);
    return el;
  },
  createTextNode: (value) => new FakeText(value),
};

function html(nodes) {
  return nodes
    .map((node) => {
      if (node.nodeType === 3) return node.textContent.replace(/&/g, '&amp;').replace(/</g, '&lt;');
      const attrs = Object.entries(node.attributes).map(([k, v]) => ` ${k}="${v}"`).join('');
      const tag = node.tagName.toLowerCase();
      return `<${tag}${attrs}>${html(node.childNodes)}</${tag}>`;
    })
    .join('');
}

const show = (value, options) => html(format(value, options, fakeDocument));

test('plain text is one text node, as written', () => {
  assert.deepEqual(parse('hello there'), [text('hello there')]);
  assert.deepEqual(parse('two\nlines'), [text('two\nlines')]);
  assert.deepEqual(parse(''), []);
});

test('bold, italic and inline code', () => {
  assert.equal(show('a **bold** move'), 'a <strong>bold</strong> move');
  assert.equal(show('an *italic* and an _italic_'), 'an <em>italic</em> and an <em>italic</em>');
  assert.equal(show('**bold with *italic* inside**'), '<strong>bold with <em>italic</em> inside</strong>');
  assert.equal(show('run `cargo test` now'), 'run <code>cargo test</code> now');
  assert.equal(show('`**not bold**`'), '<code>**not bold**</code>');
  assert.equal(show('`` a ` b ``'), '<code>a ` b</code>');
});

test('what is not emphasis stays text', () => {
  for (const value of ['snake_case_name', '2 * 3 * 4', '** not bold **', 'a*', '*', '**', '_', 'x_y_', '`unclosed', '*unclosed', 'one **two']) {
    assert.equal(plainText(value), value.replace(/\s+/g, ' ').trim(), value);
    assert.ok(parse(value).every((node) => node.type === 'text'), `${value}: ${JSON.stringify(parse(value))}`);
  }
});

test('a backslash shows a mark as itself', () => {
  assert.equal(show('\\*not italic\\*'), '*not italic*');
  assert.equal(show('C:\\Users\\me'), 'C:\\Users\\me');
});

test('fenced code blocks keep their text as it is, to the closing fence or the end', () => {
  assert.deepEqual(parse('before\n```js\nlet *a* = `b`;\n  indented\n```\nafter'), [
    text('before'),
    { type: 'pre', text: 'let *a* = `b`;\n  indented' },
    text('after'),
  ]);
  assert.deepEqual(parse('```\nnever closed\n**x**'), [{ type: 'pre', text: 'never closed\n**x**' }]);
  assert.equal(show('```\n<b>x</b> https://example.org\n```'), '<pre><code>&lt;b>x&lt;/b> https://example.org</code></pre>');
});

test('block quotes: consecutive "> " lines, formatted inside', () => {
  assert.deepEqual(parse('> first\n> **second**\nreply'), [
    { type: 'blockquote', children: [text('first\n'), { type: 'strong', children: [text('second')] }] },
    text('reply'),
  ]);
  assert.deepEqual(parse('>_<'), [text('>_<')], 'an emoticon is not a quote');
  assert.deepEqual(parse('a > b'), [text('a > b')]);
});

test('http and https URLs become links that open apart; sentence punctuation stays outside', () => {
  assert.equal(
    show('see https://example.org/a?b=1&c=2#d.'),
    'see <a href="https://example.org/a?b=1&c=2#d" rel="noopener noreferrer" target="_blank">https://example.org/a?b=1&amp;c=2#d</a>.',
  );
  assert.equal(matchUrl('(http://example.org/wiki/A_(b)) x', 1).text, 'http://example.org/wiki/A_(b)');
  assert.equal(matchUrl('http://example.org).', 0).text, 'http://example.org');
  assert.equal(matchUrl('HTTPS://EXAMPLE.ORG', 0).href, 'https://example.org/');
  assert.equal(show('**https://example.org**'), '<strong><a href="https://example.org/" rel="noopener noreferrer" target="_blank">https://example.org</a></strong>');
});

test('no other scheme is ever a link, and no Markdown link syntax', () => {
  for (const value of [
    'javascript:alert(1)',
    'JaVaScRiPt:alert(1)',
    '[x](javascript:alert(1))',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:msgbox(1)',
    'file:///etc/passwd',
    '//evil.example/x',
    'ftp://example.org',
  ]) {
    assert.ok(!show(value).includes('<a'), `${value} became a link: ${show(value)}`);
  }
  assert.equal(
    show('[x](https://example.org)'),
    '[x](<a href="https://example.org/" rel="noopener noreferrer" target="_blank">https://example.org</a>)',
  );
  assert.equal(safeHref('javascript:alert(1)'), null);
  assert.equal(safeHref('https://user:pw@example.org/'), null, 'no credentials in a link');
  assert.equal(safeHref('https://example.org/x y'), 'https://example.org/x%20y');
  assert.equal(matchUrl('https://', 0), null);
});

test('HTML is text: only the allowed elements are ever made, with only the allowed attributes', () => {
  const payloads = [
    '<img src=x onerror=alert(1)>',
    '<script>alert(1)</script>',
    '"><svg onload=alert(1)>',
    '**<b>bold</b>**',
    '*<i onmouseover=alert(1)>x</i>*',
    '`<iframe src=javascript:alert(1)>`',
    '> <img src=x onerror=alert(1)>',
    '```\n<script>alert(1)</script>\n```',
    'https://example.org/"><img src=x onerror=alert(1)>',
    'https://example.org/<script>',
    '[x](javascript:alert(1))',
    '@bob<img src=x>',
  ];
  for (const value of payloads) {
    fakeDocument.created = [];
    const nodes = format(value, { isMention: (name) => name === 'bob' }, fakeDocument);
    for (const el of fakeDocument.created) {
      assert.ok(ALLOWED_TAGS.includes(el.tagName.toLowerCase()), `${value}: made <${el.tagName}>`);
      for (const name of Object.keys(el.attributes)) {
        assert.ok(['href', 'rel', 'target', 'class'].includes(name), `${value}: attribute ${name}`);
      }
      if (el.attributes.href) assert.match(el.attributes.href, /^https?:\/\/[^"<>\s]+$/, value);
    }
    // Every character is still there, as text (less the marks that formatted).
    const shown = nodes.map((n) => n.textContent).join('');
    for (const dangerous of ['<img', '<script', '<svg', '<iframe', '<b>']) {
      if (value.includes(dangerous)) assert.ok(shown.includes(dangerous), `${value}: shown as ${shown}`);
    }
  }
});

test('@mentions of members are marked; others, e-mail addresses and escaped ones are text', () => {
  const isMention = (name) => ['bob', 'room', 'carol_1'].includes(name);
  assert.equal(show('hi @Bob and @carol_1.', { isMention }), 'hi <span class="mention">@Bob</span> and <span class="mention">@carol_1</span>.');
  assert.equal(show('@room look', { isMention }), '<span class="mention">@room</span> look');
  assert.equal(show('@dave mail bob@example.org \\@bob', { isMention }), '@dave mail bob@example.org @bob');
});

test('long and hostile inputs parse quickly', () => {
  const started = Date.now();
  for (const value of ['*'.repeat(4000), '_a'.repeat(2000), '`'.repeat(4000), '**a '.repeat(1000), '*a *'.repeat(1000), 'https://'.repeat(500), '> '.repeat(2000), '\\'.repeat(4000)]) {
    parse(value);
  }
  assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
});

test('plainText drops the marks, for one-line previews', () => {
  assert.equal(plainText('**Look** at\n`this`: https://example.org'), 'Look at this: https://example.org');
  assert.equal(plainText('> quoted\nreply'), 'quoted reply');
});

test('a call’s length reads in seconds, minutes, then hours and minutes', () => {
  assert.equal(formatDuration(0), '0 s');
  assert.equal(formatDuration(45), '45 s');
  assert.equal(formatDuration(60), '1 min');
  assert.equal(formatDuration(199), '3 min');
  assert.equal(formatDuration(3600), '1 h');
  assert.equal(formatDuration(3900), '1 h 5 min');
  assert.equal(formatClock(12_400), '00:12');
  assert.equal(formatClock(185_000), '03:05');
  assert.equal(formatClock(3_723_000), '1:02:03');
});

test('a finished call is named by its length once accepted, else by how it ended, as each party sees it', () => {
  assert.equal(callSummary({ reason: 'completed', duration_secs: 180 }), 'Call, 3 min');
  assert.equal(callSummary({ reason: 'completed', duration_secs: 45 }, { video: true }), 'Video call, 45 s');
  // A call the server ended after it was accepted still lasted.
  assert.equal(callSummary({ reason: 'failed', duration_secs: 7 }), 'Call, 7 s');
  assert.equal(callSummary({ reason: 'missed' }), 'Missed call');
  assert.equal(callSummary({ reason: 'missed' }, { iAmCaller: true }), 'No answer');
  assert.equal(callSummary({ reason: 'declined' }), 'Declined call');
  assert.equal(callSummary({ reason: 'cancelled' }), 'Cancelled call');
  assert.equal(callSummary({ reason: 'busy' }), 'Busy');
  assert.equal(callSummary({ reason: 'failed' }), 'Call failed');
});
