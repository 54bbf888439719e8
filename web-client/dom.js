/**
 * A small, safe element builder for the page. Text always becomes text
 * nodes (never HTML), so user data cannot inject markup; there is no
 * innerHTML anywhere in the client.
 *
 * @module dom
 */

/**
 * @typedef {Node|string|number|null|undefined|false|Child[]} Child
 */

/**
 * Creates an element.
 *
 * @example h('li', { className: 'msg', dataset: { seq: 3 } }, h('span', {}, user.display_name))
 * @param {string} tag
 * @param {object} [props] `className`, `dataset`, `title`, `type`, `disabled`,
 *   `hidden`, `attrs` (other attributes) and `on` (event listeners by name)
 * @param {...Child} children strings become text nodes
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  const { className, dataset, attrs, on, ...properties } = props;
  if (className) el.className = className;
  for (const [key, value] of Object.entries(dataset ?? {})) el.dataset[key] = String(value);
  for (const [key, value] of Object.entries(attrs ?? {})) el.setAttribute(key, String(value));
  for (const [key, value] of Object.entries(on ?? {})) el.addEventListener(key, value);
  for (const [key, value] of Object.entries(properties)) {
    if (key === 'innerHTML' || key === 'outerHTML') throw new Error(`h: ${key} is not allowed`);
    el[key] = value;
  }
  append(el, children);
  return el;
}

/**
 * Appends children (strings as text nodes), skipping empty ones.
 * @param {Element} parent
 * @param {Child[]} children
 */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Replaces an element's children.
 * @param {Element} parent
 * @param {...Child} children
 */
export function replace(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
}

/**
 * @param {string} id
 * @returns {HTMLElement} the element, which must exist in index.html
 */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el;
}

/**
 * Brings a list element in line with `items`, reusing children by key:
 * only new or changed items (a changed item has a different JSON) are
 * built again, and the rest are only moved if needed, so the reader's
 * selection and scroll position survive updates.
 *
 * @template {{key: string}} Item
 * @param {Element} list
 * @param {Item[]} items in display order, keys unique
 * @param {(item: Item) => HTMLElement} build
 * @param {Map<string, HTMLElement>} rows the list's children by key, kept between calls
 */
export function reconcile(list, items, build, rows) {
  const keep = new Set();
  let next = list.firstChild;
  for (const item of items) {
    keep.add(item.key);
    const signature = JSON.stringify(item);
    let row = rows.get(item.key);
    if (row?.dataset.signature !== signature) {
      const fresh = build(item);
      fresh.dataset.signature = signature;
      if (row) row.replaceWith(fresh);
      if (row === next) next = fresh;
      row = fresh;
      rows.set(item.key, row);
    }
    if (row === next) next = next.nextSibling;
    else list.insertBefore(row, next);
  }
  for (const [key, row] of rows) {
    if (!keep.has(key)) {
      row.remove();
      rows.delete(key);
    }
  }
}
