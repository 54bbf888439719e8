/**
 * The files of a message, as the timeline shows them: an image as its
 * thumbnail inline (its box sized from the image's width and height before
 * it loads, so the timeline does not jump), which opens the full image in
 * a lightbox; any other file as a card with its name, size, type and a
 * download link; a file of a send not yet delivered as a card saying how
 * far its upload is. Links are short-lived: fetched through the
 * {@link LinkCache} when drawn, and fetched again on use once stale.
 * Names are user text: text nodes only.
 *
 * @module view-attachments
 */

import { h } from './dom.js';
import { formatSize } from './attachments.js';

/** The largest box a thumbnail is shown in (the api makes them up to 320 × 320). */
const THUMB_MAX_W = 320;
const THUMB_MAX_H = 240;

/** @returns {{width: number, height: number}} the shown size, the image's aspect kept */
export function thumbnailSize(width, height) {
  if (!(width > 0 && height > 0)) return { width: THUMB_MAX_W, height: THUMB_MAX_H };
  const scale = Math.min(1, THUMB_MAX_W / width, THUMB_MAX_H / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * @param {object} deps
 * @param {import('./attachments.js').LinkCache} deps.links
 * @param {(text: string) => void} deps.notify
 * @returns {{attachmentList: (item: object) => HTMLElement|null}}
 */
export function createAttachmentViews({ links, notify }) {
  /** The open lightbox, if any. */
  let lightbox = null;

  /** The files of a message (delivered, or mine still pending). */
  function attachmentList(item) {
    const files = item.attachments ?? [];
    if (!files.length || item.deleted) return null;
    return h(
      'div',
      { className: 'attachments' },
      files.map((file) => {
        if (item.state === 'pending' || item.state === 'failed' || !file.id) return pendingCard(file, item);
        return file.thumbnail ? thumbnail(file) : fileCard(file);
      }),
    );
  }

  function thumbnail(file) {
    const size = thumbnailSize(file.width, file.height);
    // Built now, filled when its link comes: the box has its size already.
    const image = h('img', { className: 'thumb', alt: file.name, width: size.width, height: size.height, decoding: 'async' });
    const known = links.fresh(file.id, 'thumbnail');
    if (known) image.src = known;
    else links.get(file.id, 'thumbnail').then((url) => (image.src = url), () => image.classList.add('broken'));
    return h(
      'button',
      {
        type: 'button',
        className: 'attachment image',
        title: `${file.name} (${formatSize(file.size)}): open the full image`,
        dataset: { attachmentId: file.id, width: file.width ?? '', height: file.height ?? '' },
        attrs: { 'aria-label': `Open the image ${file.name}` },
        on: { click: () => openLightbox(file) },
      },
      image,
    );
  }

  function fileCard(file) {
    const download = h('a', { className: 'download', download: file.name, rel: 'noopener noreferrer', target: '_blank' }, 'Download');
    const known = links.fresh(file.id, 'file');
    if (known) download.href = known;
    else links.get(file.id, 'file').then((url) => (download.href = url), () => {});
    // A link seen a while ago may have expired: fetch a fresh one first.
    download.addEventListener('click', (event) => {
      const fresh = links.fresh(file.id, 'file');
      if (fresh && fresh === download.getAttribute('href')) return;
      event.preventDefault();
      links.get(file.id, 'file').then(
        (url) => {
          download.href = url;
          download.click();
        },
        () => notify(`${file.name} cannot be downloaded now.`),
      );
    });
    return h(
      'div',
      { className: 'attachment file', dataset: { attachmentId: file.id } },
      fileIcon(file),
      h(
        'span',
        { className: 'file-info' },
        h('span', { className: 'file-name' }, file.name),
        h('span', { className: 'file-meta' }, h('span', { className: 'file-size' }, formatSize(file.size)), ' · ', h('span', { className: 'file-type' }, file.content_type)),
      ),
      download,
    );
  }

  /** A file of my send not delivered yet: uploaded (waiting for the send), uploading, or waiting for the network. */
  function pendingCard(file, item) {
    let status = '';
    if (item.state === 'pending') {
      if (file.id) status = 'uploaded';
      else if (item.upload !== undefined) status = `uploading ${Math.round(item.upload * 100)}%`;
      else status = 'waiting to upload';
    }
    return h(
      'div',
      { className: 'attachment file pending', dataset: { state: file.id ? 'uploaded' : 'waiting' } },
      fileIcon(file),
      h(
        'span',
        { className: 'file-info' },
        h('span', { className: 'file-name' }, file.name),
        h('span', { className: 'file-meta' }, h('span', { className: 'file-size' }, formatSize(file.size)), status ? ` · ${status}` : ''),
      ),
    );
  }

  /** A badge with the file's extension (no emoji: not every system draws them). */
  function fileIcon(file) {
    const extension = /\.([A-Za-z0-9]{1,5})$/.exec(file.name ?? '')?.[1] ?? 'file';
    return h('span', { className: 'file-icon', attrs: { 'aria-hidden': 'true' } }, extension.toUpperCase());
  }

  // --- the lightbox -----------------------------------------------------------------------

  function openLightbox(file) {
    closeLightbox();
    const image = h('img', { className: 'full', alt: file.name });
    const size = thumbnailSize(file.width, file.height);
    if (file.width && file.height) image.style.aspectRatio = `${size.width} / ${size.height}`;
    const open = h('a', { className: 'open', rel: 'noopener noreferrer', target: '_blank' }, 'Open in a new tab');
    const close = h('button', { type: 'button', className: 'ghost close', attrs: { 'aria-label': 'Close' }, on: { click: closeLightbox } }, '×');
    lightbox = h(
      'div',
      {
        className: 'lightbox',
        attrs: { role: 'dialog', 'aria-modal': 'true', 'aria-label': file.name },
        on: {
          click: (event) => event.target === lightbox && closeLightbox(),
          keydown: (event) => event.key === 'Escape' && closeLightbox(),
        },
      },
      h('figure', {}, image, h('figcaption', {}, h('span', { className: 'file-name' }, file.name), ` · ${formatSize(file.size)} `, open, close)),
    );
    document.body.append(lightbox);
    close.focus();
    links.get(file.id, 'file').then(
      (url) => {
        image.src = url;
        open.href = url;
      },
      () => {
        notify(`${file.name} cannot be shown now.`);
        closeLightbox();
      },
    );
  }

  /** Closes the lightbox; its image goes with it (nothing of a file stays in the page). */
  function closeLightbox() {
    lightbox?.remove();
    lightbox = null;
  }

  return { attachmentList, closeLightbox };
}
