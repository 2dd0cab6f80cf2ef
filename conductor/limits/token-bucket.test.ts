// Token buckets on a fake clock: the burst, the refill rate, Retry-After, and the key cap that
// keeps a flood of new keys from growing memory.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyedBuckets, TokenBucket } from './token-bucket.ts';

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('TokenBucket', () => {
  it('allows the burst at once, then refills at the rate, never above the burst', () => {
    const clock = fakeClock();
    const b = new TokenBucket({ perSecond: 2, burst: 5 }, clock.now);
    for (let i = 0; i < 5; i++) assert.ok(b.take(), `burst request ${i + 1}`);
    assert.equal(b.take(), false, 'the 6th at once is refused');
    assert.equal(b.retryAfterS(), 1);
    clock.advance(499);
    assert.equal(b.take(), false, 'not yet a whole token after 499 ms at 2/s');
    clock.advance(1);
    assert.ok(b.take(), 'one token after 500 ms');
    assert.equal(b.take(), false);
    clock.advance(60_000);
    for (let i = 0; i < 5; i++) assert.ok(b.take());
    assert.equal(b.take(), false, 'a long quiet spell refills to the burst, not beyond');
  });

  it('gives a Retry-After that really is enough at a slow rate', () => {
    const clock = fakeClock();
    const b = new TokenBucket({ perSecond: 0.25, burst: 1 }, clock.now);
    assert.ok(b.take());
    const wait = b.retryAfterS();
    assert.equal(wait, 4);
    clock.advance(wait * 1000 - 1);
    assert.equal(b.take(), false);
    clock.advance(1);
    assert.ok(b.take());
  });

  it('refuses a rate that would never refill', () => {
    assert.throws(() => new TokenBucket({ perSecond: 0, burst: 1 }), /perSecond > 0/);
    assert.throws(() => new TokenBucket({ perSecond: 1, burst: 0 }), /burst >= 1/);
  });
});

describe('KeyedBuckets', () => {
  it('keeps one bucket per key: one key spent leaves the others whole', () => {
    const clock = fakeClock();
    const k = new KeyedBuckets({ perSecond: 1, burst: 3 }, 100, clock.now);
    for (let i = 0; i < 3; i++) assert.ok(k.take('a'));
    assert.equal(k.take('a'), false);
    assert.ok(k.take('b'));
    assert.equal(k.retryAfterS('a'), 1);
  });

  it('holds at most maxKeys, dropping the least recently used first', () => {
    const clock = fakeClock();
    const k = new KeyedBuckets({ perSecond: 1, burst: 2 }, 1000, clock.now);
    k.take('victim');
    k.take('victim');
    assert.equal(k.take('victim'), false);
    k.take('busy');
    for (let i = 0; i < 999; i++) {
      k.take(`flood-${i}`);
      if (i % 100 === 0) k.take('busy'); // used again and again: never the oldest
    }
    assert.equal(k.size, 1000, 'never more than maxKeys');
    assert.ok(!k.has('victim'), 'the least recently used key was dropped');
    assert.ok(k.has('busy'), 'a key in use stays');
    for (let i = 0; i < 100_000; i++) k.take(`more-${i}`);
    assert.equal(k.size, 1000, 'a flood of 100,000 new keys still holds 1000');
  });

  it('takeAll takes from every key or from none', () => {
    const clock = fakeClock();
    const k = new KeyedBuckets({ perSecond: 1, burst: 2 }, 100, clock.now);
    k.take('x');
    k.take('x');
    const r = k.takeAll(['y', 'x']);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.key === 'x' && r.retryAfterS === 1);
    // y was not charged for the refused request: it still has its whole burst.
    assert.ok(k.take('y'));
    assert.ok(k.take('y'));
    assert.equal(k.take('y'), false);
    assert.deepEqual(k.takeAll(['z', 'z']), { ok: true }, 'a key named twice is counted once');
    assert.ok(k.take('z'));
  });
});
