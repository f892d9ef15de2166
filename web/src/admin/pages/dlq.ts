// Dead-letter queue: guaranteed pubs a user never acknowledged and webhook
// deliveries that failed their last attempt. Filter, inspect, replay or
// purge (one entry, everything the filter matches, or all), each after an
// in-page confirmation: these change what users and receivers get.
import { arr, numOr, strOr, type Obj } from '../api';
import type { Ctx, Page } from '../ctx';
import { field, h, jsonBlock, replace, routeLink, table, td } from '../dom';
import { str, ts } from '../format';
import { busy, confirmDialog, errorSlot, notice } from '../ui';

export function dlqPage(ctx: Ctx): Page {
  const channel = h('input', { type: 'text', name: 'channel', placeholder: 'inbox:#bob' });
  const user = h('input', { type: 'text', name: 'user', placeholder: 'user or endpoint id' });
  const reason = h('input', { type: 'text', name: 'reason', placeholder: 'max_attempts, webhook_failed…', list: 'dlq-reasons' });
  const reasons = h('datalist', { id: 'dlq-reasons' }, h('option', { value: 'max_attempts' }), h('option', { value: 'webhook_failed' }));
  // Failed between (local time): "everything that died during the outage".
  const since = h('input', { type: 'datetime-local', step: 1, testid: 'dlq-since' });
  const until = h('input', { type: 'datetime-local', step: 1, testid: 'dlq-until' });
  const form = h('form', { class: 'filters' }, field('Channel', channel), field('User', user), field('Reason', reason), reasons,
    field('Failed since', since), field('Failed before', until),
    h('button', { type: 'submit', testid: 'dlq-search' }, 'Search'));
  const err = errorSlot();
  const result = h('div', { class: 'result' });
  const list = h('div', { class: 'dlq-list' });
  const more = h('button', { class: 'hidden', testid: 'dlq-more' }, 'More');
  let cursor = 0;
  let entries: Obj[] = [];

  const filter = (): Obj => {
    const f: Obj = {};
    if (channel.value.trim()) f.channel = channel.value.trim();
    if (user.value.trim()) f.user = user.value.trim();
    if (reason.value.trim()) f.reason = reason.value.trim();
    const t0 = since.value ? new Date(since.value).getTime() : NaN;
    const t1 = until.value ? new Date(until.value).getTime() : NaN;
    if (Number.isFinite(t0)) f.since = t0;
    if (Number.isFinite(t1)) f.until = t1;
    return f;
  };
  const describe = (f: Obj) => Object.entries(f).map(([k, v]) => (k === 'since' || k === 'until') && typeof v === 'number' ? `${k} ${ts(v)}` : `${k} = ${str(v)}`).join(', ');

  const load = async (append: boolean) => {
    const params: Obj = { ...filter(), limit: 100 };
    if (append && cursor) params.cursor = cursor;
    const r = await ctx.api.call('dlq.list', params);
    const got = arr(r.entries);
    entries = append ? entries.concat(got) : got;
    cursor = numOr(r.cursor);
    more.classList.toggle('hidden', !cursor);
    draw();
  };

  const act = async (method: 'dlq.replay' | 'dlq.purge', target: Obj, what: string, btn: HTMLButtonElement | null) => {
    const verb = method === 'dlq.replay' ? 'Replay' : 'Purge';
    const detail = method === 'dlq.replay'
      ? `Delivery starts again at attempt 1 for ${what}. Recipients may see these pubs again.`
      : `The entries for ${what} are removed for good (webhook deliveries stay dead in hooks.db).`;
    if (!(await confirmDialog(`${verb} ${what}?`, detail, verb))) return;
    await busy(btn, err, async () => {
      const r = await ctx.api.call(method, target);
      replace(result, notice(`${verb === 'Replay' ? 'Replayed' : 'Purged'} ${numOr(r.count)} entr${numOr(r.count) === 1 ? 'y' : 'ies'} (${what}).`, 'notice ok'));
      await load(false);
    });
  };

  const draw = () => {
    if (!entries.length) { replace(list, notice('The dead-letter queue has no entries matching this filter.')); return; }
    replace(list, table(['id', 'failed', 'kind', 'channel', 'user / endpoint', 'reason', 'attempts', 'last error', ''], entries.map((e) => {
      const id = numOr(e.id);
      const pub = strOr(e.pub_id);
      const detail = h('tr', { class: 'detail hidden' }, h('td', { colspan: 9 }, jsonBlock(e)));
      const inspect = h('button', { class: 'small', testid: 'dlq-inspect' }, 'Inspect');
      inspect.addEventListener('click', () => detail.classList.toggle('hidden'));
      const replay = h('button', { class: 'small', testid: 'dlq-replay' }, 'Replay');
      replay.addEventListener('click', () => void act('dlq.replay', { id }, `entry ${id}`, replay));
      const purge = h('button', { class: 'small danger', testid: 'dlq-purge' }, 'Purge');
      purge.addEventListener('click', () => void act('dlq.purge', { id }, `entry ${id}`, purge));
      const row = h('tr', { testid: 'dlq-entry', 'data-id': id, 'data-pub': pub },
        td(String(id)), td(ts(numOr(e.failed_at))), td(strOr(e.kind, 'delivery')), td(strOr(e.channel)),
        td(strOr(e.user) || strOr(e.endpoint)), td(strOr(e.reason)), td(String(numOr(e.attempts))), td(str(e.last_error)),
        td(h('span', { class: 'actions' }, pub ? routeLink('Trace', 'trace=' + encodeURIComponent(pub), { class: 'button small' }) : '',
          // A webhook entry's receiver answers are on the webhooks page.
          strOr(e.delivery_id) ? routeLink('Attempts', 'webhooks=' + encodeURIComponent(strOr(e.delivery_id)), { class: 'button small' }) : '',
          inspect, replay, purge)));
      const frag = document.createDocumentFragment();
      frag.append(row, detail);
      return frag;
    }), { class: 'grid' }));
  };

  const replayFilter = h('button', { testid: 'dlq-replay-filter' }, 'Replay matching');
  const purgeFilter = h('button', { class: 'danger', testid: 'dlq-purge-filter' }, 'Purge matching');
  const replayAll = h('button', { testid: 'dlq-replay-all' }, 'Replay all');
  const purgeAll = h('button', { class: 'danger', testid: 'dlq-purge-all' }, 'Purge all');
  const byFilter = (method: 'dlq.replay' | 'dlq.purge', btn: HTMLButtonElement) => {
    const f = filter();
    // An empty filter would be "no target" (400): say so instead of asking.
    if (!Object.keys(f).length) { replace(result, notice('Set a filter first, or use "all".', 'notice warn')); return; }
    void act(method, f, `the entries matching ${describe(f)}`, btn);
  };
  replayFilter.addEventListener('click', () => byFilter('dlq.replay', replayFilter));
  purgeFilter.addEventListener('click', () => byFilter('dlq.purge', purgeFilter));
  replayAll.addEventListener('click', () => void act('dlq.replay', { all: true }, 'every entry of the queue', replayAll));
  purgeAll.addEventListener('click', () => void act('dlq.purge', { all: true }, 'every entry of the queue', purgeAll));

  form.addEventListener('submit', (ev) => { ev.preventDefault(); void busy(null, err, () => load(false)); });
  more.addEventListener('click', () => void busy(more, err, () => load(true)));
  const refresh = h('button', { testid: 'dlq-refresh' }, 'Refresh');
  refresh.addEventListener('click', () => void busy(refresh, err, () => load(false)));

  const el = h('section', { class: 'page dlq' },
    h('h2', {}, 'Dead-letter queue'),
    form,
    h('div', { class: 'toolbar' }, refresh, replayFilter, purgeFilter, replayAll, purgeAll),
    err, result, list, more);
  void busy(null, err, () => load(false));
  return { el };
}
