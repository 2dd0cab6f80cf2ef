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

  it('injects latency, and honours an abort signal while waiting', async (t) => {
    const d = new FakePowerDriver({ latencyMs: 150 });
    const c = { bmc: parseBmcAddress('fake://slow'), password: null };
    // On the fake clock the latency is exact: no answer at 149 ms, an answer at 150 ms.
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let answered = false;
    const power = d.getPower(c).then((p) => {
      answered = true;
      return p;
    });
    t.mock.timers.tick(149);
    await new Promise((r) => setImmediate(r));
    assert.equal(answered, false, 'still waiting at 149 ms');
    t.mock.timers.tick(1);
    assert.equal(await power, 'off');
    // An abort ends the wait at once, long before the latency is over.
    const ac = new AbortController();
    const aborted = d.getPower(c, ac.signal);
    t.mock.timers.tick(20);
    ac.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    await assert.rejects(aborted, { name: 'TimeoutError' });
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
