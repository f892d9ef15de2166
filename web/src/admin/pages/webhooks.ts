// Webhooks: each endpoint with its health and why (reason, failing since,
// when it would be disabled), the attempts of a delivery with the
// receiver's answers, replay of one delivery, recovery of a time window with
// a dry run first, secret rotation, and the routes that feed the endpoints.
import { arr, numOr, strOr, type Obj } from '../api';
import type { Ctx, Page } from '../ctx';
import { field, h, jsonBlock, replace, table, td } from '../dom';
import { ago, str, ts } from '../format';
import { busy, confirmDialog, errorSlot, notice } from '../ui';

export function webhooksPage(ctx: Ctx, delivery: string): Page {
  const err = errorSlot();
  const result = h('div', { class: 'result' });
  const endpoints = h('div', {});
  const routes = h('div', {});
  const endpointSelect = h('select', { testid: 'recover-endpoint' });

  const loadEndpoints = async () => {
    const r = await ctx.api.call('webhooks.list');
    const list = arr(r.webhooks);
    replace(endpointSelect, ...list.map((w) => h('option', { value: strOr(w.id) }, strOr(w.id))));
    if (!list.length) { replace(endpoints, notice('No webhook endpoints in this tenant.')); return; }
    replace(endpoints, table(['endpoint', 'state', 'why', 'last success', 'last failure', 'pending', 'in flight', 'source', ''], list.map((w) => {
      const hl = (w.health && typeof w.health === 'object' && !Array.isArray(w.health) ? w.health : {}) as Obj;
      const state = strOr(hl.state, '?');
      const id = strOr(w.id);
      const why: string[] = [];
      if (hl.reason) why.push(str(hl.reason));
      if (w.enabled === false) why.push('disabled in its definition');
      if (numOr(hl.failing_since)) why.push(`failing since ${ts(numOr(hl.failing_since))}`);
      if (numOr(hl.disable_at)) why.push(`disabled at ${ts(numOr(hl.disable_at))} if it keeps failing`);
      const detail = h('tr', { class: 'detail hidden' }, h('td', { colspan: 9 }));
      const health = h('button', { class: 'small' }, 'Details');
      health.addEventListener('click', () => void busy(health, err, async () => {
        const hr = await ctx.api.call('webhooks.health', { id });
        replace(detail.firstChild as HTMLElement, h('div', { class: 'kv' }, `url ${strOr(w.url)}`), jsonBlock({ deliveries: hr.deliveries, health: hr, definition: { ...w, health: undefined } }));
        detail.classList.remove('hidden');
      }));
      const enable = h('button', { class: 'small' + (state === 'disabled' || w.enabled === false ? '' : ' hidden') }, 'Re-enable');
      enable.addEventListener('click', async () => {
        if (!(await confirmDialog(`Re-enable ${id}?`, 'Its health starts again as healthy. Deliveries that died while disabled stay dead until you recover them below.', 'Re-enable'))) return;
        await busy(enable, err, async () => { await ctx.api.call('webhooks.update', { id, enabled: true }); replace(result, notice(`${id} re-enabled.`, 'notice ok')); await loadEndpoints(); });
      });
      const rotate = h('button', { class: 'small' + (strOr(w.source) === 'config' ? ' hidden' : '') }, 'Rotate secret');
      rotate.addEventListener('click', async () => {
        if (!(await confirmDialog(`Rotate the signing secret of ${id}?`, 'A new secret signs first; the previous ones keep signing beside it for 24 h so receivers can move over.', 'Rotate'))) return;
        await busy(rotate, err, async () => {
          const rr = await ctx.api.call('webhooks.rotate_secret', { id, expire_previous_in: '24h' });
          replace(result, h('div', { class: 'notice ok', testid: 'new-secret' },
            `New secret of ${id} (shown only now, give it to the receiver): `, h('code', {}, strOr(rr.secret)),
            `. Previous secrets stop signing at ${ts(numOr(rr.previous_expire_at))}.`));
        });
      });
      return fragment(h('tr', { testid: 'webhook-row', 'data-id': id, 'data-state': state },
        td(h('strong', {}, id), h('div', { class: 'hint' }, strOr(w.url))),
        td(h('span', { class: `badge badge-${state}` }, state)), td(why.join('; ') || '—'),
        td(ago(numOr(hl.last_success))), td(ago(numOr(hl.last_failure))),
        td(String(numOr(hl.pending))), td(String(numOr(hl.in_flight))), td(strOr(w.source)),
        td(h('span', { class: 'actions' }, health, enable, rotate))), detail);
    }), { class: 'grid' }));
  };

  const loadRoutes = async () => {
    const r = await ctx.api.call('routes.list');
    const list = arr(r.routes);
    replace(routes, list.length ? table(['route', 'match', 'action', 'enabled', 'matched', 'unroutable', 'source'], list.map((x) => h('tr', { testid: 'route-row' },
      td(strOr(x.id)), td(h('code', {}, str(x.match))), td(h('code', {}, str(x.action))), td(x.enabled === false ? 'no' : 'yes'),
      td(String(numOr(x.matched))), td(String(numOr(x.unroutable))), td(strOr(x.source)))), { class: 'grid' }) : notice('No routes.'));
  };

  // Attempts of one delivery: what the receiver answered, page by page.
  const deliveryInput = h('input', { type: 'text', placeholder: '<pub id>.<endpoint id>', value: delivery, size: 40, testid: 'attempts-input' });
  const attempts = h('div', {});
  let after = 0;
  let shown: Obj[] = [];
  const moreAttempts = h('button', { class: 'hidden' }, 'Later attempts');
  const loadAttempts = async (append: boolean) => {
    const d = deliveryInput.value.trim();
    if (!d) return;
    const r = await ctx.api.call('webhooks.attempts', { delivery: d, after: append ? after : 0, limit: 50 });
    const got = arr(r.attempts);
    shown = append ? shown.concat(got) : got;
    if (shown.length) after = numOr(shown[shown.length - 1].attempt);
    moreAttempts.classList.toggle('hidden', r.more !== true);
    const replay = h('button', { testid: 'webhook-replay' }, 'Replay this delivery');
    replay.addEventListener('click', async () => {
      if (!(await confirmDialog(`Replay ${d}?`, 'Its body goes to the endpoint again from attempt 1, signed afresh. Only a dead or aborted delivery can be replayed.', 'Replay'))) return;
      await busy(replay, err, async () => { await ctx.api.call('webhooks.replay', { delivery: d }); replace(result, notice(`${d} queued again.`, 'notice ok')); });
    });
    replace(attempts, shown.length ? table(['attempt', 'time', 'status', 'latency', 'error', 'response'], shown.map((a) => h('tr', { testid: 'attempt-row' },
      td(String(numOr(a.attempt))), td(ts(numOr(a.ts))), td(numOr(a.status) ? String(numOr(a.status)) : 'no answer'),
      td(`${numOr(a.latency_ms).toFixed(1)} ms`), td(str(a.error) || 'delivered'),
      td(a.headers && typeof a.headers === 'object' && Object.keys(a.headers).length ? h('div', { class: 'hint' }, str(a.headers)) : '',
        typeof a.body === 'string' && a.body ? h('pre', { class: 'excerpt' }, a.body.slice(0, 1000)) : ''))), { class: 'grid' }) : notice('No attempts yet.'), replay);
  };
  const attemptsForm = h('form', { class: 'inline' }, field('Delivery', deliveryInput), h('button', { type: 'submit' }, 'Show attempts'));
  attemptsForm.addEventListener('submit', (ev) => { ev.preventDefault(); void busy(null, err, () => loadAttempts(false)); });
  moreAttempts.addEventListener('click', () => void busy(moreAttempts, err, () => loadAttempts(true)));

  // Recovery of a window: always offer the dry run; queueing asks first.
  const since = h('input', { type: 'datetime-local', step: 1, testid: 'recover-since' });
  since.value = localInput(Date.now() - 3600000);
  const until = h('input', { type: 'datetime-local', step: 1 });
  const chan = h('input', { type: 'text', placeholder: 'alerts:** (optional)' });
  const recoverOut = h('div', {});
  const recover = async (dry: boolean, btn: HTMLButtonElement) => {
    const params: Obj = { endpoint: endpointSelect.value, since: new Date(since.value).getTime(), dry_run: dry };
    if (!endpointSelect.value) { replace(recoverOut, notice('No endpoint to recover.', 'notice warn')); return; }
    if (!Number.isFinite(params.since)) { replace(recoverOut, notice('Set "since".', 'notice warn')); return; }
    if (until.value) params.until = new Date(until.value).getTime();
    if (chan.value.trim()) params.filter = { channel: chan.value.trim() };
    if (!dry && !(await confirmDialog(`Queue again the failed deliveries of ${endpointSelect.value}?`, `Every dead or aborted delivery created since ${ts(params.since as number)}${params.until ? ` until ${ts(params.until as number)}` : ''}${params.filter ? ` on ${chan.value.trim()}` : ''} goes to the endpoint again.`, 'Queue them'))) return;
    await busy(btn, err, async () => {
      const r = await ctx.api.call('webhooks.recover', params);
      replace(recoverOut, h('div', { class: 'notice ok', testid: 'recover-result' },
        r.dry_run ? `Dry run: ${numOr(r.count)} failed deliveries found, nothing queued.` : `${numOr(r.count)} found, ${numOr(r.queued)} queued again.`),
        Array.isArray(r.ids) && r.ids.length ? h('ul', {}, ...r.ids.map((i) => h('li', {}, h('code', {}, str(i))))) : '');
    });
  };
  const dryBtn = h('button', { type: 'button', testid: 'recover-dry-run' }, 'Dry run');
  const goBtn = h('button', { type: 'button', class: 'danger', testid: 'recover-queue' }, 'Queue them');
  dryBtn.addEventListener('click', () => void recover(true, dryBtn));
  goBtn.addEventListener('click', () => void recover(false, goBtn));

  const refresh = h('button', {}, 'Refresh');
  refresh.addEventListener('click', () => void busy(refresh, err, async () => { await Promise.all([loadEndpoints(), loadRoutes()]); }));

  const el = h('section', { class: 'page webhooks' },
    h('h2', {}, 'Webhooks'), h('div', { class: 'toolbar' }, refresh), err, result,
    h('h3', {}, 'Endpoints'), endpoints,
    h('h3', {}, 'Attempts of a delivery'), attemptsForm, attempts, moreAttempts,
    h('h3', {}, 'Recover failed deliveries since…'),
    h('div', { class: 'filters' }, field('Endpoint', endpointSelect), field('Since (local time)', since), field('Until (optional)', until), field('Channel filter', chan), dryBtn, goBtn),
    recoverOut,
    h('h3', {}, 'Routes'), routes);
  void busy(null, err, async () => { await Promise.all([loadEndpoints(), loadRoutes(), delivery ? loadAttempts(false) : Promise.resolve()]); });
  return { el };
}

function fragment(...nodes: Node[]): DocumentFragment {
  const f = document.createDocumentFragment();
  f.append(...nodes);
  return f;
}

/** A datetime-local input's value for unix ms, in the browser's time zone. */
function localInput(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
