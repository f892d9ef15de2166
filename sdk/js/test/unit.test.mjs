import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoff, PositionTracker, ParleyError, FrameBatcher, utf8Length } from '../dist/index.js';

test('backoff stays within [min, min(max, min*2^n)] and reaches both ends', () => {
  for (let n = 0; n < 30; n++) {
    const cap = Math.min(20000, 500 * 2 ** n);
    assert.equal(backoff(n, 500, 20000, () => 0), 500);
    assert.equal(backoff(n, 500, 20000, () => 0.999999), Math.round(500 + 0.999999 * (cap - 500)));
    for (let i = 0; i < 50; i++) {
      const d = backoff(n, 500, 20000);
      assert.ok(d >= 500 && d <= cap, `attempt ${n}: ${d}`);
    }
  }
  assert.equal(backoff(100, 500, 20000, () => 1), 20000);
  assert.equal(backoff(3, 100, 50, () => 0.5), 100); // max below min: min wins
});

test('position tracking: in order, duplicates dropped, epoch change moves the position', () => {
  const t = new PositionTracker();
  assert.equal(t.position, null);
  assert.equal(t.accept(1, 'e1'), 'deliver');
  assert.equal(t.accept(2, 'e1'), 'deliver');
  assert.equal(t.accept(2, 'e1'), 'duplicate');
  assert.equal(t.accept(1, 'e1'), 'duplicate');
  assert.deepEqual(t.position, { offset: 2, epoch: 'e1' });
  assert.equal(t.accept(0, ''), 'deliver'); // ephemeral: not positioned
  assert.deepEqual(t.position, { offset: 2, epoch: 'e1' });
  assert.equal(t.accept(1, 'e2'), 'deliver');
  assert.deepEqual(t.position, { offset: 1, epoch: 'e2' });
  const s = new PositionTracker({ offset: 10, epoch: 'x' });
  assert.equal(s.accept(10, 'x'), 'duplicate');
  assert.equal(s.accept(11, 'x'), 'deliver');
  s.reset(40, 'y');
  assert.deepEqual(s.position, { offset: 40, epoch: 'y' });
});

test('ParleyError carries code, temporary and retryAfter', () => {
  const e = new ParleyError(111, 'too many requests', true, 250);
  assert.ok(e instanceof Error);
  assert.equal(e.code, 111);
  assert.equal(e.temporary, true);
  assert.equal(e.retryAfter, 250);
});

test('frame batching: one frame per tick, order kept, bounds respected', async () => {
  const frames = [];
  const b = new FrameBatcher((f) => frames.push(f), { maxCommands: 4, maxBytes: 30 });
  const cmds = Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: i }));   // 8 bytes each
  for (const c of cmds) b.push(c);
  // 3 commands = 3*8+2 = 26 bytes; a 4th would make 35 > 30, so frames of 3
  assert.deepEqual(frames.map((f) => f.split('\n').length), [3, 3, 3], 'full frames go out at once');
  assert.equal(b.size, 1, 'the rest waits for the end of the tick');
  await Promise.resolve();
  assert.deepEqual(frames.map((f) => f.split('\n').length), [3, 3, 3, 1], 'flushed at the end of the tick');
  assert.deepEqual(frames.join('\n').split('\n'), cmds, 'call order kept across frames');
  for (const f of frames) assert.ok(utf8Length(f) <= 30 && f.split('\n').length <= 4);

  // the command bound, and a command larger than maxBytes goes alone
  const out = [];
  const c = new FrameBatcher((f) => out.push(f), { maxCommands: 2, maxBytes: 10 });
  c.push('a'); c.push('b'); c.push('c'); c.push('x'.repeat(25)); c.push('d');
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(out, ['a\nb', 'c', 'x'.repeat(25), 'd']);

  // nothing queued: flush sends nothing; separate ticks give separate frames
  const t = [];
  const d = new FrameBatcher((f) => t.push(f));
  d.flush();
  d.push('1'); d.push('2');
  await Promise.resolve();
  d.push('3');
  await Promise.resolve();
  assert.deepEqual(t, ['1\n2', '3']);

  // defaults: 64 commands per frame
  const big = [];
  const e = new FrameBatcher((f) => big.push(f));
  for (let i = 0; i < 200; i++) e.push(String(i));
  await Promise.resolve();
  assert.deepEqual(big.map((f) => f.split('\n').length), [64, 64, 64, 8]);
  // bytes are UTF-8 bytes
  assert.equal(utf8Length('aé€😀'), 1 + 2 + 3 + 4);
});
