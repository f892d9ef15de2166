// The server's limits from the connect result, against a server configured
// with non-default ones: typing() throttles at the server's typing_interval
// (the client has no option for it), and frame batching keeps every frame
// under the server's max_frame_bytes (with the default 65,536-byte batch
// bound the server would close with 1009 and the re-sends would loop).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { WebSocket as WS } from 'ws';
import { Parley, ParleyError } from '../dist/index.js';
import { Server, makeToken, waitFor, sleep, readAll } from './helpers.mjs';

const LIMITS = { typing_interval: 300, max_frame_bytes: 8192, max_message_bytes: 4096, max_channels_per_connection: 16 };

class LimitsServer extends Server {
  writeConfig() {
    super.writeConfig();
    // helpers.mjs writes no limits section
    appendFileSync(this.cfgPath, [
      'limits:',
      `  typing_interval: "${LIMITS.typing_interval}ms"`,
      `  max_frame_bytes: ${LIMITS.max_frame_bytes}`,
      `  max_message_bytes: ${LIMITS.max_message_bytes}`,
      `  max_channels_per_connection: ${LIMITS.max_channels_per_connection}`,
    ].join('\n') + '\n');
  }
}

let srv;
const clients = [];
function client(user, opts = {}) {
  const c = new Parley(srv.url, { token: makeToken({ user }), minReconnectDelay: 20, maxReconnectDelay: 300, ...opts });
  clients.push(c);
  return c;
}
/** A WebSocket that records every frame the client sends. */
function spy(frames) {
  return class extends WS {
    send(data, ...rest) { frames.push(String(data)); return super.send(data, ...rest); }
  };
}
const commands = (frames) => frames.flatMap((f) => f.split('\n').map((l) => JSON.parse(l)));

before(async () => { srv = new LimitsServer(); await srv.start(); });
after(async () => { for (const c of clients) c.disconnect(); await srv.cleanup(); });

test('serverLimits holds the limits of the connect result', async () => {
  const c = client('lim');
  assert.equal(c.serverLimits, null, 'null before connecting');
  await c.ready();
  assert.deepEqual(c.serverLimits, LIMITS);
});

test('typing(): throttled at the server\'s typing_interval (300 ms), not the 2 s fallback', async () => {
  const frames = [];
  const a = client('tia', { WebSocket: spy(frames) });
  const b = client('tib');
  const aRoom = a.subscribe('chat:typing');
  const bRoom = b.subscribe('chat:typing');
  const seen = [];
  bRoom.on('typing', (t) => seen.push(t));
  await waitFor(() => aRoom.state === 'subscribed' && bRoom.state === 'subscribed', 'subscribed');
  const sentTyping = () => commands(frames).filter((m) => m.method === 'typing').length;
  const t0 = Date.now();
  await aRoom.typing();
  await sleep(100 - (Date.now() - t0));
  await aRoom.typing(); // 100 ms later: inside the interval, not sent
  await waitFor(() => seen.length === 1, 'the first typing push');
  assert.equal(sentTyping(), 1, 'one command for two calls 100 ms apart');
  await sleep(350 - (Date.now() - t0));
  await aRoom.typing(); // 350 ms after the first: sent
  await waitFor(() => seen.length === 2, 'a second typing push after 350 ms', 3000);
  assert.equal(sentTyping(), 2);
  await sleep(100);
  assert.equal(seen.length, 2);
  assert.ok(seen.every((t) => t.user === 'tia' && t.channel === 'chat:typing'));
});

test('frame batching: 100 publishes of ~1 KB issued synchronously fit max_frame_bytes (8192), resolve in order, stored once', { timeout: 30000 }, async () => {
  const frames = [];
  const c = client('fra', { WebSocket: spy(frames) });
  const drops = [];
  c.on('disconnected', (d) => drops.push(d));
  await c.ready();
  const before = frames.length;
  const N = 100;
  const pad = 'x'.repeat(1000);
  const results = await Promise.all(Array.from({ length: N }, (_, i) => c.publish('chat:frames', { i, pad })));
  assert.deepEqual(drops, [], 'the connection never dropped');
  assert.deepEqual(results.map((r) => r.offset), Array.from({ length: N }, (_, k) => k + 1), 'resolved in call order');
  assert.ok(results.every((r) => r.duplicate === false), 'each sent once');
  const sent = frames.slice(before);
  assert.ok(sent.every((f) => Buffer.byteLength(f) <= LIMITS.max_frame_bytes), `frames within max_frame_bytes: ${sent.map((f) => Buffer.byteLength(f))}`);
  assert.equal(commands(sent).filter((m) => m.method === 'publish').length, N, 'each publish sent once');
  assert.ok(sent.length < N, `still batched: ${sent.length} frames`);
  const hist = await readAll(c, 'chat:frames');
  assert.deepEqual(hist.map((p) => p.data.i), Array.from({ length: N }, (_, i) => i), 'stored once each, in order');
});

test('a publish larger than max_frame_bytes rejects with 106 without sending; the connection stays up', { timeout: 30000 }, async () => {
  const frames = [];
  const c = client('big', { WebSocket: spy(frames) });
  const drops = [];
  c.on('disconnected', (d) => drops.push(d));
  await c.ready();
  const err = await c.publish('chat:big', { pad: 'y'.repeat(LIMITS.max_frame_bytes) }).catch((e) => e);
  assert.ok(err instanceof ParleyError, String(err));
  assert.equal(err.code, 106);
  assert.equal(err.temporary, false);
  assert.ok(!frames.some((f) => f.includes('yyyy')), 'never sent');
  // one over max_message_bytes but within a frame is the server's to refuse
  const err2 = await c.publish('chat:big', { pad: 'z'.repeat(LIMITS.max_message_bytes) }).catch((e) => e);
  assert.equal(err2.code, 106);
  assert.match(err2.message, /max_message_bytes/);
  const ok = await c.publish('chat:big', { n: 1 });
  assert.equal(ok.offset, 1);
  assert.deepEqual(drops, []);
  assert.equal(c.state, 'connected');
});
