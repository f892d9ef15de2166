import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Parley } from '../dist/index.js';
import { Server, makeToken, waitFor, sleep, readAll } from './helpers.mjs';

let srv;
let c;
before(async () => { srv = new Server({ pingInterval: '1s' }); await srv.start(); });
after(async () => { if (c) c.disconnect(); srv.signal('SIGCONT'); await srv.cleanup(); });

test('answers pings; a silent server (SIGSTOP past two ping intervals) is left and 100 in-flight publishes are stored once', async () => {
  c = new Parley(srv.url, { token: makeToken(), minReconnectDelay: 20, maxReconnectDelay: 300 });
  const disc = [];
  c.on('disconnected', (d) => disc.push(d));
  await c.ready();
  // idle for three ping intervals: the server closes a client that does not answer with 4003
  await sleep(3200);
  assert.deepEqual(disc, [], 'no disconnect while idle: pings were answered');
  srv.signal('SIGSTOP');
  const M = 100;
  const settled = new Array(M).fill(0);
  const ps = [];
  for (let i = 0; i < M; i++) ps.push(c.publish('stopped', { i }).then((r) => { settled[i]++; return r; }));
  await waitFor(() => disc.length >= 1, 'silence detected', 10000);
  assert.equal(disc[0].code, 4003);
  assert.equal(disc[0].reconnect, true);
  srv.signal('SIGCONT');
  const rs = await Promise.all(ps);
  assert.ok(settled.every((n) => n === 1), 'each publish resolved once');
  const hist = await readAll(c, 'stopped');
  assert.deepEqual(hist.map((p) => p.data.i), Array.from({ length: M }, (_, k) => k), 'each stored once, in order');
  console.log(`# SIGSTOP: ${M} publishes in flight, ${hist.length} stored, ${rs.filter((r) => r.duplicate).length} answered duplicate after resend, 0 lost`);
});
