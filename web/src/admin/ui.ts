// Shared page pieces: the API error box, the in-page confirmation dialog
// (window.confirm would block the page and cannot be clicked by tests), and
// the "not available on this server" notice for methods an older server lacks.
import { ApiError } from './api';
import { h, replace } from './dom';

/** Shows an error with the server's message in `box` (data-testid api-error). */
export function showError(box: Element, e: unknown): void {
  const msg = e instanceof ApiError ? e.describe() : e instanceof Error ? e.message : String(e);
  replace(box, h('div', { class: 'error', testid: 'api-error', role: 'alert' }, msg));
}

/** An empty error slot that showError fills. */
export function errorSlot(): HTMLDivElement {
  return h('div', { class: 'error-slot' });
}

/** A neutral notice (results of actions, "nothing here"). */
export function notice(text: string, cls = 'notice'): HTMLDivElement {
  return h('div', { class: cls }, text);
}

/** The notice for a method the server answers with 104 unknown method. */
export function notAvailable(method: string): HTMLDivElement {
  return h('div', { class: 'notice unavailable', testid: 'not-available' }, `${method}: not available on this server (unknown method).`);
}

/**
 * Asks before a change: a modal in the page with OK and Cancel. Resolves
 * true on OK. Only one at a time; a new one cancels the previous one.
 */
let closeCurrent: ((ok: boolean) => void) | null = null;
export function confirmDialog(title: string, detail: string, okLabel = 'Confirm'): Promise<boolean> {
  closeCurrent?.(false);
  return new Promise((resolve) => {
    const close = (ok: boolean) => {
      if (closeCurrent !== close) return;
      closeCurrent = null;
      document.removeEventListener('keydown', onKey);
      overlay.remove();
      resolve(ok);
    };
    const onKey = (ev: KeyboardEvent) => { if (ev.key === 'Escape') close(false); };
    const ok = h('button', { class: 'danger', testid: 'confirm-ok', onclick: () => close(true) }, okLabel);
    const overlay = h('div', { class: 'overlay', testid: 'confirm-dialog' },
      h('div', { class: 'dialog', role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
        h('h3', {}, title),
        h('p', {}, detail),
        h('div', { class: 'buttons' },
          h('button', { testid: 'confirm-cancel', onclick: () => close(false) }, 'Cancel'),
          ok)));
    closeCurrent = close;
    document.addEventListener('keydown', onKey);
    document.body.appendChild(overlay);
    ok.focus();
  });
}

/** Runs an async action from a button: disables it meanwhile, errors go to `box`. */
export async function busy(btn: HTMLButtonElement | null, box: Element, fn: () => Promise<void>): Promise<void> {
  if (btn) btn.disabled = true;
  replace(box);
  try { await fn(); } catch (e) { showError(box, e); } finally { if (btn) btn.disabled = false; }
}
