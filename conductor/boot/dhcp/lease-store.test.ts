import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileLeaseStore } from './lease-store.ts';
import { LeasePool } from './pool.ts';
import { Subnet } from './subnet.ts';

test('file lease store survives a restart, drops removed leases and a torn last line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-leases-'));
  try {
    const path = join(dir, 'leases.jsonl');
    const subnet = new Subnet({
      cidr: '10.0.0.0/24',
      rangeStart: '10.0.0.10',
      rangeEnd: '10.0.0.20',
      leaseTime: 60,
    });
    const a = new FileLeaseStore(path);
    const pool = new LeasePool([subnet], a);
    assert.ok(pool.commit('02:00:00:00:00:01', '10.0.0.10', subnet));
    assert.ok(pool.commit('02:00:00:00:00:02', '10.0.0.11', subnet, 'n2'));
    assert.ok(pool.commit('02:00:00:00:00:03', '10.0.0.12', subnet));
    assert.ok(pool.release('02:00:00:00:00:03', '10.0.0.12'));
    a.close();
    appendFileSync(path, '{"op":"put","lease":{"ip":"10.0.0.1'); // crash mid-write

    const b = new FileLeaseStore(path);
    const again = new LeasePool([subnet], b);
    assert.equal(again.size, 2);
    assert.equal(again.leaseOf('02:00:00:00:00:02', subnet)?.hostname, 'n2');
    assert.equal(again.commit('02:00:00:00:00:09', '10.0.0.10', subnet), null, 'still leased to :01');
    assert.equal(
      again.offer('02:00:00:00:00:01', subnet),
      '10.0.0.10',
      'a known client gets its address back',
    );
    b.close();
    // load() compacted the log: two live leases, no torn line
    assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('subnet config errors name the subnet', () => {
  assert.throws(
    () => new Subnet({ cidr: '10.0.0.0/24', rangeStart: '10.0.1.1', rangeEnd: '10.0.1.9' }),
    /10\.0\.0\.0\/24: range/,
  );
  assert.throws(
    () =>
      new Subnet({
        cidr: '10.0.0.0/24',
        rangeStart: '10.0.0.1',
        rangeEnd: '10.0.0.9',
        reservations: [{ mac: 'AA:00:00:00:00:01', ip: '10.1.0.1' }],
      }),
    /aa:00:00:00:00:01 → 10\.1\.0\.1 is outside/,
  );
});
