// A lab VM behind the Redfish vBMC, driven by Kiln's own Redfish power driver over HTTP: a
// one-time PXE override reaches the NIC's iPXE ROM on the lab bridge and is spent by that boot;
// ForceOff stops QEMU and PowerState follows the VM.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BmcCredentials } from '../../conductor/power/driver.ts';
import { RedfishPowerDriver } from '../../conductor/power/redfish.ts';
import { createLabNetwork, type LabNetwork } from '../../lab/network.ts';
import { type RedfishVbmc, startRedfishVbmc } from '../../lab/redfish-vbmc.ts';
import { defineVm, labMac, type Vm } from '../../lab/vm.ts';
import { parseBmcAddress } from '../../shared/bmc.ts';
import { linkExists, processesWith, testLabIndex } from './support.ts';

describe('lab VM + Redfish vBMC', { timeout: 120_000 }, () => {
  const index = testLabIndex(17);
  let dir: string;
  let net: LabNetwork | undefined;
  let vm: Vm | undefined;
  let bmc: RedfishVbmc | undefined;
  let creds: BmcCredentials;
  const driver = new RedfishPowerDriver();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-lab-rf-'));
    net = createLabNetwork({ index, stateDir: join(dir, 'net'), routerAdvertisements: false });
    vm = await defineVm({
      name: 'rf0',
      dir: join(dir, 'rf0'),
      tap: net.addTap(0),
      mac: labMac(index, 0),
      memoryMiB: 256,
      diskBytes: 64 * 1024 * 1024,
    });
    bmc = await startRedfishVbmc({ vm, password: 'lab-redfish-secret' });
    creds = {
      bmc: {
        ...parseBmcAddress(bmc.address.replace('redfish+http://', 'redfish+http://admin@')),
        password: null,
      },
      password: 'lab-redfish-secret',
      options: { power_wait_s: 20 },
    };
  });

  after(async () => {
    await bmc?.stop();
    vm?.destroy();
    net?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.equal(linkExists(`kiln-lab${index}`), false);
    if (vm) assert.deepEqual(processesWith(vm.qmpSocket), []);
  });

  it('one-time PXE + power on boots the NIC ROM, and the override is spent', async () => {
    assert.equal(await driver.getPower(creds), 'off');
    await driver.setBootDevice(creds, 'pxe', { persistent: false });
    const since = vm!.consoleMark();
    await driver.setPower(creds, 'on');
    assert.equal(await driver.getPower(creds), 'on');
    await vm!.waitForConsole(new RegExp(`net0: ${labMac(index, 0)} using virtio-net`), {
      since,
      timeoutMs: 60_000,
    });
    const log = readFileSync(join(vm!.dir, 'power.log'), 'utf8');
    assert.match(log, /start boot=once=n,order=cn/);
    // The VM's own one-time device was consumed by this power on.
    assert.equal((await vm!.bootDevice()).next, null);
    assert.equal(bmc!.bmc.system('1').boot.BootSourceOverrideEnabled, 'Disabled');
  });

  it('ForceOff stops QEMU; PowerState reads the VM', async () => {
    await driver.setPower(creds, 'off');
    assert.equal(await driver.getPower(creds), 'off');
    assert.deepEqual(processesWith(vm!.qmpSocket), []);
    // Power the VM on behind the BMC's back: PowerState follows the real machine.
    await vm!.powerOn();
    assert.equal(await driver.getPower(creds), 'on');
    await vm!.powerOff();
    assert.equal(await driver.getPower(creds), 'off');
  });
});
