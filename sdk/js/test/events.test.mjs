// presence, presenceStats, join/leave, typing (throttled to the server's
// typing_interval), markRead and the read push, against the real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { WebSocket as WS } from 'ws';
import { Parley, ParleyError } from '../dist/index.js';
import { Server, makeToken, waitFor, sleep } from './helpers.mjs';

const TYPING_MS = 1000;
class EventServer extends Server {
  writeConfig() {
    super.writeConfig();
    // a limits section for the server's typing interval (helpers.mjs writes none)
    appendFileSync(this.cfgPath, `limits:\n  typing_interval: "${TYPING_MS / 1000}s"\n`);
  }
}

let srv;
const clients = [];
function client(user, opts = {}) {
  const c = new Parley(srv.url, { token: makeToken({ user }), minReconnectDelay: 20, maxReconnectDelay: 300, ...opts });
  clients.push(c);
  return c;
}
/** A WebSocket that records the commands the client sends. */
function spy(sent) {
  return class extends WS {
    send(data, ...rest) { for (const l of String(data).split('\n')) sent.push(JSON.parse(l)); return super.send(data, ...rest); }
  };
}

before(async () => {
  srv = new EventServer({
    namespaces: [
      { name: '', history_size: 0, history_ttl: '0s' },
      { name: 'room', history_size: 100, join_leave: true },
      { name: 'quiet', history_size: 100, presence: false, read_cursors: false },
      { name: 'ro', client_publish: false },
      { name: 'priv', private: true },
      { name: 'g', class: 'guaranteed', ack_wait: '5s' },
    ],
  });
  await srv.start();
});
after(async () => { for (const c of clients) c.disconnect(); await srv.cleanup(); });

test('presence and presenceStats list the subscribers; 108 where presence is off', async () => {
  const a = client('ann');
  const b = client('bob');
  const b2 = client('bob');
  for (const c of [a, b, b2]) c.subscribe('room:p');
  await waitFor(() => [a, b, b2].every((c) => c.getSubscription('room:p').state === 'subscribed'), 'all subscribed');
  const st = await a.presenceStats('room:p');
  assert.deepEqual({ clients: st.clients, users: st.users }, { clients: 3, users: 2 });
  const p = await a.presence('room:p');
  assert.equal(p.clients.length, 3);
  assert.deepEqual(p.clients.map((x) => x.user).sort(), ['ann', 'bob', 'bob']);
  assert.equal(p.cursor, 0, 'one page');
  const page = await a.presence('room:p', { limit: 2 });
  assert.equal(page.clients.length, 2);
  assert.notEqual(page.cursor, 0, 'a next page');
  const rest = await a.presence('room:p', { cursor: page.cursor, limit: 2 });
  assert.equal(page.clients.length + rest.clients.length, 3);
  b2.unsubscribe('room:p');
  await waitFor(async () => (await a.presenceStats('room:p')).clients === 2, 'unsubscribe leaves presence');
  await assert.rejects(a.presence('quiet:x'), (e) => e instanceof ParleyError && e.code === 108);
});

test('join and leave events reach the other subscribers, not the one that joined or left', async () => {
  const a = client('ann');
  const room = a.subscribe('room:jl');
  const joins = [];
  const leaves = [];
  room.on('join', (j) => joins.push(j));
  room.on('leave', (l) => leaves.push(l));
  await waitFor(() => room.state === 'subscribed', 'ann subscribed');
  const b = client('bob');
  const bRoom = b.subscribe('room:jl');
  const bJoins = [];
  bRoom.on('join', (j) => bJoins.push(j));
  await waitFor(() => joins.length === 1, 'join of bob');
  assert.equal(joins[0].channel, 'room:jl');
  assert.equal(joins[0].info.user, 'bob');
  assert.equal(typeof joins[0].info.client, 'string');
  b.unsubscribe('room:jl');
  await waitFor(() => leaves.length === 1, 'leave of bob');
  assert.equal(leaves[0].info.user, 'bob');
  assert.equal(leaves[0].info.client, joins[0].info.client);
  assert.equal(bJoins.length, 0, 'no join push to the joiner');
});

test('typing(): one command per the server\'s typing_interval, the others resolve at once; the other subscriber gets the push', async () => {
  const sent = [];
  const a = client('ann', { WebSocket: spy(sent) });
  const b = client('bob');
  const aRoom = a.subscribe('room:t');
  const bRoom = b.subscribe('room:t');
  const seen = [];
  bRoom.on('typing', (t) => seen.push(t));
  await waitFor(() => aRoom.state === 'subscribed' && bRoom.state === 'subscribed', 'subscribed');
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) await aRoom.typing();
  assert.ok(Date.now() - t0 < TYPING_MS, 'five calls inside one interval');
  await waitFor(() => seen.length === 1, 'one typing push');
  assert.equal(seen[0].user, 'ann');
  assert.equal(seen[0].channel, 'room:t');
  assert.equal(sent.filter((m) => m.method === 'typing').length, 1, 'one typing command sent');
  await sleep(TYPING_MS + 100);
  await aRoom.typing();
  await waitFor(() => seen.length === 2, 'a second push after the interval');
  assert.equal(sent.filter((m) => m.method === 'typing').length, 2);
});

test('markRead moves the read cursor, the read push reaches the other subscriber and the user\'s other connection; unread on subscribe', async () => {
  const pub = client('pat');
  for (let i = 0; i < 5; i++) await pub.publish('room:r', i);
  const a1 = client('ann');
  const r1 = a1.subscribe('room:r');
  const sub1 = [];
  r1.on('subscribed', (s) => sub1.push(s));
  const a2 = client('ann');
  const r2 = a2.subscribe('room:r');
  const b = client('bob');
  const rb = b.subscribe('room:r');
  const reads2 = [];
  const readsB = [];
  r2.on('read', (r) => reads2.push(r));
  rb.on('read', (r) => readsB.push(r));
  await waitFor(() => [r1, r2, rb].every((r) => r.state === 'subscribed'), 'subscribed');
  assert.equal(sub1[0].unread, 5, 'all five unread');
  const m = await r1.markRead(3);
  assert.deepEqual({ offset: m.offset, unread: m.unread }, { offset: 3, unread: 2 });
  await waitFor(() => reads2.length === 1 && readsB.length === 1, 'read pushes');
  assert.deepEqual({ user: reads2[0].user, offset: reads2[0].offset, channel: reads2[0].channel }, { user: 'ann', offset: 3, channel: 'room:r' });
  assert.equal(readsB[0].offset, 3);
  const back = await r1.markRead(1);
  assert.equal(back.offset, 3, 'the cursor only moves forward');
  // a new subscription of the same user sees the cursor
  const a3 = client('ann');
  const r3 = a3.subscribe('room:r');
  const sub3 = [];
  r3.on('subscribed', (s) => sub3.push(s));
  await waitFor(() => sub3.length === 1, 'subscribed');
  assert.equal(sub3[0].unread, 2);
  // cursors(): every reader's position, furthest first; what a reloaded page shows again
  await rb.markRead(5);
  const cur = await r3.cursors();
  assert.deepEqual(cur.cursors, [{ user: 'bob', offset: 5 }, { user: 'ann', offset: 3 }]);
  assert.equal(cur.offset, 5);
  assert.deepEqual((await r3.cursors({ limit: 1 })).cursors, [{ user: 'bob', offset: 5 }]);
  // read cursors off: 108
  const q = client('ann').subscribe('quiet:r');
  await waitFor(() => q.state === 'subscribed', 'quiet subscribed');
  await assert.rejects(q.markRead(1), (e) => e instanceof ParleyError && e.code === 108);
  await assert.rejects(q.cursors(), (e) => e instanceof ParleyError && e.code === 108);
});

test('ack event: the other member of a channel of named users acknowledged a guaranteed pub (autoAck)', async () => {
  const ch = 'g:#ann,bob';
  const annc = client('ann');
  const ann = annc.subscribe(ch);
  const bob = client('bob').subscribe(ch);
  const acks = [];
  ann.on('ack', (a) => acks.push(a));
  await waitFor(() => ann.state === 'subscribed' && bob.state === 'subscribed', 'subscribed');
  const got = [];
  bob.on('publication', (p) => got.push(p));
  const r = await annc.publish(ch, { text: 'did you get it?' });
  await waitFor(() => acks.length === 1, 'the ack event');
  assert.deepEqual({ channel: acks[0].channel, user: acks[0].user, offset: acks[0].offset }, { channel: ch, user: 'bob', offset: r.offset });
  assert.equal(got[0].class, 'guaranteed');
});

test('permission denied (103): a refused subscribe emits error then unsubscribed and is removed; a refused publish rejects', async () => {
  const c = client('ann');
  const room = c.subscribe('priv:ops');
  const seen = [];
  room.on('error', (e) => seen.push(['error', e]));
  room.on('unsubscribed', (u) => seen.push(['unsubscribed', u]));
  await waitFor(() => seen.length === 2, 'error and unsubscribed');
  assert.equal(seen[0][0], 'error');
  assert.ok(seen[0][1] instanceof ParleyError);
  assert.equal(seen[0][1].code, 103);
  assert.equal(seen[1][0], 'unsubscribed');
  assert.equal(room.state, 'unsubscribed');
  assert.equal(c.getSubscription('priv:ops'), undefined);
  await assert.rejects(c.publish('ro:feed', 1), (e) => e instanceof ParleyError && e.code === 103 && !e.temporary);
  assert.equal(c.state, 'connected', 'the connection stays up');
});
