// The basic scenario in headless Chromium: the page loads the built ES module
// bundle (dist/parley.browser.min.js) from a node:http server on loopback and
// uses the browser's native WebSocket. connect, subscribe, publish, receive;
// then SIGTERM the server, restart it on the same data dir, publish from Node
// while the page is held off it, and check the page gets exactly the missed
// pubs, in order, through recovery.
//
// Needs Debian's chromium (/usr/bin/chromium, or PARLEY_CHROMIUM) and
// playwright-core (a devDependency; Playwright's own browsers are never
// downloaded). A missing browser is a failure, not a skip.
//
// Second scenario: the IndexedDB outbox across a page reload. The page
// publishes while held off the server, waits for outboxSaved(), is reloaded;
// the new page's client loads the store and sends each publish once, in order.
//
// Third: the browser's offline and online events (Playwright's
// context.setOffline): offline drops the connection at once (long before the
// ping check would) and holds reconnect attempts; online reconnects at once
// although the backoff is 10 s or more, and the subscription recovers the pubs
// published meanwhile; after disconnect() the events do nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parley } from '../dist/index.js';
import { Server, makeToken, waitFor, freePort, readAll } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.PARLEY_CHROMIUM || '/usr/bin/chromium';
const BUNDLE = join(here, '..', 'dist', 'parley.browser.min.js');
const PAGE = join(here, 'browser', 'index.html');
const MISSED = 25;

/** The helpers' server, with the test page's origin allowed (tenants are configured, so no origin is by default). */
class BrowserServer extends Server {
  writeConfig() {
    super.writeConfig();
    const cfg = readFileSync(this.cfgPath, 'utf8');
    if (/allowed_origins/.test(cfg)) throw new Error('helpers.mjs now writes allowed_origins; update browser.test.mjs');
    writeFileSync(this.cfgPath, cfg + 'allowed_origins: ["http://127.0.0.1:*"]\n');
  }
}

let srv, http, browser, pageErrors = [];
const nodeClients = [];

before(async () => {
  srv = new BrowserServer({ namespaces: [{ name: '', history_size: 1000 }, { name: 'chat', history_size: 1000 }] });
  await srv.start();
  http = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = path === '/' ? PAGE : path === '/parley.browser.min.js' ? BUNDLE : null;
    if (!file) { res.writeHead(404).end(); return; }
    const type = file.endsWith('.html') ? 'text/html; charset=utf-8' : 'text/javascript; charset=utf-8';
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(readFileSync(file));
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
});

after(async () => {
  // Every step on its own, so one failure does not leave a browser or a server behind.
  if (browser) await browser.close().catch(() => {});
  for (const c of nodeClients) c.disconnect();
  if (http) { http.closeAllConnections?.(); await new Promise((r) => http.close(r)); }
  if (srv) await srv.cleanup();
});

async function launch() {
  if (browser) return;
  assert.ok(existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: install Debian's chromium package (scripts/deps.sh test does) or set PARLEY_CHROMIUM`);
  assert.ok(existsSync(BUNDLE), `no browser bundle at ${BUNDLE}: run npm run build first`);
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 30000 });
}

test('headless Chromium: connect, subscribe, publish, receive; recover the pubs missed across a server restart', { timeout: 90000 }, async () => {
  await launch();
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const diag = () => `\npage errors: ${JSON.stringify(pageErrors)}\nserver log:\n${srv.logTail()}`;

  const origin = `http://127.0.0.1:${http.address().port}`;
  await page.goto(origin + '/');
  await page.waitForFunction(() => window.__ready, null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.__ready), 'ok', 'the page loads the ES module bundle' + diag());

  const ch = 'chat:browser';
  const deadUrl = `ws://127.0.0.1:${await freePort()}/ws`;
  // connect and subscribe; the page records what it sees
  const connected = await page.evaluate(async ({ url, token, ch, deadUrl }) => {
    window.__deadUrl = deadUrl;
    const { Parley } = window.ParleySDK;
    const c = new Parley(url, { token, minReconnectDelay: 50, maxReconnectDelay: 400 });
    window.c = c;
    window.got = [];
    window.subscribed = [];
    window.gaps = [];
    window.states = [];
    c.on('state', (s) => window.states.push(s.to));
    const sub = c.subscribe(ch);
    window.sub = sub;
    sub.on('publication', (p) => window.got.push({ offset: p.offset, epoch: p.epoch, data: p.data }));
    sub.on('subscribed', (e) => window.subscribed.push(e));
    sub.on('gap', (g) => window.gaps.push(g));
    const end = Date.now() + 15000;
    while (sub.state !== 'subscribed' && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return { client: c.state, sub: sub.state };
  }, { url: srv.url, token: makeToken({ user: 'browser' }), ch, deadUrl });
  assert.deepEqual(connected, { client: 'connected', sub: 'subscribed' }, 'the page connects and subscribes' + diag());

  // publish from the page, receive in the page
  const r = await page.evaluate(async (ch) => {
    const res = await window.c.publish(ch, { text: 'hello from chromium' });
    const end = Date.now() + 15000;
    while (window.got.length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return { res, got: window.got };
  }, ch);
  assert.equal(r.res.offset, 1);
  assert.equal(r.res.duplicate, false);
  assert.deepEqual(r.got, [{ offset: 1, epoch: r.res.epoch, data: { text: 'hello from chromium' } }], 'the page receives its pub' + diag());

  // and a pub from Node reaches the page live
  const pub = new Parley(srv.url, { token: makeToken({ user: 'node' }), minReconnectDelay: 20, maxReconnectDelay: 300 });
  nodeClients.push(pub);
  const live = await pub.publish(ch, { n: 0 });
  assert.equal(live.offset, 2);
  await waitFor(() => page.evaluate(() => window.got.length >= 2), 'the live pub from Node in the page', 15000);

  // hold the page off the server, SIGTERM it, restart it on the same data dir
  await page.evaluate(() => { window.__offline = true; });
  assert.equal(await srv.stop(), 0, 'server exits 0 on SIGTERM');
  await waitFor(() => page.evaluate(() => window.c.state !== 'connected'), 'the page to notice the server is gone', 15000);
  await srv.start();
  // publish MISSED pubs from Node while the page cannot reach the server
  const results = [];
  for (let i = 1; i <= MISSED; i++) results.push(await pub.publish(ch, { n: i }));
  assert.deepEqual(results.map((x) => x.offset), Array.from({ length: MISSED }, (_, k) => k + 3), 'stored after the live ones');
  const before = await page.evaluate(() => ({ got: window.got.length, state: window.c.state, dials: window.__dials.filter((d) => d.offline).length }));
  assert.equal(before.got, 2, 'the page saw none of them while held off');
  assert.notEqual(before.state, 'connected');

  // let it through: it reconnects, resubscribes from its position and recovers exactly the missed pubs
  await page.evaluate(() => { window.__offline = false; });
  await waitFor(() => page.evaluate((n) => window.got.length >= n, 2 + MISSED), `the ${MISSED} missed pubs in the page`, 20000)
    .catch(async (e) => { e.message += ` (page has ${await page.evaluate(() => window.got.length)})` + diag(); throw e; });
  // a moment for anything extra (a duplicate) to show up
  await new Promise((r) => setTimeout(r, 200));
  const fin = await page.evaluate(() => ({
    got: window.got, subscribed: window.subscribed, gaps: window.gaps, state: window.c.state, sub: window.sub.state,
  }));
  assert.equal(fin.got.length, 2 + MISSED, 'no duplicate');
  assert.deepEqual(fin.got.map((p) => p.offset), Array.from({ length: 2 + MISSED }, (_, k) => k + 1), 'in order, no gap');
  assert.deepEqual(fin.got.slice(2).map((p) => p.data), results.map((_, k) => ({ n: k + 1 })));
  assert.ok(fin.got.every((p) => p.epoch === r.res.epoch), 'same epoch across the restart');
  assert.deepEqual(fin.gaps, []);
  assert.equal(fin.state, 'connected');
  assert.equal(fin.sub, 'subscribed');
  assert.equal(fin.subscribed.length, 2, 'subscribed twice: first and after the restart');
  assert.equal(fin.subscribed[1].recovered, true, 'the resubscribe recovered from the stream');
  assert.ok(before.dials >= 1, 'the page tried to reconnect while held off');
  assert.deepEqual(pageErrors, []);
  await page.evaluate(() => window.c.disconnect());
});

test('headless Chromium: IndexedDBOutboxStore keeps 10 publishes across a page reload; each stored once, in order', { timeout: 90000 }, async () => {
  await launch();
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const diag = () => `\npage errors: ${JSON.stringify(errors)}\nserver log:\n${srv.logTail()}`;
  const origin = `http://127.0.0.1:${http.address().port}`;
  const ch = 'chat:idb';
  const token = makeToken({ user: 'browser-idb' });
  const N = 10;

  await page.goto(origin + '/');
  await page.waitForFunction(() => window.__ready, null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.__ready), 'ok', 'the page loads the bundle' + diag());

  // first page: the server is unreachable; publish N, wait until they are in IndexedDB
  const first = await page.evaluate(async ({ url, token, ch, deadUrl, N }) => {
    window.__offline = true;
    window.__deadUrl = deadUrl;
    const { Parley, IndexedDBOutboxStore } = window.ParleySDK;
    const c = new Parley(url, { token, minReconnectDelay: 50, maxReconnectDelay: 200, outbox: { store: new IndexedDBOutboxStore('t') } });
    window.c = c;
    const settled = [];
    for (let i = 0; i < N; i++) c.publish(ch, { n: i }).then(() => settled.push(i), () => settled.push(-1 - i));
    await c.outboxSaved();
    const stored = await new IndexedDBOutboxStore('t').load();
    return { state: c.state, settled, stored: stored.sort((a, b) => a.seq - b.seq).map((e) => e.params.data.n) };
  }, { url: srv.url, token, ch, deadUrl: `ws://127.0.0.1:${await freePort()}/ws`, N });
  assert.notEqual(first.state, 'connected', 'held off the server' + diag());
  assert.deepEqual(first.settled, [], 'nothing answered before the reload');
  assert.deepEqual(first.stored, Array.from({ length: N }, (_, i) => i), 'all in IndexedDB before the reload');
  const reader = new Parley(srv.url, { token: makeToken({ user: 'node-idb' }), minReconnectDelay: 20, maxReconnectDelay: 300 });
  nodeClients.push(reader);
  assert.deepEqual(await readAll(reader, ch), [], 'the server has none of them yet');

  // reload: a new page (the gate starts open), a new client with the same store
  await page.reload();
  await page.waitForFunction(() => window.__ready, null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.__ready), 'ok');
  const second = await page.evaluate(async ({ url, token, N }) => {
    const { Parley, IndexedDBOutboxStore } = window.ParleySDK;
    const events = [];
    const c = new Parley(url, { token, minReconnectDelay: 50, maxReconnectDelay: 200, outbox: { store: new IndexedDBOutboxStore('t') } });
    window.c = c;
    c.on('outbox', (e) => events.push({ key: e.key, offset: e.result && e.result.offset, duplicate: e.result && e.result.duplicate, error: e.error && String(e.error) }));
    const end = Date.now() + 15000;
    while (events.length < N && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200)); // anything extra would show up here
    await c.outboxSaved();
    let left = await new IndexedDBOutboxStore('t').load();
    while (left.length && Date.now() < end) { await new Promise((r) => setTimeout(r, 20)); left = await new IndexedDBOutboxStore('t').load(); }
    c.disconnect();
    return { events, left: left.length };
  }, { url: srv.url, token, N });
  assert.equal(second.events.length, N, 'one outbox event per stored publish' + diag());
  assert.deepEqual(second.events.map((e) => e.error), Array(N).fill(undefined));
  assert.deepEqual(second.events.map((e) => e.offset), Array.from({ length: N }, (_, i) => i + 1), 'answered in call order');
  assert.deepEqual(second.events.map((e) => e.duplicate), Array(N).fill(false));
  assert.equal(second.left, 0, 'the store is empty once all are answered');
  const hist = await readAll(reader, ch);
  assert.deepEqual(hist.map((p) => p.data), Array.from({ length: N }, (_, i) => ({ n: i })), 'history: each once, in order' + diag());
  assert.deepEqual(errors, []);
  await page.close();
});

test('headless Chromium: offline drops the connection at once and holds retries; online reconnects at once and recovers the pubs missed', { timeout: 90000 }, async () => {
  await launch();
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const diag = () => `\npage errors: ${JSON.stringify(errors)}\nserver log:\n${srv.logTail()}`;
  const origin = `http://127.0.0.1:${http.address().port}`;
  const ch = 'chat:net';
  await page.goto(origin + '/');
  await page.waitForFunction(() => window.__ready, null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.__ready), 'ok', 'the page loads the bundle' + diag());

  // a long backoff (10-20 s) and the helpers' 25 s ping interval (51 s to notice silence)
  const up = await page.evaluate(async ({ url, token, ch }) => {
    const { Parley } = window.ParleySDK;
    const c = new Parley(url, { token, minReconnectDelay: 10000, maxReconnectDelay: 20000 });
    window.c = c;
    window.got = [];
    window.events = [];
    const t = () => performance.now();
    c.on('state', (s) => window.events.push({ t: t(), state: s.to, reason: s.reason }));
    c.on('disconnected', (d) => window.events.push({ t: t(), disconnected: d }));
    c.on('reconnecting', (r) => window.events.push({ t: t(), reconnecting: r }));
    const sub = c.subscribe(ch);
    window.sub = sub;
    window.subscribed = [];
    sub.on('subscribed', (e) => window.subscribed.push(e));
    sub.on('publication', (p) => window.got.push({ offset: p.offset, data: p.data }));
    const end = Date.now() + 15000;
    while (sub.state !== 'subscribed' && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return c.state;
  }, { url: srv.url, token: makeToken({ user: 'browser-net' }), ch });
  assert.equal(up, 'connected', diag());
  const pub = new Parley(srv.url, { token: makeToken({ user: 'node-net' }), minReconnectDelay: 20, maxReconnectDelay: 300 });
  nodeClients.push(pub);
  await pub.publish(ch, { n: 0 });
  await waitFor(() => page.evaluate(() => window.got.length === 1), 'the first pub in the page', 10000);

  // offline: the state changes within a second, no dial while offline
  const dials0 = await page.evaluate(() => window.__dials.length);
  const tOff = await page.evaluate(() => performance.now());
  await page.context().setOffline(true);
  await waitFor(() => page.evaluate(() => window.c.state === 'connecting'), 'the page to go to connecting', 5000);
  const off = await page.evaluate((tOff) => window.events.filter((e) => e.t >= tOff), tOff);
  const drop = off.find((e) => e.state === 'connecting');
  assert.equal(drop.reason, 'offline', JSON.stringify(off));
  assert.ok(drop.t - tOff < 1000, `state change ${Math.round(drop.t - tOff)} ms after going offline`);
  assert.ok(off.some((e) => e.disconnected && e.disconnected.reason === 'offline' && e.disconnected.reconnect === true), JSON.stringify(off));
  const missed = [];
  for (let i = 1; i <= 5; i++) missed.push(await pub.publish(ch, { n: i }));
  await new Promise((r) => setTimeout(r, 1000));
  const held = await page.evaluate(() => ({ dials: window.__dials.length, got: window.got.length, state: window.c.state }));
  assert.equal(held.dials, dials0, 'no reconnect attempt while offline');
  // the one attempt scheduled while offline waits maxReconnectDelay (for a server on this machine)
  const sched = await page.evaluate((tOff) => window.events.filter((e) => e.t >= tOff && e.reconnecting).map((e) => e.reconnecting), tOff);
  assert.deepEqual(sched.map((r) => [r.delay, r.reason]), [[20000, 'offline']], JSON.stringify(sched));
  assert.equal(held.got, 1);
  assert.equal(held.state, 'connecting');

  // online: reconnects at once (the backoff would wait 10 s or more) and recovers the 5
  const tOn = await page.evaluate(() => performance.now());
  await page.context().setOffline(false);
  await waitFor(() => page.evaluate(() => window.c.state === 'connected'), 'the page to reconnect', 5000)
    .catch((e) => { e.message += diag(); throw e; });
  const back = await page.evaluate((tOn) => window.events.find((e) => e.t >= tOn && e.state === 'connected').t - tOn, tOn);
  assert.ok(back < 1000, `reconnected ${Math.round(back)} ms after going online`);
  await waitFor(() => page.evaluate(() => window.got.length >= 6), 'the 5 pubs published while offline', 10000);
  await new Promise((r) => setTimeout(r, 200));
  const fin = await page.evaluate(() => ({ got: window.got, subscribed: window.subscribed }));
  assert.deepEqual(fin.got.map((p) => p.offset), [1, 2, 3, 4, 5, 6], 'each once, in order');
  assert.deepEqual(fin.got.map((p) => p.data.n), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(missed.map((r) => r.offset), [2, 3, 4, 5, 6]);
  assert.equal(fin.subscribed.length, 2);
  assert.equal(fin.subscribed[1].recovered, true);

  // after disconnect() the listeners are gone: offline/online do nothing
  const dials1 = await page.evaluate(() => { window.c.disconnect(); return window.__dials.length; });
  await page.context().setOffline(true);
  await page.context().setOffline(false);
  await new Promise((r) => setTimeout(r, 300));
  const after = await page.evaluate(() => ({ state: window.c.state, dials: window.__dials.length }));
  assert.deepEqual(after, { state: 'disconnected', dials: dials1 });
  assert.deepEqual(errors, []);
  await page.close();
});
