import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket as WS } from 'ws';
import { Parley, ParleyError } from '../dist/index.js';
import { Server, makeToken, waitFor, readAll } from './helpers.mjs';

let srv;
const clients = [];
function client(opts = {}) {
  const c = new Parley(srv.url, { token: makeToken(), minReconnectDelay: 20, maxReconnectDelay: 300, ...opts });
  clients.push(c);
  return c;
}
before(async () => { srv = new Server(); await srv.start(); });
after(async () => { for (const c of clients) c.disconnect(); await srv.cleanup(); });

test('111 rate limit: publishes wait retry_after and retry in call order; with no retries the error is typed', async () => {
  const strict = client({ rateLimitRetries: 0 });
  const rs = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => strict.publish('rl:a', i)));
  const limited = rs.filter((r) => r.status === 'rejected');
  assert.ok(limited.length > 0, 'some publishes were rate limited');
  for (const r of limited) {
    assert.ok(r.reason instanceof ParleyError);
    assert.equal(r.reason.code, 111);
    assert.equal(r.reason.temporary, true);
    assert.ok(r.reason.retryAfter > 0);
  }
  const patient = client({ rateLimitRetries: 50 });
  const K = 12;
  const ok = await Promise.all(Array.from({ length: K }, (_, i) => patient.publish('rl:b', i)));
  assert.equal(ok.length, K);
  const hist = await readAll(patient, 'rl:b');
  assert.deepEqual(hist.map((p) => p.data), Array.from({ length: K }, (_, k) => k), 'stored once each, in call order');
});

test('guaranteed pubs: a redelivery (higher attempt) is not shown twice; ack by hand stops it', async () => {
  const frames = [];
  class SpyWS extends WS {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', (ev) => frames.push(String(ev.data)));
    }
  }
  const c = client({ WebSocket: SpyWS, token: makeToken({ user: 'gina' }) });
  const room = c.subscribe('g:box', { autoAck: false });
  const got = [];
  room.on('publication', (p) => got.push(p));
  await waitFor(() => room.state === 'subscribed', 'subscribed');
  const r = await client().publish('g:box', { n: 1 });
  await waitFor(() => frames.some((f) => f.includes('"attempt":2')), 'a redelivery with attempt 2', 10000);
  assert.equal(got.length, 1, 'shown once');
  assert.equal(got[0].attempt, 1);
  assert.equal(got[0].id, r.id);
  const a = await room.ack(r.offset);
  assert.equal(a.acknowledged, 1);
});

test('guaranteed pubs are acked automatically after the publication handlers', async () => {
  const c = client({ token: makeToken({ user: 'gus' }) });
  const room = c.subscribe('g:auto');
  const got = [];
  room.on('publication', async (p) => { got.push(p.offset); });
  await waitFor(() => room.state === 'subscribed', 'subscribed');
  const r = await client().publish('g:auto', 'x');
  await waitFor(() => got.length === 1, 'the pub');
  // an ack sent now (after the automatic one, on the same connection) covers nothing new
  assert.equal((await room.ack(r.offset)).acknowledged, 0);
});

test('token refresh before expiry: the session outlives its first token without a reconnect or a lost pub', async () => {
  let calls = 0;
  let firstExp = 0;
  const c = client({
    getToken: async () => {
      calls++;
      if (calls === 1) { firstExp = Math.floor(Date.now() / 1000) + 3; return makeToken({ ttl: 3 }); }
      return makeToken();
    },
    token: undefined,
  });
  const disc = [];
  c.on('disconnected', (d) => disc.push(d));
  const room = c.subscribe('chat:refresh');
  const got = [];
  room.on('publication', (p) => got.push(p.data));
  await c.publish('chat:refresh', 'before');
  await waitFor(() => calls === 2, 'refresh before expiry', 5000);
  await waitFor(() => Date.now() > firstExp * 1000 + 1500, 'past the first token\'s expiry', 6000, 100);
  await c.publish('chat:refresh', 'after');
  await waitFor(() => got.length === 2, 'both pubs');
  assert.deepEqual(got, ['before', 'after']);
  assert.deepEqual(disc, [], 'no disconnect');
});

test('a 109 reply to refresh (getToken gave an expired token): getToken is called once more and refresh succeeds', async () => {
  let calls = 0;
  let firstExp = 0;
  const c = client({
    getToken: async () => {
      calls++;
      if (calls === 1) { firstExp = Math.floor(Date.now() / 1000) + 3; return makeToken({ ttl: 3 }); }
      if (calls === 2) return makeToken({ ttl: -3600 }); // already expired: refresh answers 109
      return makeToken();
    },
    token: undefined,
  });
  const disc = [];
  const errors = [];
  c.on('disconnected', (d) => disc.push(d));
  c.on('error', (e) => errors.push(e));
  const room = c.subscribe('chat:refresh109');
  const got = [];
  room.on('publication', (p) => got.push(p.data));
  await c.publish('chat:refresh109', 'before');
  await waitFor(() => calls === 3, 'refresh, 109, getToken again', 6000);
  await waitFor(() => Date.now() > firstExp * 1000 + 1500, 'past the first token\'s expiry', 6000, 100);
  await c.publish('chat:refresh109', 'after');
  await waitFor(() => got.length === 2, 'both pubs');
  assert.deepEqual(got, ['before', 'after']);
  assert.deepEqual(disc, [], 'no disconnect: the second refresh extended the session');
  assert.deepEqual(errors, [], 'the handled 109 is not reported');
  assert.equal(calls, 3);
  assert.equal(c.state, 'connected');
});

test('getToken throwing UnauthorizedError stops the client and reports', async () => {
  const { UnauthorizedError } = await import('../dist/index.js');
  const c = client({ token: undefined, getToken: async () => { throw new UnauthorizedError('no session'); } });
  const errors = [];
  c.on('error', (e) => errors.push(e));
  await assert.rejects(c.ready(), ParleyError);
  assert.equal(c.state, 'closed');
  assert.ok(errors[0] instanceof UnauthorizedError);
});
