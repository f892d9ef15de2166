// Small DOM helpers. Everything the server sends is put on the page through
// textContent or attributes, never through innerHTML, so a channel name or a
// pub's data can never become markup (and the CSP forbids inline scripts).

export type Child = Node | string | number | null | undefined | false;
export type Attrs = Record<string, string | number | boolean | null | undefined | ((ev: Event) => void)>;

/** Creates an element; `on<event>` attributes become listeners, `testid` becomes data-testid. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'testid') el.setAttribute('data-testid', String(v));
    else if (k === 'class') el.className = String(v);
    else if (k === 'value' && (el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement)) el.value = String(v);
    else if (k === 'checked' && el instanceof HTMLInputElement) el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** A labelled form field. */
export function field(label: string, input: HTMLElement): HTMLLabelElement {
  return h('label', { class: 'field' }, h('span', {}, label), input);
}

/** A table from a header row and body rows. */
export function table(head: string[], rows: Node[], attrs: Attrs = {}): HTMLTableElement {
  return h('table', attrs, h('thead', {}, h('tr', {}, ...head.map((t) => h('th', {}, t)))), h('tbody', {}, ...rows));
}

export function td(...children: Child[]): HTMLTableCellElement {
  return h('td', {}, ...children);
}

/** Pretty JSON in a <pre>, for pub data and details. */
export function jsonBlock(v: unknown): HTMLPreElement {
  let s: string;
  try { s = JSON.stringify(v, null, 2) ?? String(v); } catch { s = String(v); }
  return h('pre', { class: 'json' }, s);
}

/** A link to another console page (hash route). */
export function routeLink(text: string, hash: string, attrs: Attrs = {}): HTMLAnchorElement {
  return h('a', { href: '#' + hash, ...attrs }, text);
}
