// A slow consumer cut (4001): a subscriber that stops reading is closed by the
// server once its queue passes outbound_queue_bytes; the SDK reconnects and
// resumes from its position: received equals history (no gap, no duplicate).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { WebSocket as WS } from 'ws';
import { Parley } from '../dist/index.js';
import { Server, makeToken, waitFor, readAll } from './helpers.mjs';

class SlowServer extends Server {
  writeConfig() {
    super.writeConfig();
    appendFileSync(this.cfgPath, 'limits:\n  outbound_queue_bytes: 65536\n');
  }
}

let srv;
const clients = [];
before(async () => {
  srv = new SlowServer({ namespaces: [{ name: '', history_size: 0, history_ttl: '0s' }, { name: 'slow', history_size: 0 }] });
  await srv.start();
});
after(async () => { for (const c of clients) c.disconnect(); await srv.cleanup(); });

async function cuts() {
  const m = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  const line = m.split('\n').find((l) => l.startsWith('parley_slow_consumer_disconnects_total'));
  return Number(line.split(' ').pop());
}

test('slow consumer cut 4001: reconnect and resume, received equals history', async () => {
  let sock = null;
  class PausableWS extends WS { constructor(...a) { super(...a); sock = this; } }
  const sub = new Parley(srv.url, { token: makeToken({ user: 'sam' }), minReconnectDelay: 20, maxReconnectDelay: 200, WebSocket: PausableWS });
  const pubc = new Parley(srv.url, { token: makeToken({ user: 'pia' }), maxInflight: 64 });
  clients.push(sub, pubc);
  const disc = [];
  sub.on('disconnected', (d) => disc.push(d.code));
  const room = sub.subscribe('slow:feed');
  const got = [];
  const gaps = [];
  room.on('publication', (p) => got.push(p.offset));
  room.on('gap', (g) => gaps.push(g));
  await waitFor(() => room.state === 'subscribed', 'subscribed');
  const first = sock;
  first._socket.pause(); // stop reading: the kernel buffers fill, then the server's queue
  const blob = 'x'.repeat(4000);
  let n = 0;
  for (let batch = 0; batch < 40; batch++) {
    await Promise.all(Array.from({ length: 100 }, () => pubc.publish('slow:feed', { n: n++, blob })));
    if (await cuts() >= 1) break; // the server cut it (its close waits for the client to read)
  }
  assert.equal(await cuts(), 1, `the server cut the paused subscriber (after ${n} pubs)`);
  first._socket.resume();
  await waitFor(() => disc.includes(4001), 'disconnected with 4001');
  await waitFor(() => got.length === n, `all ${n} received (have ${got.length})`, 20000);
  const hist = (await readAll(pubc, 'slow:feed')).map((p) => p.offset);
  assert.deepEqual(got, hist, 'received equals history');
  assert.equal(gaps.length, 0);
  assert.notEqual(sock, first, 'a new connection');
});
