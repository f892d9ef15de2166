import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Parley, ParleyError } from '../dist/index.js';
import { Server, makeToken, waitFor, readAll } from './helpers.mjs';
import { WebSocket as WS } from 'ws';

const N = Number(process.env.PARLEY_SDK_KILL_PUBS || 2000);
const FAST = { minReconnectDelay: 20, maxReconnectDelay: 300 };

let srv;
const clients = [];
function client(opts = {}) {
  const c = new Parley(srv.url, { token: makeToken(), ...FAST, ...opts });
  clients.push(c);
  return c;
}

before(async () => { srv = new Server(); await srv.start(); });
after(async () => {
  for (const c of clients) c.disconnect();
  const code = await srv.stop();
  assert.equal(code, 0, 'server exits 0 on SIGTERM');
  await srv.cleanup();
});

test('quickstart: subscribe, publish, receive; publish resolves after store with offset', async () => {
  const c = client();
  const states = [];
  c.on('state', (s) => states.push(s.to));
  const room = c.subscribe('chat:lobby');
  const got = [];
  room.on('publication', (pub) => got.push(pub));
  const r = await c.publish('chat:lobby', { text: 'hi' });
  assert.equal(r.offset, 1);
  assert.equal(r.duplicate, false);
  assert.equal(typeof r.epoch, 'string');
  assert.match(r.id, /^[0-9A-Z]{26}$/);
  await waitFor(() => got.length === 1, 'the pub');
  assert.deepEqual(got[0].data, { text: 'hi' });
  assert.equal(got[0].offset, 1);
  assert.equal(got[0].channel, 'chat:lobby');
  assert.deepEqual(room.position, { offset: 1, epoch: r.epoch });
  assert.equal(room.state, 'subscribed');
  assert.deepEqual(states, ['connecting', 'connected']);
  // the same idempotency key is stored once
  const a = await c.publish('chat:lobby', 'x', { idempotencyKey: 'k1' });
  const b = await c.publish('chat:lobby', 'x', { idempotencyKey: 'k1' });
  assert.equal(b.duplicate, true);
  assert.equal(b.offset, a.offset);
  const h = await c.history('chat:lobby');
  assert.deepEqual(h.pubs.map((p) => p.offset), [1, 2]);
  const st = await c.presenceStats('chat:lobby');
  assert.equal(typeof st.clients, 'number');
  await assert.rejects(c.publish('nosuchns:x', 1), (e) => e instanceof ParleyError && e.code === 102 && e.temporary === false);
});

test(`kill -9 while ${N} pubs flow: received list equals history (no gap, no duplicate, in order)`, async () => {
  const ch = 'killtest';
  const sub = client();
  const got = [];
  const gaps = [];
  const room = sub.subscribe(ch);
  const due = [];
  sub.on('reconnecting', (r) => due.push(r));
  room.on('publication', (p) => got.push(p.offset));
  room.on('gap', (g) => gaps.push(g));
  await waitFor(() => room.state === 'subscribed', 'subscribed');
  const pubc = client({ maxInflight: 64 });
  const results = [];
  const sends = [];
  for (let i = 0; i < N; i++) sends.push(pubc.publish(ch, { i }).then((r) => results.push(r)));
  await waitFor(() => got.length >= N / 4, 'a quarter of the pubs received', 30000);
  await srv.kill();
  const killedAt = got.length;
  await srv.start();
  await Promise.all(sends);
  await waitFor(() => got.length >= N, `all ${N} received (have ${got.length})`, 30000);
  const hist = (await readAll(sub, ch)).map((p) => p.offset);
  assert.equal(hist.length, N, 'each publish stored exactly once');
  assert.deepEqual(got, hist, 'received equals history');
  assert.deepEqual(hist, Array.from({ length: N }, (_, k) => k + 1));
  assert.equal(gaps.length, 0);
  // each scheduled attempt was announced with its delay, counted from 1
  assert.ok(due.length >= 1, 'no reconnecting event');
  assert.deepEqual(due.map((r) => r.attempt), due.map((_, k) => k + 1));
  for (const r of due) assert.ok(r.delay >= 0 && r.delay <= 20000 && typeof r.reason === 'string', JSON.stringify(r));
  assert.equal(results.length, N, 'each publish resolved once');
  const data = (await readAll(sub, ch)).map((p) => p.data.i).sort((x, y) => x - y);
  assert.deepEqual(data, Array.from({ length: N }, (_, k) => k));
  console.log(`# kill -9: ${N} pubs, killed after ${killedAt} received, ${got.length} received, 0 gaps, 0 duplicates, ${results.filter((r) => r.duplicate).length} publishes answered duplicate after resend`);
});

test('publishes in flight across kill -9 + restart: each resolves once, stored once', async () => {
  const ch = 'inflight';
  const c = client();
  await c.ready();
  const M = 100;
  const settled = new Array(M).fill(0);
  const ps = [];
  for (let i = 0; i < M; i++) {
    ps.push(c.publish(ch, { i }).then((r) => { settled[i]++; return r; }, (e) => { settled[i]++; throw e; }));
  }
  await srv.kill(); // most are written to the socket, few if any answered
  const more = [];
  for (let i = M; i < M + 20; i++) more.push(c.publish(ch, { i })); // queued in the outbox while down
  await srv.start();
  const rs = await Promise.all([...ps, ...more]);
  assert.ok(settled.every((n) => n === 1));
  const hist = await readAll(c, ch);
  assert.equal(hist.length, M + 20, 'each stored exactly once');
  const ids = hist.map((p) => p.data.i).sort((a, b) => a - b);
  assert.deepEqual(ids, Array.from({ length: M + 20 }, (_, k) => k));
  // resolved offsets are the stored ones
  assert.deepEqual(rs.map((r) => r.offset).sort((a, b) => a - b), hist.map((p) => p.offset));
  console.log(`# in flight across kill -9: ${M}+20 publishes, ${hist.length} stored, ${rs.filter((r) => r.duplicate).length} answered duplicate after resend`);
  // order per channel is kept: data i in offset order
  assert.deepEqual(hist.map((p) => p.data.i), Array.from({ length: M + 20 }, (_, k) => k));
});

test('4500 (bad token): error reported, no reconnect loop', async () => {
  const c = client({ token: makeToken({ secret: 'wrong-secret-0123456789' }) });
  const errors = [];
  const disc = [];
  let connecting = 0;
  c.on('error', (e) => errors.push(e));
  c.on('disconnected', (d) => disc.push(d));
  c.on('state', (s) => { if (s.to === 'connecting') connecting++; });
  const p = c.publish('chat:x', 1);
  await assert.rejects(p, (e) => e instanceof ParleyError && e.code === 4500);
  assert.equal(c.state, 'closed');
  await assert.rejects(c.ready(), ParleyError);
  assert.equal(connecting, 1);
  assert.deepEqual(disc.map((d) => [d.code, d.reconnect]), [[4500, false]]);
  assert.ok(errors.some((e) => e.code === 4500));
});

test('4504 (expired token) with getToken: a new token is fetched and the client reconnects', async () => {
  let calls = 0;
  const c = client({ token: undefined, getToken: async () => (++calls === 1 ? makeToken({ ttl: -10 }) : makeToken()) });
  const r = await c.publish('chat:tok', 'after refresh');
  assert.equal(r.duplicate, false);
  assert.equal(calls, 2);
  assert.equal(c.state, 'connected');
});

test('resume after restart: subscription resumes from its position with recovered=true', async () => {
  const ch = 'resume';
  const c = client();
  const room = c.subscribe(ch);
  const got = [];
  const subscribed = [];
  room.on('publication', (p) => got.push(p.offset));
  room.on('subscribed', (s) => subscribed.push(s));
  await waitFor(() => room.state === 'subscribed', 'subscribed');
  await c.publish(ch, 1);
  await waitFor(() => got.length === 1, 'first pub');
  await srv.stop(); // SIGTERM: clients get 4000
  await srv.start();
  const other = client();
  for (let i = 0; i < 3; i++) await other.publish(ch, i); // may land before c resumes
  await waitFor(() => got.length === 4, 'resumed pubs');
  assert.deepEqual(got, [1, 2, 3, 4]);
  await waitFor(() => subscribed.length === 2, 'second subscribed');
  assert.equal(subscribed[1].recovered, true);
});

test('catch-up over 1000 missed pubs (result pubs + streamed `more` pages) is delivered once, in order', async () => {
  const ch = 'catchup';
  const c = client();
  const room = c.subscribe(ch);
  const got = [];
  room.on('publication', (p) => got.push(p.offset));
  await c.publish(ch, 0);
  await waitFor(() => got.length === 1, 'first pub');
  c.disconnect();
  assert.equal(c.state, 'disconnected');
  const other = client();
  const K = 1500;
  await Promise.all(Array.from({ length: K }, (_, i) => other.publish(ch, i)));
  c.connect();
  await waitFor(() => got.length === K + 1, `catch-up (have ${got.length})`);
  assert.deepEqual(got, Array.from({ length: K + 1 }, (_, k) => k + 1));
  assert.deepEqual(room.position.offset, K + 1);
});

test('a trimmed range surfaces as a gap event and the position moves to the server\'s', async () => {
  const ch = 'small:g';
  const c = client();
  const room = c.subscribe(ch);
  const got = [];
  const gaps = [];
  const subscribed = [];
  room.on('publication', (p) => got.push(p.offset));
  room.on('gap', (g) => gaps.push(g));
  room.on('subscribed', (s) => subscribed.push(s.recovered));
  await c.publish(ch, 0);
  await waitFor(() => got.length === 1, 'first pub');
  c.disconnect();
  const other = client();
  for (let i = 0; i < 20; i++) await other.publish(ch, i);
  c.connect();
  await waitFor(() => gaps.length === 1 && room.position.offset === 21, 'gap and newest pubs');
  assert.equal(gaps[0].epoch, room.position.epoch);
  assert.deepEqual(subscribed, [false, false]);
  assert.deepEqual(got, [1, 17, 18, 19, 20, 21]);
  console.log(`# gap: ${JSON.stringify(gaps[0])}`);
});

test('frame batching: 500 publishes issued synchronously go out in batched frames, resolve in order, stored once', async () => {
  const frames = [];
  class CountingWS extends WS {
    send(data, ...rest) { frames.push(String(data).split('\n').length); return super.send(data, ...rest); }
  }
  const c = client({ WebSocket: CountingWS });
  await c.ready();
  const before = frames.length;
  const B = 500;
  const results = await Promise.all(Array.from({ length: B }, (_, i) => c.publish('chat:burst', { i })));
  assert.deepEqual(results.map((r) => r.offset), Array.from({ length: B }, (_, k) => k + 1), 'resolved with offsets in call order');
  assert.ok(results.every((r) => r.duplicate === false));
  const sent = frames.slice(before);
  assert.equal(sent.reduce((a, n) => a + n, 0), B, 'each publish sent once');
  assert.ok(sent.every((n) => n <= 64), 'at most 64 commands per frame');
  assert.ok(sent.length <= Math.ceil(B / 64) * 4, `batched: ${sent.length} frames for ${B} publishes`);
  assert.ok(sent.some((n) => n === 64), 'full frames were sent');
  const hist = await readAll(c, 'chat:burst');
  assert.deepEqual(hist.map((p) => p.data), Array.from({ length: B }, (_, i) => ({ i })), 'stored once each, in order');
});

test('batch: false: 50 publishes issued synchronously go out one command per frame, resolve in order, stored once', async () => {
  const frames = [];
  class CountingWS extends WS {
    send(data, ...rest) { frames.push(String(data)); return super.send(data, ...rest); }
  }
  const c = client({ WebSocket: CountingWS, batch: false });
  await c.ready();
  const before = frames.length;
  const N = 50;
  const results = await Promise.all(Array.from({ length: N }, (_, i) => c.publish('chat:unbatched', { i })));
  assert.deepEqual(results.map((r) => r.offset), Array.from({ length: N }, (_, k) => k + 1), 'resolved with offsets in call order');
  assert.ok(results.every((r) => r.duplicate === false));
  const sent = frames.slice(before);
  assert.ok(sent.every((f) => !f.includes('\n')), 'one command per frame');
  const pubs = sent.map((f) => JSON.parse(f)).filter((m) => m.method === 'publish');
  assert.equal(pubs.length, N, 'one frame per publish');
  assert.deepEqual(pubs.map((m) => m.params.data.i), Array.from({ length: N }, (_, i) => i), 'sent in call order');
  const hist = await readAll(c, 'chat:unbatched');
  assert.deepEqual(hist.map((p) => p.data), Array.from({ length: N }, (_, i) => ({ i })), 'stored once each, in order');
});
