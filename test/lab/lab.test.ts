// startLab: a bridge, two VMs with their own taps, MACs and IPMI vBMCs that real ipmitool can
// drive independently; down() and cleanupLab() leave nothing behind.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanupLab, type Lab, startLab } from '../../lab/lab.ts';
import { parseBmcAddress } from '../../shared/bmc.ts';
import { ipmitool, linkExists, linksStartingWith, processesWith, testLabIndex } from './support.ts';

describe('startLab', { timeout: 120_000 }, () => {
  const index = testLabIndex(41);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-lab-all-'));
  let lab: Lab | undefined;

  after(async () => {
    await lab?.down();
    cleanupLab(dir, index);
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes two independently powered machines on one bridge and removes them all', async () => {
    lab = await startLab({ index, stateDir: dir, vms: 2, memoryMiB: 128, diskBytes: 16 << 20 });
    const [a, b] = lab.machines;
    assert.ok(a && b);
    assert.notEqual(a.mac, b.mac);
    // Distinct SMBIOS identities, as real servers have (QEMU's default is "Not Settable").
    const smbios = (m: typeof a) => {
      const { args } = JSON.parse(readFileSync(join(m.vm.dir, 'vm.json'), 'utf8')) as { args: string[] };
      return { uuid: args[args.indexOf('-uuid') + 1], smbios: args[args.indexOf('-smbios') + 1] };
    };
    assert.match(smbios(a).uuid!, /^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$/);
    assert.notEqual(smbios(a).uuid, smbios(b).uuid);
    assert.notEqual(smbios(a).smbios, smbios(b).smbios);
    assert.match(smbios(a).smbios!, /^type=1,serial=KILN-LAB-/);
    assert.deepEqual(linksStartingWith(`kiln-lab${index}-`).sort(), [
      `kiln-lab${index}-t0`,
      `kiln-lab${index}-t1`,
    ]);
    const bmcOf = (m: typeof a) => {
      const p = parseBmcAddress(m.bmcAddress);
      return { host: p.host, port: p.port!, user: p.username!, password: m.bmcPassword };
    };
    await ipmitool(bmcOf(a), 'chassis', 'power', 'on');
    assert.equal((await ipmitool(bmcOf(a), 'chassis', 'power', 'status')).stdout, 'Chassis Power is on');
    assert.equal((await ipmitool(bmcOf(b), 'chassis', 'power', 'status')).stdout, 'Chassis Power is off');
    assert.equal(await b.vm.powerState(), 'off');
    // A wrong password is refused by the vBMC.
    await assert.rejects(ipmitool({ ...bmcOf(b), password: 'wrong' }, 'chassis', 'power', 'status'));

    await lab.down();
    lab = undefined;
    assert.equal(linkExists(`kiln-lab${index}`), false);
    assert.deepEqual(linksStartingWith(`kiln-lab${index}-`), []);
    assert.deepEqual(processesWith(dir), []);
    assert.equal(existsSync(join(dir, 'lab.json')), false);
  });
});
