import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBmcAddress } from '../../shared/bmc.ts';
import { isKilnError } from '../../shared/errors.ts';
import { powerContract } from '../../test/power/power.contract.ts';
import { FakePowerDriver } from './fake.ts';

const bmc = parseBmcAddress('fake://admin@rack1-node1');

powerContract('fake', async () => {
  const driver = new FakePowerDriver({ password: 'fake-secret' });
  const state = driver.state(bmc.address);
  return {
    driver,
    creds: { bmc, password: 'fake-secret' },
    wrongCreds: { bmc, password: 'not-the-secret' },
    peer: {
      power: () => state.power,
      setPower: (p) => {
        state.power = p;
      },
      bootDevice: () => state.bootDevice,
    },
    close: async () => {},
  };
});

describe('FakePowerDriver', () => {
  it('keeps state per BMC address', async () => {
    const d = new FakePowerDriver();
    const a = { bmc: parseBmcAddress('fake://a'), password: null };
    const b = { bmc: parseBmcAddress('fake://b'), password: null };
    await d.setPower(a, 'on');
    assert.equal(await d.getPower(a), 'on');
    assert.equal(await d.getPower(b), 'off');
  });

  it('spends a one-time boot override at the next power on, keeps a persistent one', async () => {
    const d = new FakePowerDriver();
    const c = { bmc: parseBmcAddress('fake://n'), password: null };
    await d.setBootDevice(c, 'pxe');
    await d.setPower(c, 'on');
    assert.equal(d.state(c.bmc.address).lastBootDevice, 'pxe');
    assert.equal(d.state(c.bmc.address).bootDevice, null);
    await d.setBootDevice(c, 'disk', { persistent: true });
    await d.setPower(c, 'reboot');
    assert.equal(d.state(c.bmc.address).lastBootDevice, 'disk');
    assert.equal(d.state(c.bmc.address).bootDevice, 'disk');
  });

  it('injects latency, and honours an abort signal while waiting', async () => {
    const d = new FakePowerDriver({ latencyMs: 150 });
    const c = { bmc: parseBmcAddress('fake://slow'), password: null };
    const t0 = performance.now();
    await d.getPower(c);
    assert.ok(performance.now() - t0 >= 140);
    await assert.rejects(d.getPower(c, AbortSignal.timeout(20)), { name: 'TimeoutError' });
  });

  it('injects failures per address and operation as BMC_ERROR', async () => {
    const d = new FakePowerDriver({
      fail: (addr, op) => (addr.endsWith('bad') && op === 'setPower' ? 'simulated fault' : null),
    });
    const bad = { bmc: parseBmcAddress('fake://bad'), password: null };
    const good = { bmc: parseBmcAddress('fake://good'), password: null };
    assert.equal(await d.getPower(bad), 'off');
    await assert.rejects(
      d.setPower(bad, 'on'),
      (e: unknown) => isKilnError(e) && e.code === 'BMC_ERROR' && /simulated fault/.test(e.message),
    );
    await d.setPower(good, 'on');
    assert.deepEqual(d.state(good.bmc.address).calls, ['setPower on']);
  });
});
