// Outbox ordering without a server: a fake WebSocket records the commands, the
// test answers them and drops connections. Unanswered publishes go back in
// front, in call order, with their idempotency keys; the store follows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parley, MemoryOutboxStore } from '../dist/index.js';

const conns = [];
class FakeWS {
  constructor(url, proto) {
    this.readyState = 0;
    this.sent = [];
    conns.push(this);
    setTimeout(() => { this.readyState = 1; this.onopen && this.onopen(); }, 0);
  }
  send(data) {
    this.frames = (this.frames || 0) + 1;
    for (const line of String(data).split('\n')) { // one frame may hold several commands
      const m = JSON.parse(line);
      this.sent.push(m);
      if (m.method === 'connect') this.reply(m.id, { client: 'c', user: 'u', tenant: 't', ping: 25, subs: {} });
    }
  }
  reply(id, result) { setTimeout(() => this.onmessage({ data: JSON.stringify({ id, result }) }), 0); }
  drop() { this.readyState = 3; this.onclose({ code: 1006, reason: 'dropped' }); }
  close() { this.readyState = 3; }
  publishes() { return this.sent.filter((m) => m.method === 'publish'); }
}
const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
async function until(cond, what) {
  for (let i = 0; i < 400; i++) { if (cond()) return; await tick(); }
  throw new Error('timed out: ' + what);
}

test('outbox ordering: in-flight publishes of a dropped connection are re-sent first, in call order, same keys; store emptied', async () => {
  conns.length = 0;
  const store = new MemoryOutboxStore();
  const c = new Parley('ws://fake/ws', { token: 't', WebSocket: FakeWS, maxInflight: 3, minReconnectDelay: 1, maxReconnectDelay: 2, outbox: { store } });
  const results = [];
  const calls = Array.from({ length: 8 }, (_, i) => ({ ch: i % 2 ? 'b' : 'a', i }));
  const ps = calls.map(({ ch, i }) => c.publish(ch, i).then((r) => results.push(i)));
  await until(() => conns[0] && conns[0].publishes().length === 3, 'three in flight');
  const first = conns[0].publishes();
  assert.deepEqual(first.map((m) => m.params.data), [0, 1, 2], 'sent in call order, at most maxInflight');
  assert.equal(store.entries.size, 8, 'all eight stored');
  conns[0].reply(first[0].id, { id: 'x0', offset: 1, epoch: 'e', duplicate: false });
  await until(() => conns[0].publishes().length === 4, 'the fourth goes out after an answer');
  conns[0].drop();
  await until(() => conns[1] && conns[1].publishes().length === 3, 'resent on the second connection');
  const again = conns[1].publishes();
  assert.deepEqual(again.map((m) => m.params.data), [1, 2, 3], 'the unanswered ones first, in call order');
  const keyOf = (m) => m.params.idempotency_key;
  assert.deepEqual(again.map(keyOf), conns[0].publishes().slice(1).map(keyOf), 'same idempotency keys');
  // answer everything as it comes
  let next = 0;
  const sentAll = () => conns[1].publishes();
  while (results.length < 8) {
    const s = sentAll();
    for (; next < s.length; next++) conns[1].reply(s[next].id, { id: 'x', offset: 0, epoch: 'e', duplicate: next < 3 });
    await tick();
  }
  await Promise.all(ps);
  assert.deepEqual(sentAll().map((m) => m.params.data), [1, 2, 3, 4, 5, 6, 7], 'the rest in call order');
  for (const ch of ['a', 'b']) {
    const order = sentAll().filter((m) => m.params.channel === ch).map((m) => m.params.data);
    assert.deepEqual(order, [...order].sort((x, y) => x - y), `in order per channel ${ch}`);
  }
  await until(() => store.entries.size === 0, 'store emptied');
  c.disconnect();
});

test('frame batching: commands of one tick share a frame; disconnect() sends what is queued first', async () => {
  conns.length = 0;
  const c = new Parley('ws://fake/ws', { token: 't', WebSocket: FakeWS, minReconnectDelay: 1, maxReconnectDelay: 2 });
  await c.ready();
  const ws = conns[0];
  const frames0 = ws.frames;
  c.subscribe('a'); c.subscribe('b'); c.publish('a', 1);
  c.disconnect(); // same tick: the three are still queued
  assert.equal(ws.frames, frames0 + 1, 'one frame for the three commands, sent before the close');
  assert.deepEqual(ws.sent.slice(-3).map((m) => m.method), ['subscribe', 'subscribe', 'publish']);
});
