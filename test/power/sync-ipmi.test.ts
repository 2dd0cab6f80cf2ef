// Power sync end to end: SQLite store, the real ipmi driver, ipmi_sim as the BMC. Power is changed
// behind Kiln's back with ipmitool itself, as an operator at a shell would.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createPowerRegistry } from '../../conductor/power/registry.ts';
import { createPowerSync } from '../../conductor/power/sync.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import type { Store } from '../../conductor/store/store.ts';
import { silentLogger } from '../../shared/log.ts';
import { type IpmiSim, startIpmiSim } from '../support/ipmi-sim.ts';

const pexec = promisify(execFile);

describe('power sync with ipmi_sim', () => {
  let sim: IpmiSim;
  let store: Store;
  before(async () => {
    sim = await startIpmiSim({ initialPower: 'off' });
    store = await openSqliteStore(':memory:');
  });
  after(async () => {
    await store?.close();
    await sim?.stop();
  });

  const ipmitool = (...cmd: string[]) =>
    pexec(
      'ipmitool',
      ['-I', 'lanplus', '-C', '3', '-H', sim.host, '-p', String(sim.port), '-U', sim.user, '-E', ...cmd],
      { env: { ...process.env, IPMI_PASSWORD: sim.password } },
    );

  it('notices power changed with ipmitool outside Kiln, and notes a BMC that rejects the password', async () => {
    const node = await store.nodes.create({
      uuid: randomUUID(),
      name: 'r1-n1',
      driver: 'ipmi',
      bmc_address: `ipmi://${sim.user}@${sim.host}:${sim.port}`,
      bmc_password: sim.password,
      power_state: 'power off',
    });
    const wrong = await store.nodes.create({
      uuid: randomUUID(),
      name: 'r1-n2',
      driver: 'ipmi',
      bmc_address: `ipmi://${sim.user}@${sim.host}:${sim.port}`,
      bmc_password: 'not-the-password',
      power_state: 'power off',
    });
    const registry = createPowerRegistry();
    const sync = createPowerSync({ store, registry, log: silentLogger(), concurrency: 4 });

    const first = await sync.runOnce();
    assert.deepEqual(
      { checked: first.checked, changed: first.changed, errors: first.errors },
      { checked: 1, changed: 0, errors: 1 },
    );

    const { stdout } = await ipmitool('chassis', 'power', 'on');
    assert.match(stdout, /Up\/On/);
    assert.equal(sim.power(), 'on');

    const second = await sync.runOnce();
    assert.equal(second.changed, 1);
    const n = (await store.nodes.get(node.uuid))!;
    assert.equal(n.power_state, 'power on');
    const drift = (await store.events.list(node.uuid)).filter((e) => e.event === 'power_state_drift');
    assert.equal(drift.length, 1);
    assert.equal(drift[0]!.message, 'power state changed outside Kiln: power off → power on');

    const w = (await store.nodes.get(wrong.uuid))!;
    assert.equal(
      w.last_error,
      `power sync: BMC 127.0.0.1:${sim.port} rejected the credentials for user "admin"; check the username in bmc_address and bmc_password`,
    );
    assert.ok(!w.last_error!.includes('not-the-password'));
    assert.equal(
      (await store.events.list(wrong.uuid)).filter((e) => e.event === 'power_sync_failed').length,
      1,
    );

    await ipmitool('chassis', 'power', 'off');
    await sync.runOnce();
    assert.equal((await store.nodes.get(node.uuid))!.power_state, 'power off');
    assert.equal(
      (await store.events.list(node.uuid)).filter((e) => e.event === 'power_state_drift').length,
      2,
    );
    await registry.close();
  });
});
