// Audit log (admin key): the newest records first, paged back with the
// answer's cursor, and the server's check of the hash chain (the same as
// `parley audit verify`). A server without audit.list (104) gets a notice.
import { ApiError, arr, numOr, strOr, type Obj } from '../api';
import type { Ctx, Page } from '../ctx';
import { h, replace, table, td } from '../dom';
import { str, ts } from '../format';
import { busy, errorSlot, notAvailable, notice } from '../ui';

const PAGE = 100;

export function auditPage(ctx: Ctx): Page {
  const err = errorSlot();
  const verified = h('div', {});
  const list = h('div', {});
  const older = h('button', { class: 'hidden', testid: 'audit-older' }, 'Older');
  let rows: Obj[] = [];
  let cursor = 0;

  const load = async (append: boolean) => {
    const params: Obj = { limit: PAGE };
    if (append && cursor) params.before = cursor;
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
    cursor = numOr(r.cursor);
    older.classList.toggle('hidden', !cursor);
    replace(list, rows.length ? table(['#', 'time', 'actor', 'action', 'tenant', 'target', 'details'], rows.map((e) => {
      // A line of the file that is not a JSON object comes back as {"corrupt": line}.
      if (typeof e.corrupt === 'string') {
        return h('tr', { testid: 'audit-entry', class: 'corrupt' }, h('td', { colspan: 7 }, 'Not a record (corrupt line): ', h('code', {}, e.corrupt)));
      }
      const details = e.details && typeof e.details === 'object' && Object.keys(e.details).length ? str(e.details) : '';
      return h('tr', { testid: 'audit-entry', 'data-seq': numOr(e.seq) },
        td(String(numOr(e.seq))), td(ts(numOr(e.ts))), td(strOr(e.actor)), td(strOr(e.action)), td(strOr(e.tenant)),
        td(h('code', {}, strOr(e.target))),
        td(h('code', { class: 'data' }, details), e.correlation_id ? h('div', { class: 'hint' }, `correlation ${str(e.correlation_id)}`) : ''));
    }), { class: 'grid' }) : notice('The audit log is empty.'));
  };

  const drawVerified = (v: unknown) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) { replace(verified); return; }
    const o = v as Obj;
    if (o.ok === true) {
      replace(verified, h('div', { class: 'notice ok', testid: 'audit-verified' }, `Hash chain verified: ${numOr(o.entries)} records, none changed or removed.`));
    } else {
      replace(verified, h('div', { class: 'notice bad', testid: 'audit-verified' },
        `Hash chain BROKEN after ${numOr(o.entries)} good records: ${strOr(o.error, 'no reason given')}. The log was altered: keep a copy and investigate.`));
    }
  };

  older.addEventListener('click', () => void busy(older, err, () => load(true)));
  const refresh = h('button', {}, 'Refresh');
  refresh.addEventListener('click', () => void busy(refresh, err, () => load(false)));
  const el = h('section', { class: 'page audit' }, h('h2', {}, 'Audit log'), h('div', { class: 'toolbar' }, refresh), err, verified, list, older);
  void busy(null, err, () => load(false));
  return { el };
}
