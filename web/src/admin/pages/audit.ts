// Audit log (admin key): the newest records first, paged with `before`, and
// the server's verification of the hash chain. Older servers lack
// audit.list (104): the page says so instead of failing.
import { ApiError, arr, numOr, strOr, type Obj } from '../api';
import type { Ctx, Page } from '../ctx';
import { h, jsonBlock, replace, table, td } from '../dom';
import { str, ts } from '../format';
import { busy, errorSlot, notAvailable, notice } from '../ui';

const PAGE = 100;

export function auditPage(ctx: Ctx): Page {
  const err = errorSlot();
  const verified = h('div', {});
  const list = h('div', {});
  const older = h('button', { class: 'hidden' }, 'Older');
  let rows: Obj[] = [];
  let before: number | string | null = null;

  const load = async (append: boolean) => {
    const params: Obj = { limit: PAGE };
    if (append && before !== null) params.before = before;
    let r: Obj;
    try {
      r = await ctx.api.call('audit.list', params);
    } catch (e) {
      if (e instanceof ApiError && e.unknownMethod) { replace(list, notAvailable('audit.list')); return; }
      throw e;
    }
    const got = arr(r.entries);
    rows = append ? rows.concat(got) : got;
    drawVerified(r.verified);
    // Page with the smallest sequence number (or id) seen; the shape is read defensively.
    const last = got[got.length - 1];
    const key = last ? (last.seq ?? last.id ?? last.index) : null;
    before = typeof key === 'number' || typeof key === 'string' ? key : null;
    older.classList.toggle('hidden', got.length < PAGE || before === null);
    replace(list, rows.length ? table(['#', 'time', 'actor', 'action', 'tenant', 'details'], rows.map((e) => h('tr', { testid: 'audit-entry' },
      td(str(e.seq ?? e.id ?? e.index ?? '')), td(ts(numOr(e.ts, numOr(e.at)))), td(str(e.actor)), td(strOr(e.action)), td(str(e.tenant)),
      td(h('code', { class: 'data' }, str(e.details ?? e.detail ?? e.params ?? ''))))), { class: 'grid' }) : notice('The audit log is empty.'));
  };

  const drawVerified = (v: unknown) => {
    if (!v || typeof v !== 'object') { replace(verified); return; }
    const o = v as Obj;
    const ok = o.ok === true || o.valid === true || o.verified === true;
    const bad = o.ok === false || o.valid === false || o.verified === false;
    replace(verified, h('div', { class: `notice ${ok ? 'ok' : bad ? 'bad' : ''}`, testid: 'audit-verified' },
      ok ? 'Hash chain verified: no record was changed or removed.' : bad ? 'Hash chain BROKEN: the log was changed. See the details.' : 'Chain verification:'),
      jsonBlock(o));
  };

  older.addEventListener('click', () => void busy(older, err, () => load(true)));
  const refresh = h('button', {}, 'Refresh');
  refresh.addEventListener('click', () => void busy(refresh, err, () => load(false)));
  const el = h('section', { class: 'page audit' }, h('h2', {}, 'Audit log'), h('div', { class: 'toolbar' }, refresh), err, verified, list, older);
  void busy(null, err, () => load(false));
  return { el };
}
