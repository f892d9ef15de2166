// The operator's console at /admin, driven in headless Chromium against the
// real server: sign-in, live metrics while the API publishes, the trace of a
// pub from its deep link, replaying a dead-lettered guaranteed pub to a
// client that receives it again, and what a wrong key and a tenant key see.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, Server, launchChromium, screenshot, sleep, waitFor, watchErrors } from './helpers.mjs';

// A guaranteed namespace that gives up fast: 2 attempts, 300 ms apart, so a
// client that never acknowledges dead-letters its pub within a second.
// Webhook receivers of the tests listen on loopback, which the outbound
// guard refuses unless allowed.
const DEV_CONFIG = `dev_tokens: true
webhook_allowed_networks: ["127.0.0.0/8"]
namespaces:
  - {name: ""}
  - {name: chat}
  - {name: inbox, class: guaranteed, max_attempts: 2, ack_wait: 300ms, retry_min: 100ms, retry_max: 200ms}
`;

let srv;
let browser;

test('the overview\'s arithmetic: Prometheus text, counter rates, histogram quantiles', async () => {
  // metrics.ts is browser code without DOM use in these functions: bundle it for node and call it.
  const require = createRequire(join(ROOT, 'web', 'package.json'));
  const { build } = require('esbuild');
  const out = await build({ entryPoints: [join(ROOT, 'web', 'src', 'admin', 'metrics.ts')], bundle: true, format: 'esm', write: false, platform: 'neutral' });
  const m = await import('data:text/javascript;base64,' + Buffer.from(out.outputFiles[0].text).toString('base64'));
  const text = (pubs, le) => `# TYPE parley_pubs_total counter
parley_pubs_total{class="standard"} ${pubs}
parley_pubs_total{class="guaranteed"} 5
parley_connections{transport="ws"} 3
parley_connections{transport="sse"} 1
parley_delivery_latency_seconds_bucket{le="0.001"} ${le[0]}
parley_delivery_latency_seconds_bucket{le="0.01"} ${le[1]}
parley_delivery_latency_seconds_bucket{le="+Inf"} ${le[2]}
parley_label_escape{path="a\\"b"} 1
`;
  const f = m.parseMetrics(text(10, [0, 0, 0]));
  assert.equal(m.total(f, 'parley_connections'), 4);
  assert.equal(f.get('parley_label_escape')[0].labels.path, 'a"b');
  const a = m.reduce(1000, f);
  // 2 s later: 20 more pubs; 100 deliveries, 50 under 1 ms, 40 more under 10 ms, 10 slower.
  const b = m.reduce(3000, m.parseMetrics(text(30, [50, 90, 100])));
  const p = m.derive([a], b);
  assert.equal(p.pubsRate, 10);
  assert.equal(p.connections, 4);
  assert.equal(p.p50, 0.001);
  assert.ok(Math.abs(p.p95 - 0.01) < 1e-12, String(p.p95)); // in +Inf: the top finite bound
  assert.ok(Math.abs(m.quantile(0.7, b.latency, a.latency) - (0.001 + 0.009 * (20 / 40))) < 1e-12);
  assert.equal(m.quantile(0.5, a.latency, a.latency), null, 'no observations: no quantile');
  // A restart (counters lower than before) gives no rate rather than a negative one.
  assert.equal(m.derive([b], m.reduce(4000, m.parseMetrics(text(1, [0, 0, 0])))).pubsRate, null);
});
let errors = [];

before(async () => {
  srv = await new Server({ extra: DEV_CONFIG }).start();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await srv?.cleanup();
});

/**
 * A new page watched for uncaught errors and Content-Security-Policy
 * violations (console lines for 401/403 answers are expected: wrong keys,
 * the tenant-key probe).
 */
async function newPage() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  watchErrors(page, errors);
  await page.exposeFunction('cspViolation', (d) => errors.push(`csp: ${d}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolation(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return page;
}

function pageErrors() {
  return errors.filter((e) => e.startsWith('pageerror') || e.startsWith('csp'));
}

async function signIn(page, key, hash = '') {
  await page.goto(`${srv.origin}/admin${hash}`);
  await page.getByTestId('admin-key').fill(key);
  await page.getByTestId('admin-signin').click();
  await page.getByTestId('nav-overview').waitFor({ timeout: 10000 });
}

/**
 * A WebSocket client in its own page (Node 20 has no WebSocket): connects as
 * `user`, subscribes to `channel`, records every pub pushed and acknowledges
 * them only once `window.ackNow` is set.
 */
async function openClient(user, channel) {
  const token = (await srv.api('tokens.issue', { user, ttl: 3600 })).body.result?.token;
  assert.ok(token, 'tokens.issue (dev_tokens) gave no token');
  const page = await newPage();
  await page.goto(`${srv.origin}/healthz`);
  await page.evaluate(async ({ token, channel }) => {
    window.pubs = [];
    window.ackNow = false;
    window.subscribed = false;
    const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws', 'parley.v1');
    await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
    let next = 10;
    ws.onmessage = (ev) => {
      for (const line of String(ev.data).split('\n')) {
        if (!line) continue;
        const m = JSON.parse(line);
        if (m.id === 2 && m.result) window.subscribed = true;
        if (m.push !== 'pub') continue;
        window.pubs.push({ id: m.id, attempt: m.attempt ?? 0, offset: m.offset });
        if (window.ackNow) ws.send(JSON.stringify({ id: next++, method: 'ack', params: { channel: m.channel, offset: m.offset } }));
      }
    };
    ws.onclose = (ev) => { window.closeCode = ev.code; };
    ws.send(JSON.stringify({ id: 1, method: 'connect', params: { token } }));
    ws.send(JSON.stringify({ id: 2, method: 'subscribe', params: { channel } }));
  }, { token, channel });
  await waitFor(() => page.evaluate(() => window.subscribed), `${user} subscribed to ${channel}`, 5000);
  return page;
}

async function pubsOf(client, id) {
  return client.evaluate((id) => window.pubs.filter((p) => p.id === id), id);
}

test('a wrong key is refused with the server\'s message; the dev secret signs in', async () => {
  const page = await newPage();
  await page.goto(`${srv.origin}/admin`);
  await page.getByTestId('admin-key').fill('not-a-key');
  await page.getByTestId('admin-signin').click();
  const err = page.getByTestId('api-error');
  await err.waitFor({ timeout: 5000 });
  assert.match(await err.textContent(), /unauthorized/i);
  assert.equal(await page.getByTestId('nav-overview').count(), 0, 'a refused key must not open the console');
  await screenshot(page, 'console-signin-error');

  await page.getByTestId('admin-key').fill(srv.devSecret);
  await page.getByTestId('admin-signin').click();
  await page.getByTestId('nav-overview').waitFor({ timeout: 5000 });
  // The dev secret is a tenant key: no admin pages.
  assert.equal(await page.getByTestId('nav-tenants').count(), 0);
  assert.equal(await page.getByTestId('nav-audit').count(), 0);
  for (const p of ['channels', 'trace', 'dlq', 'webhooks', 'tail', 'connections']) assert.equal(await page.getByTestId(`nav-${p}`).count(), 1, `nav-${p}`);
  await page.close();
});

test('the overview shows pubs/s while the API publishes, and 0 once it stops', async () => {
  const page = await newPage();
  await signIn(page, srv.devSecret, '#overview');
  const rate = page.getByTestId('metric-pubs-rate');
  const client = await openClient('watcher', 'chat:load');
  let stop = false;
  let sent = 0;
  const load = (async () => {
    while (!stop) {
      const r = await srv.api('publish', { channel: 'chat:load', data: { n: sent } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      sent++;
      await sleep(10);
    }
  })();
  try {
    await waitFor(async () => Number(await rate.textContent()) > 0, 'pubs/s above 0', 10000, 100);
    await waitFor(async () => Number(await page.getByTestId('metric-deliveries-rate').textContent()) > 0, 'deliveries/s above 0', 10000, 100);
    assert.equal(await page.getByTestId('metric-connections').textContent(), '1');
    // Deliveries feed the latency histogram: its p99 is a time, not the blank.
    await waitFor(async () => /\d (ms|s)$/.test(await page.getByTestId('metric-latency-p99').textContent()), 'a p99 latency', 5000, 100);
    await screenshot(page, 'console-overview');
  } finally {
    stop = true;
    await load;
  }
  assert.ok(sent > 10, `published ${sent}`);
  // Rates come from deltas: with no more publishes the number falls back to 0.
  await waitFor(async () => Number(await rate.textContent()) === 0, 'pubs/s back to 0', 5000, 100);
  await client.close();
  await page.close();
  assert.deepEqual(pageErrors(), []);
});

test('a trace opens from /admin#trace=<id> after sign-in and shows commit, fan-out and deliveries', async () => {
  const client = await openClient('alice', 'chat:trace');
  const r = await srv.api('publish', { channel: 'chat:trace', data: { text: 'trace me' }, correlation_id: 'c-trace' });
  assert.equal(r.status, 200);
  const id = r.body.result.id;
  await waitFor(async () => (await pubsOf(client, id)).length === 1, 'the pub at the client', 5000);

  // The demo's link: a fresh tab on /admin#trace=ID signs in, then shows that trace.
  const page = await newPage();
  await signIn(page, srv.devSecret, `#trace=${id}`);
  const timeline = page.getByTestId('trace-timeline');
  await timeline.waitFor({ timeout: 5000 });
  assert.equal(await page.getByTestId('trace-input').inputValue(), id);
  const steps = await timeline.getByTestId('trace-step').allTextContents();
  assert.match(steps[0], /Accepted on chat:trace/);
  assert.ok(steps.some((s) => /Committed to storage at offset 1/.test(s)), steps.join('\n'));
  assert.ok(steps.some((s) => /Fanned out to 1 connection\b/.test(s)), steps.join('\n'));
  await screenshot(page, 'console-trace');

  // Pasting another id into the field traces that one; an unknown id shows the server's error.
  const r2 = await srv.api('publish', { channel: 'chat:trace', data: 2 });
  await page.getByTestId('trace-input').fill(r2.body.result.id);
  await page.getByTestId('trace-submit').click();
  await waitFor(async () => (await timeline.getByTestId('trace-step').allTextContents()).some((s) => /offset 2\b/.test(s)), 'the second trace', 5000);
  await page.getByTestId('trace-input').fill('01M00000000000000000000000');
  await page.getByTestId('trace-submit').click();
  await page.getByTestId('api-error').waitFor({ timeout: 5000 });
  assert.match(await page.getByTestId('api-error').textContent(), /trace: .*code 102/);
  await client.close();
  await page.close();
  assert.deepEqual(pageErrors(), []);
});

test('a dead-lettered guaranteed pub is replayed from the DLQ page, after confirmation, and arrives again', async () => {
  const client = await openClient('bob', 'inbox:#bob');
  const r = await srv.api('publish', { channel: 'inbox:#bob', data: { text: 'ack me' } });
  assert.equal(r.status, 200);
  const id = r.body.result.id;
  // Never acknowledged: 2 attempts, then the dead-letter queue.
  await waitFor(async () => (await srv.api('dlq.list', { user: 'bob' })).body.result.entries.some((e) => e.pub_id === id), 'the pub in the DLQ', 10000, 100);
  const before = await pubsOf(client, id);
  assert.deepEqual(before.map((p) => p.attempt), [1, 2]);

  const page = await newPage();
  await signIn(page, srv.devSecret, '#dlq');
  const entry = page.locator(`[data-testid="dlq-entry"][data-pub="${id}"]`);
  await entry.waitFor({ timeout: 5000 });
  assert.match(await entry.textContent(), /inbox:#bob.*bob.*max_attempts/);
  const entryId = await entry.getAttribute('data-id');
  await screenshot(page, 'console-dlq');

  // Cancel first: nothing happens.
  await entry.getByTestId('dlq-replay').click();
  await page.getByTestId('confirm-cancel').click();
  await sleep(300);
  assert.equal((await pubsOf(client, id)).length, 2, 'a cancelled replay must not send');
  assert.equal(await page.getByTestId('confirm-dialog').count(), 0);

  // This time the client acknowledges what it gets, so the pub leaves the queue for good.
  await client.evaluate(() => { window.ackNow = true; });
  await entry.getByTestId('dlq-replay').click();
  await screenshot(page, 'console-dlq-confirm');
  await page.getByTestId('confirm-ok').click();
  await page.getByText(/Replayed 1 entry/).waitFor({ timeout: 5000 });
  await waitFor(async () => (await pubsOf(client, id)).length === 3, 'the replayed pub at the client', 5000);
  assert.equal((await pubsOf(client, id))[2].attempt, 1, 'a replay starts again at attempt 1');
  await waitFor(async () => (await page.locator(`[data-testid="dlq-entry"][data-id="${entryId}"]`).count()) === 0, 'the entry gone from the page', 5000);
  const left = (await srv.api('dlq.list', {})).body.result.entries.filter((e) => e.pub_id === id);
  assert.deepEqual(left, []);
  await screenshot(page, 'console-dlq-replayed');

  // The trace now shows the replay and the acknowledgement.
  await page.goto(`${srv.origin}/admin#trace=${id}`);
  const delivery = page.locator('[data-testid="trace-step"][data-kind="delivery"]');
  await delivery.waitFor({ timeout: 5000 });
  await waitFor(async () => /acknowledged/.test(await delivery.textContent()) || (await page.reload(), false), 'acknowledged in the trace', 5000, 300);
  assert.match(await delivery.textContent(), /replayed/);
  await client.close();
  await page.close();
  assert.deepEqual(pageErrors(), []);
});

/** A webhook receiver on loopback answering `status` with `body`; records what it got. */
async function receiver() {
  const r = { status: 500, body: 'boom: receiver down', got: [] };
  r.server = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => { b += c; });
    req.on('end', () => { r.got.push({ status: r.status, body: b }); res.writeHead(r.status, { 'content-type': 'text/plain' }); res.end(r.body); });
  });
  await new Promise((res) => r.server.listen(0, '127.0.0.1', res));
  r.url = `http://127.0.0.1:${r.server.address().port}/hook`;
  return r;
}

test('the DLQ filter: purge what matches a user, after confirmation, and nothing else', async () => {
  const dave = await openClient('dave', 'inbox:#dave');
  const erin = await openClient('erin', 'inbox:#erin');
  const ids = [];
  for (const ch of ['inbox:#dave', 'inbox:#dave', 'inbox:#erin']) ids.push((await srv.api('publish', { channel: ch, data: { to: ch } })).body.result.id);
  await waitFor(async () => {
    const e = (await srv.api('dlq.list', {})).body.result.entries.map((x) => x.pub_id);
    return ids.every((id) => e.includes(id));
  }, 'three dead letters', 10000, 100);
  const page = await newPage();
  await signIn(page, srv.devSecret, '#dlq');
  await page.locator('input[name="user"]').fill('dave');
  await page.getByTestId('dlq-search').click();
  await waitFor(async () => (await page.getByTestId('dlq-entry').count()) === 2, 'the two entries of dave', 5000);
  await page.getByTestId('dlq-purge-filter').click();
  assert.match(await page.getByTestId('confirm-dialog').textContent(), /user = dave/);
  await page.getByTestId('confirm-ok').click();
  await page.getByText(/Purged 2 entries/).waitFor({ timeout: 5000 });
  assert.equal(await page.getByTestId('dlq-entry').count(), 0);
  const left = (await srv.api('dlq.list', {})).body.result.entries.map((x) => x.pub_id);
  assert.ok(left.includes(ids[2]), 'erin\'s entry stays');
  assert.ok(!left.includes(ids[0]) && !left.includes(ids[1]));
  await srv.api('dlq.purge', { user: 'erin' });
  await dave.close();
  await erin.close();
  await page.close();
  assert.deepEqual(pageErrors(), []);
});

test('webhooks: a failing endpoint shows why, its attempts show the receiver\'s answer, recover has a dry run', async () => {
  const recv = await receiver();
  try {
    const made = await srv.api('webhooks.create', { id: 'ops', url: recv.url, retry_schedule: ['0s', '100ms'], max_attempts: 2 });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    assert.equal((await srv.api('routes.create', { id: 'to-ops', match: { channel: 'chat:hooks' }, action: { webhook: 'ops' } })).status, 200);
    const id = (await srv.api('publish', { channel: 'chat:hooks', data: { severity: 'high' } })).body.result.id;
    const delivery = `${id}.ops`;
    await waitFor(async () => (await srv.api('dlq.list', { user: 'ops' })).body.result.entries.some((e) => e.delivery_id === delivery), 'the dead webhook delivery', 10000, 100);

    const page = await newPage();
    await signIn(page, srv.devSecret, `#webhooks=${encodeURIComponent(delivery)}`);
    const row = page.locator('[data-testid="webhook-row"][data-id="ops"]');
    await row.waitFor({ timeout: 5000 });
    assert.equal(await row.getAttribute('data-state'), 'failing');
    assert.match(await row.textContent(), /failing since/);
    const attempts = page.getByTestId('attempt-row');
    await attempts.nth(1).waitFor({ timeout: 5000 });
    assert.match(await attempts.nth(0).textContent(), /^1.*500.*ms.*HTTP 500.*boom: receiver down/);
    assert.equal(await page.getByTestId('route-row').count(), 1);
    await screenshot(page, 'console-webhooks-failing');

    // The overview flags it too.
    await page.getByTestId('nav-overview').click();
    await waitFor(async () => (await page.getByTestId('alert-webhooks-failing').textContent()) === '1', 'the failing endpoint on the overview', 5000, 100);

    // The trace lists the webhook delivery and each attempt with its status and latency.
    await page.goto(`${srv.origin}/admin#trace=${id}`);
    const hook = page.locator('[data-testid="trace-step"][data-kind="webhook"]');
    await hook.waitFor({ timeout: 5000 });
    assert.match(await hook.textContent(), /Webhook to ops \(route to-ops\): dead after 2 attempts/);
    assert.equal(await hook.getByTestId('trace-attempt').count(), 2);
    assert.match(await hook.getByTestId('trace-attempt').first().textContent(), /HTTP 500 · [0-9.]+ ms/);

    // The receiver is back: a dry run counts without sending, then queueing (confirmed) delivers.
    recv.status = 200;
    recv.body = 'ok';
    const sent = recv.got.length;
    await page.goto(`${srv.origin}/admin#webhooks`);
    await page.getByTestId('recover-dry-run').click();
    await page.getByTestId('recover-result').waitFor({ timeout: 5000 });
    assert.match(await page.getByTestId('recover-result').textContent(), /Dry run: 1 failed deliveries found, nothing queued/);
    await sleep(300);
    assert.equal(recv.got.length, sent, 'a dry run must send nothing');
    await page.getByTestId('recover-queue').click();
    await page.getByTestId('confirm-ok').click();
    await waitFor(async () => /1 found, 1 queued again/.test(await page.getByTestId('recover-result').textContent()), 'the recover result', 5000);
    await waitFor(() => recv.got.length === sent + 1, 'the recovered delivery at the receiver', 5000);
    await screenshot(page, 'console-webhooks-recovered');
    await page.close();
  } finally {
    recv.server.close();
    await srv.api('routes.delete', { id: 'to-ops' });
    await srv.api('webhooks.delete', { id: 'ops' });
  }
  assert.deepEqual(pageErrors(), []);
});

test('the live tail shows the pubs of a channel glob as they are committed', async () => {
  const page = await newPage();
  await signIn(page, srv.devSecret, '#tail=chat:*');
  await waitFor(async () => /^Tailing chat:\*/.test(await page.getByTestId('tail-status').textContent()), 'the tail open', 5000, 50);
  const inGlob = (await srv.api('publish', { channel: 'chat:tail', data: { text: 'tailed' } })).body.result.id;
  const outside = (await srv.api('publish', { channel: 'lobby', data: { text: 'not tailed' } })).body.result.id;
  const last = (await srv.api('publish', { channel: 'chat:tail2', data: { text: 'also tailed' } })).body.result.id;
  const row = page.locator(`[data-testid="tail-event"][data-id="${last}"]`);
  await row.waitFor({ timeout: 5000 });
  assert.match(await row.textContent(), /chat:tail2.*also tailed/);
  assert.equal(await page.locator(`[data-testid="tail-event"][data-id="${inGlob}"]`).count(), 1);
  assert.equal(await page.locator(`[data-testid="tail-event"][data-id="${outside}"]`).count(), 0, 'lobby is outside chat:*');
  // Newest first.
  assert.equal(await page.getByTestId('tail-event').first().getAttribute('data-id'), last);
  await screenshot(page, 'console-tail');
  await page.getByTestId('tail-stop').click();
  await srv.api('publish', { channel: 'chat:tail', data: { text: 'after stop' } });
  await sleep(300);
  assert.equal(await page.getByTestId('tail-event').count(), 2, 'a stopped tail shows nothing more');
  await page.close();
  assert.deepEqual(pageErrors(), []);
});

test('the connections of a user are listed and one is disconnected after confirmation', async () => {
  const first = await openClient('carol', 'chat:c1');
  const second = await openClient('carol', 'chat:c2');
  const page = await newPage();
  await signIn(page, srv.devSecret, '#connections=carol');
  const rows = page.getByTestId('connection-row');
  await rows.nth(1).waitFor({ timeout: 5000 });
  assert.equal(await rows.count(), 2);
  const texts = await rows.allTextContents();
  assert.ok(texts.some((t) => /ws.*127\.0\.0\.1:\d+.*chat:c1/.test(t)), texts.join('\n'));
  assert.ok(texts.some((t) => /chat:c2/.test(t)), texts.join('\n'));
  await screenshot(page, 'console-connections');

  const target = page.locator('[data-testid="connection-row"]', { hasText: 'chat:c1' });
  const client = await target.getAttribute('data-id');
  await target.getByTestId('disconnect-client').click();
  await page.getByTestId('confirm-ok').click();
  await waitFor(() => first.evaluate(() => window.closeCode), 'the first connection closed', 5000);
  assert.equal(await first.evaluate(() => window.closeCode), 4503);
  await waitFor(async () => (await rows.count()) === 1, 'one connection left on the page', 5000);
  assert.equal(await page.locator(`[data-testid="connection-row"][data-id="${client}"]`).count(), 0);
  assert.equal(await second.evaluate(() => window.closeCode ?? null), null, 'the other connection stays');
  await first.close();
  await second.close();
  await page.close();
  assert.deepEqual(pageErrors(), []);
});

test('the other pages render against this server', async () => {
  const page = await newPage();
  await signIn(page, srv.devSecret);
  await srv.api('publish', { channel: 'chat:pages', data: { text: 'history row' } });
  for (const name of ['channels', 'webhooks', 'connections']) {
    await page.getByTestId(`nav-${name}`).click();
    await page.locator(`section.page.${name}`).waitFor({ timeout: 5000 });
    await sleep(300);
    assert.equal(await page.getByTestId('api-error').count(), 0, `${name}: ${await page.locator('.error').allTextContents()}`);
    await screenshot(page, `console-${name}`);
  }
  await page.goto(`${srv.origin}/admin#channels=chat:pages`);
  await page.getByTestId('history-row').first().waitFor({ timeout: 5000 });
  assert.match(await page.getByTestId('history-row').first().textContent(), /history row/);
  await page.close();
  assert.deepEqual(pageErrors(), []);
});

test('with tenants: a tenant key sees no admin pages, the admin key sees the tenants and keys', async () => {
  const multi = new Server({ extra: `admin_key: "adm_console_test_key_0123"
tenants:
  - id: acme
    jwt_secret: "acme-secret-0123456789"
    api_keys:
      - {key: "pk_acme_console_test", scopes: ["*"]}
` });
  await multi.start();
  try {
    const page = await newPage();
    await page.goto(`${multi.origin}/admin`);
    await page.getByTestId('admin-key').fill('pk_acme_console_test');
    await page.getByTestId('admin-signin').click();
    await page.getByTestId('nav-overview').waitFor({ timeout: 5000 });
    assert.equal(await page.getByTestId('nav-tenants').count(), 0);
    assert.equal(await page.getByTestId('nav-audit').count(), 0);
    assert.equal(await page.getByTestId('who').textContent(), 'tenant key');
    await page.goto(`${multi.origin}/admin#tenants`);
    await page.getByText('This page needs the admin key.').waitFor({ timeout: 5000 });
    await page.getByTestId('signout').click();

    await page.getByTestId('admin-key').fill('adm_console_test_key_0123');
    await page.getByTestId('admin-signin').click();
    await page.getByTestId('nav-tenants').click();
    const row = page.locator('[data-testid="tenant-row"][data-id="acme"]');
    await row.waitFor({ timeout: 5000 });
    await page.getByTestId('key-row').first().waitFor({ timeout: 5000 });
    await screenshot(page, 'console-tenants');

    // A key revoked from this page stops working at once: a console signed in with it goes back to sign-in.
    const made = await multi.api('keys.create', { tenant: 'acme', scopes: ['dlq'] }, 'adm_console_test_key_0123');
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const other = await newPage();
    await other.goto(`${multi.origin}/admin#dlq`);
    await other.getByTestId('admin-key').fill(made.body.result.key);
    await other.getByTestId('admin-signin').click();
    await other.locator('section.page.dlq').waitFor({ timeout: 5000 });
    await page.getByTestId('nav-dlq').click();
    await page.getByTestId('nav-tenants').click();
    const keyRow = page.locator(`[data-testid="key-row"][data-id="${made.body.result.id}"]`);
    await keyRow.getByTestId('key-revoke').click();
    await page.getByTestId('confirm-ok').click();
    await waitFor(async () => /revoked/.test(await keyRow.textContent()), 'the key shown revoked', 5000);
    await other.getByTestId('dlq-refresh').click();
    await other.getByTestId('admin-key').waitFor({ timeout: 5000 });
    assert.match(await other.getByTestId('api-error').textContent(), /no longer accepts this key/);
    await other.close();
    // Tenant pages act in the chosen tenant: the DLQ page answers for acme.
    await page.getByTestId('nav-dlq').click();
    await page.locator('section.page.dlq .notice, [data-testid="dlq-entry"]').first().waitFor({ timeout: 5000 });
    assert.equal(await page.getByTestId('api-error').count(), 0);
    // The revoke is in the audit log, whose chain the server verifies.
    await page.getByTestId('nav-audit').click();
    await page.getByTestId('audit-verified').waitFor({ timeout: 5000 });
    assert.match(await page.getByTestId('audit-verified').textContent(), /Hash chain verified: \d+ records/);
    const revoked = page.locator('[data-testid="audit-entry"]', { hasText: 'keys.revoke' });
    assert.equal(await revoked.count(), 1);
    assert.match(await revoked.textContent(), new RegExp(made.body.result.id));
    // Newest first: the revoke comes before the key's creation.
    const actions = await page.locator('[data-testid="audit-entry"] td:nth-child(4)').allTextContents();
    assert.ok(actions.indexOf('keys.revoke') < actions.indexOf('keys.create'), actions.join(', '));
    await screenshot(page, 'console-audit');
    await page.close();
  } finally {
    await multi.cleanup();
  }
  assert.deepEqual(pageErrors(), []);
});
