// Overview: the server's vital signs from /metrics, sampled every second by
// the session's Sampler. The current values are text (for a quick read and
// for tests); the charts show the last five minutes.
import { LineChart } from '../chart';
import type { Ctx, Page } from '../ctx';
import { h, replace } from '../dom';
import { latency, num, str } from '../format';
import type { Point } from '../metrics';

export function overviewPage(ctx: Ctx): Page {
  const stat = (label: string, testid: string) => {
    const v = h('span', { class: 'stat-value', testid }, '—');
    return { el: h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label), v), v };
  };
  const conns = stat('connections', 'metric-connections');
  const pubs = stat('pubs/s', 'metric-pubs-rate');
  const deliv = stat('deliveries/s', 'metric-deliveries-rate');
  const p99 = stat('publish→delivery p99', 'metric-latency-p99');
  const batch = stat('commit batch (mean)', 'metric-commit-batch');
  const cuts = stat('slow-consumer cuts (total)', 'metric-slow-cuts');
  const status = h('div', { class: 'sampler-status' });
  // Things that should be 0: each links to the page that shows why.
  const alertDefs: { key: keyof Point['alerts']; label: string; page: string; testid: string }[] = [
    { key: 'webhooksFailing', label: 'webhook endpoints failing', page: 'webhooks', testid: 'alert-webhooks-failing' },
    { key: 'webhooksDisabled', label: 'webhook endpoints disabled', page: 'webhooks', testid: 'alert-webhooks-disabled' },
    { key: 'deadLettered', label: 'pubs dead-lettered (since start)', page: 'dlq', testid: 'alert-dead-lettered' },
    { key: 'routeLag', label: 'route lag (log entries)', page: 'webhooks', testid: 'alert-route-lag' },
    { key: 'commitFailures', label: 'commit failures (since start)', page: 'overview', testid: 'alert-commit-failures' },
    { key: 'storageQueue', label: 'publishes waiting for commit', page: 'overview', testid: 'alert-storage-queue' },
  ];
  const alertEls = alertDefs.map((d) => {
    const v = h('span', { class: 'alert-value', testid: d.testid }, '—');
    return { d, v, el: h('a', { class: 'alert', href: '#' + d.page }, v, ' ', d.label) };
  });

  const cConn = new LineChart('Connections', (v) => num(v, 0), 'chart-connections', 4);
  const cRate = new LineChart('Pubs and deliveries per second', (v) => num(v), 'chart-rates');
  const cLat = new LineChart('Publish → delivery latency', (v) => latency(v), 'chart-latency');
  const cBatch = new LineChart('Commit batch size (mean publishes per commit)', (v) => num(v), 'chart-batch');
  const cCuts = new LineChart('Slow-consumer disconnects per second', (v) => num(v, 2), 'chart-slow');

  const tokenInput = h('input', { type: 'password', placeholder: 'metrics_token', autocomplete: 'off' });
  const tokenForm = h('form', { class: 'inline hidden' }, tokenInput, h('button', { type: 'submit' }, 'Use token'));
  tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.sampler.token = tokenInput.value.trim();
    try { sessionStorage.setItem('parley.console.metricsToken', ctx.sampler.token); } catch { /* storage off */ }
  });

  const server = h('div', { class: 'hint', testid: 'server-info' });
  // What is answering: build, engine, workers. A key without the info scope just gets no line.
  ctx.api.call('info').then((i) => {
    const c = i.connections && typeof i.connections === 'object' && !Array.isArray(i.connections) ? i.connections : {};
    server.textContent = `Server: protocol version ${str(i.version)}, ${str(i.engine)} storage, ${str(i.workers)} workers; ${str(c.ws ?? 0)} WebSocket and ${str(c.sse ?? 0)} SSE connections, ${str(i.committed_pubs)} pubs committed since start.`;
  }).catch(() => { /* optional */ });
  const el = h('section', { class: 'page overview' },
    h('h2', {}, 'Overview'), server,
    h('p', { class: 'hint' }, 'Server-wide, from /metrics, sampled every second. Rates are counter deltas; latency quantiles cover the last 10 s.'),
    status, tokenForm,
    h('div', { class: 'stats' }, conns.el, pubs.el, deliv.el, p99.el, batch.el, cuts.el),
    h('div', { class: 'alerts' }, ...alertEls.map((a) => a.el)),
    h('div', { class: 'charts' }, cConn.el, cRate.el, cLat.el, cBatch.el, cCuts.el));

  const update = () => {
    const st = ctx.sampler.state;
    if (!st.ok) {
      replace(status, h('div', { class: 'error', testid: 'api-error' }, `/metrics: ${st.message}`));
      tokenForm.classList.toggle('hidden', st.status !== 401);
    } else {
      replace(status);
      tokenForm.classList.add('hidden');
    }
    const pts = ctx.sampler.points;
    const last: Point | undefined = pts[pts.length - 1];
    if (last) {
      conns.v.textContent = num(last.connections, 0);
      pubs.v.textContent = num(last.pubsRate);
      deliv.v.textContent = num(last.deliveriesRate);
      p99.v.textContent = latency(last.p99);
      batch.v.textContent = num(last.batchMean);
      cuts.v.textContent = num(last.slowCutsTotal, 0);
      for (const a of alertEls) {
        const v = last.alerts[a.d.key];
        a.v.textContent = num(v, 0);
        a.el.classList.toggle('alert-on', v !== null && v > 0);
        a.el.classList.toggle('hidden', v === null); // a server without that metric
      }
    }
    if (!el.isConnected) return; // canvases have no size before they are in the page
    const t = pts.map((p) => p.t);
    const col = (f: (p: Point) => number | null) => pts.map(f);
    cConn.draw(t, [{ label: 'open', color: '#2563eb', values: col((p) => p.connections) }]);
    cRate.draw(t, [
      { label: 'pubs/s', color: '#2563eb', values: col((p) => p.pubsRate) },
      { label: 'deliveries/s', color: '#16a34a', values: col((p) => p.deliveriesRate) },
    ]);
    cLat.draw(t, [
      { label: 'p50', color: '#16a34a', values: col((p) => p.p50) },
      { label: 'p95', color: '#d97706', values: col((p) => p.p95) },
      { label: 'p99', color: '#dc2626', values: col((p) => p.p99) },
    ]);
    cBatch.draw(t, [{ label: 'mean', color: '#7c3aed', values: col((p) => p.batchMean) }]);
    cCuts.draw(t, [{ label: 'cuts/s', color: '#dc2626', values: col((p) => p.slowCutsRate) }]);
  };
  ctx.sampler.onUpdate = update;
  // Draw what is already sampled once the page is attached.
  requestAnimationFrame(update);
  return { el, dispose: () => { if (ctx.sampler.onUpdate === update) ctx.sampler.onUpdate = null; } };
}
