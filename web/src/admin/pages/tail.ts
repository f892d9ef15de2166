// Live tail: the tenant's pubs of a channel glob as they are committed (the
// `tail` method, an SSE stream read with fetch since EventSource cannot send
// the key in a header). A view, not a delivery: nothing is replayed, and a
// tail that falls behind is closed by the server (4001), said in the page.
import { ApiError, numOr, strOr, type Obj } from '../api';
import type { Ctx, Page } from '../ctx';
import { field, h, replace, routeLink, td } from '../dom';
import { str, ts } from '../format';
import { errorSlot, notAvailable, notice, showError } from '../ui';

/** Rows kept on the page: the newest ones. */
const KEEP = 500;

export function tailPage(ctx: Ctx, glob: string): Page {
  const input = h('input', { type: 'text', value: glob || '**', placeholder: 'chat:* or **', testid: 'tail-channel', spellcheck: 'false' });
  const start = h('button', { type: 'submit', testid: 'tail-start' }, 'Start');
  const stop = h('button', { type: 'button', testid: 'tail-stop', disabled: true }, 'Stop');
  const pause = h('input', { type: 'checkbox' });
  const form = h('form', { class: 'inline' }, field('Channel glob', input), start, stop, h('label', { class: 'check' }, pause, ' pause display'));
  const err = errorSlot();
  const status = h('div', { class: 'hint', testid: 'tail-status' }, 'Not running.');
  const tbody = h('tbody', {});
  const tableEl = h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, ...['time', 'channel', 'offset', 'id', 'data'].map((t) => h('th', {}, t)))), tbody);
  let abort: AbortController | null = null;
  let count = 0;
  let held: Obj[] = [];

  const addRow = (e: Obj) => {
    const id = strOr(e.id);
    tbody.prepend(h('tr', { testid: 'tail-event', 'data-id': id },
      td(ts(numOr(e.ts))), td(strOr(e.channel)), td(numOr(e.offset) ? String(numOr(e.offset)) : 'ephemeral'),
      td(numOr(e.offset) ? routeLink(id, 'trace=' + encodeURIComponent(id)) : id),
      td(h('code', { class: 'data' }, truncate(str(e.data), 300)))));
    while (tbody.childElementCount > KEEP) tbody.lastElementChild?.remove();
  };
  pause.addEventListener('change', () => { if (!pause.checked) { for (const e of held) addRow(e); held = []; } });

  const run = async () => {
    abort?.abort();
    const ac = new AbortController();
    abort = ac;
    const channel = input.value.trim() || '**';
    start.disabled = true;
    stop.disabled = false;
    replace(err);
    replace(status, `Opening a tail of ${channel}…`);
    try {
      const body = await ctx.api.stream('tail', { channel }, ac.signal);
      count = 0;
      let open = false;
      for await (const ev of sse(body)) {
        // "Tailing" only once the server's first line arrived: from then on every commit is shown.
        if (!open) { open = true; replace(status, `Tailing ${channel}: 0 pubs.`); }
        if (ev.event === 'comment') continue;
        if (ev.event === 'disconnect') {
          let why = ev.data;
          try { const d = JSON.parse(ev.data) as Obj; why = `code ${str(d.code)}${d.reason ? `, ${str(d.reason)}` : ''}`; } catch { /* keep the text */ }
          replace(status, notice(`The server closed the tail (${why}): it fell behind. Start again to go on.`, 'notice warn'));
          return;
        }
        if (ev.event !== 'message' || !ev.data) continue;
        let e: Obj;
        try { e = JSON.parse(ev.data) as Obj; } catch { continue; }
        count++;
        if (pause.checked) { held.push(e); if (held.length > KEEP) held.shift(); } else addRow(e);
        status.textContent = `Tailing ${channel}: ${count} pub${count === 1 ? '' : 's'}${pause.checked ? ` (display paused, ${held.length} held)` : ''}.`;
      }
      if (!ac.signal.aborted) replace(status, notice('The server ended the tail. Start again to go on.', 'notice warn'));
    } catch (e) {
      if (ac.signal.aborted) return;
      if (e instanceof ApiError && e.unknownMethod) { replace(status, notAvailable('tail')); return; }
      replace(status, 'Not running.');
      showError(err, e);
    } finally {
      if (abort === ac) { abort = null; start.disabled = false; stop.disabled = true; }
    }
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); void run(); });
  stop.addEventListener('click', () => { abort?.abort(); replace(status, `Stopped after ${count} pubs.`); });

  const el = h('section', { class: 'page tail' },
    h('h2', {}, 'Live tail'),
    h('p', { class: 'hint' }, 'Pubs committed from now on whose channel matches the glob (* one segment, ** the rest). Nothing older is shown, and a tail that falls behind is closed by the server.'),
    form, err, status, tableEl);
  if (glob) void run();
  return { el, dispose: () => abort?.abort() };
}

interface SseEvent { event: string; data: string; }

/** Splits a text/event-stream into events; comment lines come as event "comment". */
export async function* sse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let event = 'message';
  let data: string[] = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line === '') {
          if (data.length || event !== 'message') yield { event, data: data.join('\n') };
          event = 'message';
          data = [];
        } else if (line.startsWith(':')) {
          // Comments (": tail open", ": ping") are passed on apart: they prove the stream is live.
          yield { event: 'comment', data: line.slice(1).trim() };
        } else {
          const i = line.indexOf(':');
          const name = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (name === 'data') data.push(val);
          else if (name === 'event') event = val;
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}
