// The DHCP flood limits on a fake clock: the per-MAC bucket, the shared bucket for new clients
// with its second chance for a client that retransmits, and the pool's cap on unrequested offers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DhcpFloodGuard } from './flood.ts';
import { MemoryLeaseStore } from './lease-store.ts';
import { LeasePool } from './pool.ts';
import { Subnet } from './subnet.ts';

function fakeClock() {
  let t = 5_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}
const LIMITS = { perMacPerS: 2, burst: 10, newClientsPerS: 50, maxOfferedFraction: 0.5 };
const randomMac = (i: number) =>
  `02:${[i >> 24, i >> 16, i >> 8, i, 7].map((b) => (b & 255).toString(16).padStart(2, '0')).join(':')}`;

describe('DhcpFloodGuard', () => {
  it('limits one MAC to its burst, then its rate, whatever it sends', () => {
    const clock = fakeClock();
    const g = new DhcpFloodGuard(LIMITS, clock.now);
    for (let i = 0; i < 10; i++) assert.equal(g.admit('02:00:00:00:00:01', true), 'ok');
    assert.equal(g.admit('02:00:00:00:00:01', true), 'mac-limited');
    assert.equal(g.admit('02:00:00:00:00:02', true), 'ok', 'another MAC is not affected');
    clock.advance(500);
    assert.equal(g.admit('02:00:00:00:00:01', true), 'ok', 'one packet per 500 ms at 2/s');
    assert.equal(g.admit('02:00:00:00:00:01', true), 'mac-limited');
  });

  it('answers a random-MAC flood at the new-client rate, and a client that retransmits still gets through', () => {
    const clock = fakeClock();
    const g = new DhcpFloodGuard(LIMITS, clock.now);
    let admitted = 0;
    let real: string[] = [];
    // 10 s of 2000 DISCOVERs a second from never-repeated MACs; a real client asks once a second.
    for (let ms = 0, n = 0; ms < 10_000; ms++) {
      for (let k = 0; k < 2; k++) if (g.admit(randomMac(n++), false) === 'ok') admitted++;
      if (ms % 1000 === 500) real.push(g.admit('02:aa:00:00:00:01', false));
      clock.advance(1);
    }
    assert.ok(
      admitted <= 50 * 10 + 50,
      `at most the rate (and one burst) of the flood answered: ${admitted}`,
    );
    assert.ok(admitted >= 50 * 9, `the rate is really given out: ${admitted}`);
    assert.ok(real.slice(0, 2).includes('ok'), `the real client is let through by its second try: ${real}`);
    // Once let through, it is part of an exchange: its next packets pass the shared bucket.
    real = [];
    for (let i = 0; i < 3; i++) real.push(g.admit('02:aa:00:00:00:01', false));
    assert.deepEqual(real, ['ok', 'ok', 'ok']);
  });
});

describe('LeasePool with max_offered_fraction', () => {
  const subnet = () => new Subnet({ cidr: '10.9.0.0/24', rangeStart: '10.9.0.10', rangeEnd: '10.9.0.29' });

  it('never holds more than the fraction in unrequested offers, so clients that request find an address', () => {
    const clock = fakeClock();
    const s = subnet();
    const pool = new LeasePool([s], new MemoryLeaseStore(), clock.now, { maxOfferedFraction: 0.5 });
    // 50 new clients a second, what the shared bucket lets through.
    const flood = (i: number) => {
      clock.advance(20);
      return pool.offer(randomMac(i), s);
    };
    for (let i = 0; i < 5000; i++) {
      assert.ok(flood(i), 'while addresses are free, a new client gets an offer');
      assert.ok(pool.offeredCount(s) <= 10, `offers held: ${pool.offeredCount(s)}`);
    }
    // Ten real clients in the middle of the flood (while leases and the cap leave a free
    // address, which is what the cap guarantees): each is offered an address and takes it,
    // though flood offers come between its OFFER and its REQUEST (at 50 new clients a second,
    // one every 20 ms; a real client requests within milliseconds).
    for (let c = 0; c < 10; c++) {
      const mac = `02:bb:00:00:00:${c.toString(16).padStart(2, '0')}`;
      const ip = pool.offer(mac, s);
      assert.ok(ip, `real client ${c} got an offer`);
      flood(10_000 + c * 100);
      assert.ok(pool.commit(mac, ip, s), `real client ${c} got its lease`);
      for (let i = 1; i < 50; i++) flood(10_000 + c * 100 + i);
      assert.ok(pool.offeredCount(s) <= 10);
    }
    assert.equal(pool.size, 10, 'every real client holds its lease');
  });

  it('without a cap behaves as before: an exhausted pool makes no offer', () => {
    const s = subnet();
    const pool = new LeasePool([s], new MemoryLeaseStore());
    for (let i = 0; i < 20; i++) assert.ok(pool.offer(randomMac(i), s));
    assert.equal(pool.offer(randomMac(99), s), null);
  });
});
