import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createLogger, silentLogger } from '../../shared/log.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import type { NewNode, Store } from '../store/store.ts';
import type { PowerDriver } from './driver.ts';
import { FakePowerDriver } from './fake.ts';
import { createPowerRegistry } from './registry.ts';
import { createPowerSync, SYNC_ERROR_PREFIX } from './sync.ts';

function fakeNode(n: number, extra: Partial<NewNode> = {}): NewNode {
  return {
    uuid: randomUUID(),
    name: `node-${n}`,
    driver: 'fake',
    bmc_address: `fake://bmc-${n}`,
    power_state: 'power off',
    ...extra,
  };
}

describe('power sync (SQLite store, fake BMCs)', () => {
  let store: Store;
  beforeEach(async () => {
    store = await openSqliteStore(':memory:');
  });
  afterEach(async () => {
    await store.close();
  });

  it('records drift, skips maintenance, reserved and BMC-less nodes, and leaves unchanged nodes alone', async () => {
    const fake = new FakePowerDriver();
    const drifted = await store.nodes.create(fakeNode(1));
    const same = await store.nodes.create(fakeNode(2));
    const maint = await store.nodes.create(fakeNode(3));
    await store.nodes.update(maint.uuid, { maintenance: true, maintenance_reason: 'repair' });
    const reserved = await store.nodes.create(fakeNode(4));
    await store.nodes.reserve(reserved.uuid, 'conductor-a/deploy');
    await store.nodes.create({ uuid: randomUUID(), driver: 'none', name: 'no-bmc' });
    const fresh = await store.nodes.create(fakeNode(5, { power_state: null }));
    for (const n of [1, 3, 4, 5]) fake.state(`fake://bmc-${n}`).power = 'on';

    const sync = createPowerSync({
      store,
      registry: createPowerRegistry({ fake }),
      log: silentLogger(),
      concurrency: 2,
    });
    const r = await sync.runOnce();
    assert.deepEqual({ ...r, ms: 0 }, { checked: 3, changed: 2, errors: 0, skipped: 1, ms: 0 });

    assert.equal((await store.nodes.get(drifted.uuid))!.power_state, 'power on');
    const events = await store.events.list(drifted.uuid);
    const drift = events.filter((e) => e.event === 'power_state_drift');
    assert.equal(drift.length, 1);
    assert.equal(drift[0]!.message, 'power state changed outside Kiln: power off → power on');
    assert.equal(drift[0]!.from_state, 'power off');
    assert.equal(drift[0]!.to_state, 'power on');
    assert.equal(drift[0]!.actor, 'power-sync');

    assert.equal((await store.nodes.get(same.uuid))!.power_state, 'power off');
    assert.equal((await store.events.list(same.uuid)).length, 0);
    assert.equal((await store.nodes.get(maint.uuid))!.power_state, 'power off');
    assert.equal((await store.nodes.get(reserved.uuid))!.power_state, 'power off');
    assert.deepEqual(fake.state('fake://bmc-3').calls, [], 'maintenance node BMC not asked');
    assert.deepEqual(fake.state('fake://bmc-4').calls, [], 'reserved node BMC not asked');
    // A node seen for the first time gets its state without a drift event.
    assert.equal((await store.nodes.get(fresh.uuid))!.power_state, 'power on');
    assert.equal((await store.events.list(fresh.uuid)).length, 0);

    const again = await sync.runOnce();
    assert.equal(again.changed, 0);
    assert.equal(
      (await store.events.list(drifted.uuid)).filter((e) => e.event === 'power_state_drift').length,
      1,
    );
  });

  it('notes a BMC error once, keeps the pass going, and clears it when the BMC answers again', async () => {
    let broken = true;
    const fake = new FakePowerDriver({
      fail: (addr) =>
        broken && addr === 'fake://bmc-1' ? 'timed out after 3 tries; check the network' : null,
    });
    const bad = await store.nodes.create(fakeNode(1));
    const good = await store.nodes.create(fakeNode(2));
    fake.state('fake://bmc-2').power = 'on';
    const sync = createPowerSync({ store, registry: createPowerRegistry({ fake }), log: silentLogger() });

    const r1 = await sync.runOnce();
    assert.equal(r1.errors, 1);
    assert.equal((await store.nodes.get(good.uuid))!.power_state, 'power on');
    const n1 = (await store.nodes.get(bad.uuid))!;
    assert.equal(
      n1.last_error,
      `${SYNC_ERROR_PREFIX}BMC fake://bmc-1: timed out after 3 tries; check the network`,
    );
    const updatedAt = n1.updated_at;

    await sync.runOnce();
    const n2 = (await store.nodes.get(bad.uuid))!;
    assert.equal(n2.updated_at, updatedAt, 'the same error is not written again');
    assert.equal(
      (await store.events.list(bad.uuid)).filter((e) => e.event === 'power_sync_failed').length,
      1,
    );

    broken = false;
    await sync.runOnce();
    assert.equal((await store.nodes.get(bad.uuid))!.last_error, null);
  });

  it('does not clear an error it did not write', async () => {
    const fake = new FakePowerDriver();
    const n = await store.nodes.create(fakeNode(1));
    await store.nodes.update(n.uuid, { last_error: 'deploy failed: image checksum mismatch' });
    await createPowerSync({ store, registry: createPowerRegistry({ fake }), log: silentLogger() }).runOnce();
    assert.equal((await store.nodes.get(n.uuid))!.last_error, 'deploy failed: image checksum mismatch');
  });

  it('asks at most `concurrency` BMCs at once', async () => {
    const fake = new FakePowerDriver({ latencyMs: 30 });
    let inFlight = 0;
    let peak = 0;
    const counting: PowerDriver = {
      name: 'fake',
      validate: (c) => fake.validate(c),
      setPower: (c, a) => fake.setPower(c, a),
      setBootDevice: (c, d, o) => fake.setBootDevice(c, d, o),
      async getPower(c, signal) {
        inFlight++;
        peak = Math.max(peak, inFlight);
        try {
          return await fake.getPower(c, signal);
        } finally {
          inFlight--;
        }
      },
    };
    for (let i = 0; i < 20; i++) await store.nodes.create(fakeNode(i));
    const sync = createPowerSync({
      store,
      registry: createPowerRegistry({ drivers: { fake: counting } }),
      log: silentLogger(),
      concurrency: 4,
    });
    const r = await sync.runOnce();
    assert.equal(r.checked, 20);
    assert.equal(peak, 4);
  });

  it('runs passes on its interval until stopped', async (t) => {
    // The interval timer runs on the fake clock: each pass starts exactly one interval after the
    // previous one ended, and "no pass after stop" is checked over ten intervals, without sleeping.
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const fake = new FakePowerDriver();
    const n = await store.nodes.create(fakeNode(1));
    let passes = 0;
    const log = createLogger({
      name: 'test',
      level: 'info',
      destination: new Writable({
        write(chunk, _enc, cb) {
          if (String(chunk).includes('power sync pass done')) passes++;
          cb();
        },
      }),
    });
    const sync = createPowerSync({ store, registry: createPowerRegistry({ fake }), log, intervalMs: 20 });
    const calls = () => fake.state('fake://bmc-1').calls.length;
    const settle = () => new Promise((r) => setImmediate(r));
    /** Waits (in real time, the store's I/O is real) for the pass the clock just started to end. */
    const passEnded = async (want: number) => {
      const deadline = Date.now() + 10_000;
      while (passes < want && Date.now() < deadline) await settle();
      assert.equal(passes, want, `pass ${want} ended`);
    };
    sync.start();
    for (const pass of [1, 2]) {
      t.mock.timers.tick(19);
      await settle();
      assert.equal(calls(), pass - 1, `pass ${pass} waits for the interval`);
      t.mock.timers.tick(1);
      await passEnded(pass);
      assert.equal(calls(), pass);
    }
    await sync.stop();
    for (let i = 0; i < 10; i++) {
      t.mock.timers.tick(20);
      await settle();
    }
    assert.equal(calls(), 2, 'no pass after stop');
    assert.equal(passes, 2);
    assert.equal((await store.nodes.get(n.uuid))!.power_state, 'power off');
  });
});
