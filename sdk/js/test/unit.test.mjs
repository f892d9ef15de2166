import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoff, PositionTracker, ParleyError } from '../dist/index.js';

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
