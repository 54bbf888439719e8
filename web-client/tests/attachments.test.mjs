// Unit tests of what the page says and sizes of files (attachments.js,
// view-attachments.js), with no browser.
// Run: node --test web-client/tests/attachments.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { filesText, formatSize, isRetryable, uploadErrorText } from '../attachments.js';
import { thumbnailSize } from '../view-attachments.js';

test('sizes read as people say them', () => {
  assert.equal(formatSize(0), '0 B');
  assert.equal(formatSize(1023), '1023 B');
  assert.equal(formatSize(1400), '1.4 KB');
  assert.equal(formatSize(25 * 1024 * 1024), '25 MB');
  assert.equal(formatSize(3.5 * 1024 ** 3), '3.5 GB');
});

test('a thumbnail keeps its aspect inside its box, and never grows', () => {
  assert.deepEqual(thumbnailSize(600, 300), { width: 320, height: 160 });
  assert.deepEqual(thumbnailSize(40, 80), { width: 40, height: 80 });
  assert.deepEqual(thumbnailSize(300, 900), { width: 80, height: 240 });
  assert.deepEqual(thumbnailSize(undefined, undefined), { width: 320, height: 240 }, 'unknown: the whole box');
});

test('refusals in words; only no answer and a busy server are worth retrying', () => {
  assert.match(uploadErrorText({ status: 415, code: 'type_mismatch' }, 'a.png'), /^a\.png is not what its name or type says/);
  assert.match(uploadErrorText({ status: 413, code: 'payload_too_large' }, 'big.bin'), /too large/);
  assert.match(uploadErrorText({ status: 500, code: 'internal', message: 'boom' }, 'x'), /^x: boom$/);
  for (const status of [0, 429, 503]) assert.equal(isRetryable({ status }), true, String(status));
  for (const status of [403, 413, 415, 422]) assert.equal(isRetryable({ status }), false, String(status));
});

test('a message of files only is named by them where its text would show', () => {
  assert.equal(filesText([{ name: 'a.png' }, { name: 'b.txt' }]), 'a.png, b.txt');
  assert.equal(filesText(undefined), 'files');
});
