import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parley, FileOutboxStore, MemoryOutboxStore, OutboxStoreError } from '../dist/index.js';
import { Server, makeToken, waitFor, readAll, freePort } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const FAST = { minReconnectDelay: 20, maxReconnectDelay: 100 };
let dir;
const clients = [];
const servers = [];
before(() => { dir = mkdtempSync(join(tmpdir(), 'parley-outbox-')); });
after(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) await s.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

test('file store: put/delete/load round trip across instances, atomic rename, leftover temp ignored', async () => {
  const path = join(dir, 'a.json');
  const s1 = new FileOutboxStore(path);
  assert.deepEqual(await s1.load(), [], 'a missing file is an empty store');
  await Promise.all([1, 2, 3, 4].map((i) => s1.put({ key: 'k' + i, seq: i, params: { channel: 'c', data: i } })));
  await s1.delete('k2');
  await s1.delete('nope');
  assert.ok(!existsSync(path + '.tmp'), 'the temp file was renamed over the store');
  // a crash in the middle of the next write leaves a torn temp file: the store is intact
  writeFileSync(path + '.tmp', '{"v":1,"entries":[{"key":"torn"');
  const s2 = new FileOutboxStore(path);
  const got = (await s2.load()).sort((a, b) => a.seq - b.seq);
  assert.deepEqual(got.map((e) => e.key), ['k1', 'k3', 'k4']);
  assert.deepEqual(got[1].params, { channel: 'c', data: 3 });
  await s2.put({ key: 'k5', seq: 5, params: { channel: 'c', data: 5 } });
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')).entries.map((e) => e.key), ['k1', 'k3', 'k4', 'k5']);
});

test('file store: a corrupt file is reported (OutboxStoreError) and moved aside, not silently dropped', async () => {
  const path = join(dir, 'bad.json');
  writeFileSync(path, '{"v":1,"entries":[{"key":"x","seq":1,"params":{}}, garbage');
  const s = new FileOutboxStore(path);
  await assert.rejects(s.load(), (e) => e instanceof OutboxStoreError && /corrupt/.test(e.message) && e.message.includes(path));
  const aside = readdirSync(dir).filter((f) => f.startsWith('bad.json.corrupt-'));
  assert.equal(aside.length, 1, 'the corrupt content is kept');
  assert.match(readFileSync(join(dir, aside[0]), 'utf8'), /garbage/);
  // a client with that store reports the error on its error event
  writeFileSync(path, 'not json');
  const errors = [];
  const c = new Parley('ws://127.0.0.1:1/ws', { token: 't', outbox: { store: new FileOutboxStore(path) } });
  clients.push(c);
  c.on('error', (e) => errors.push(e));
  await c.outboxSaved();
  assert.ok(errors.some((e) => e instanceof OutboxStoreError), 'error event with OutboxStoreError');
});

test('outbox store: written before the publish counts as queued, deleted when the server answered', async () => {
  const srv = new Server();
  servers.push(srv);
  srv.port = await freePort(); // not started yet
  const store = new MemoryOutboxStore();
  const c = new Parley(srv.url, { token: makeToken(), ...FAST, outbox: { store } });
  clients.push(c);
  const ps = [0, 1, 2].map((i) => c.publish('chat:mem', i));
  await c.outboxSaved();
  assert.equal(store.entries.size, 3, 'stored while the server is down');
  const keys = [...store.entries.values()].sort((a, b) => a.seq - b.seq).map((e) => e.params.idempotency_key);
  assert.equal(new Set(keys).size, 3);
  await srv.start();
  const rs = await Promise.all(ps);
  assert.deepEqual(rs.map((r) => r.offset), [1, 2, 3]);
  await waitFor(() => store.entries.size === 0, 'entries deleted after the answers');
  // an entry whose publish the server already stored (in flight at a crash): same key, stored once
  const store2 = new MemoryOutboxStore();
  await store2.put({ key: keys[1], seq: 7, params: { channel: 'chat:mem', data: 1, idempotency_key: keys[1] } });
  const c2 = new Parley(srv.url, { token: makeToken(), ...FAST, outbox: { store: store2 } });
  clients.push(c2);
  const ev = [];
  c2.on('outbox', (e) => ev.push(e));
  await waitFor(() => ev.length === 1, 'the restored publish answered');
  assert.equal(ev[0].key, keys[1]);
  assert.equal(ev[0].result.duplicate, true);
  assert.equal(ev[0].result.offset, 2);
  assert.equal(store2.entries.size, 0);
  assert.deepEqual((await readAll(c2, 'chat:mem')).map((p) => p.data), [0, 1, 2]);
});

test('persistent outbox: 50 publishes while the server is down, process killed, a new client sends each exactly once, in order', async () => {
  const N = 50;
  const srv = new Server();
  servers.push(srv);
  srv.port = await freePort();
  const path = join(dir, 'outbox.json');
  const ch = 'chat:persist';
  const child = spawn(process.execPath, [join(here, 'outbox-child.mjs'), srv.url, makeToken(), path, String(N), ch], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const [code, sig] = await new Promise((r) => child.once('exit', (c, s) => r([c, s])));
  assert.equal(sig, 'SIGKILL', `child died by SIGKILL (code ${code})`);
  const report = JSON.parse(out.trim().split('\n').pop());
  assert.notEqual(report.state, 'connected');
  assert.equal(report.keys.length, N);
  const onDisk = (await new FileOutboxStore(path).load()).sort((a, b) => a.seq - b.seq);
  assert.deepEqual(onDisk.map((e) => e.key), report.keys, 'all 50 in the file, in call order');

  const c = new Parley(srv.url, { token: makeToken(), ...FAST, outbox: { store: new FileOutboxStore(path) } });
  clients.push(c);
  const answered = [];
  c.on('outbox', (e) => answered.push(e));
  // a publish made by the new client goes after the restored ones
  const mine = c.publish(ch, { i: N });
  await srv.start();
  await waitFor(() => answered.length === N, `the ${N} restored publishes answered (have ${answered.length})`);
  assert.deepEqual(answered.map((e) => e.key), report.keys, 'answered in call order with the same keys');
  assert.ok(answered.every((e) => e.result && !e.result.duplicate));
  assert.equal((await mine).offset, N + 1);
  const hist = await readAll(c, ch);
  assert.deepEqual(hist.map((p) => p.data.i), Array.from({ length: N + 1 }, (_, k) => k), 'each stored exactly once, in order');
  await waitFor(async () => (await new FileOutboxStore(path).load()).length === 0, 'the file store emptied');
});
