// Tiny DOM helpers. Everything the app shows is built with createElement and
// textContent, never innerHTML: message text comes from other people.

type Attrs = Record<string, string | undefined>;
type Child = Node | string | null | undefined | false;

/** Creates an element with attributes (undefined ones skipped) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** Replaces an element's children. */
export function setChildren(el: Element, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
}

/** Shows or hides an element (the `hidden` attribute, styled in app.css). */
export function show(el: HTMLElement, on: boolean): void { el.hidden = !on; }
