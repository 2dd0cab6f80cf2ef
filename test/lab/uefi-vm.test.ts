// A UEFI (OVMF) lab VM: with the boot device on pxe, OVMF starts the NIC's iPXE (EFI build) on the
// lab bridge; after a one-time "disk" and a reset, syslinux.efi boots the demo OS from the disk.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildDemoImage, DEMO_NO_CONFIGDRIVE, writeImageToDisk } from '../../lab/demo-image.ts';
import { createLabNetwork, type LabNetwork } from '../../lab/network.ts';
import { defineVm, labMac, type Vm } from '../../lab/vm.ts';
import { linkExists, processesWith, testLabIndex } from './support.ts';

describe('UEFI lab VM', { timeout: 240_000 }, () => {
  const index = testLabIndex(23);
  let dir: string;
  let net: LabNetwork | undefined;
  let vm: Vm | undefined;

  before(async () => {
    const image = await buildDemoImage();
    dir = mkdtempSync(join(tmpdir(), 'kiln-lab-uefi-'));
    net = createLabNetwork({ index, stateDir: join(dir, 'net') });
    vm = await defineVm({
      name: 'efi0',
      dir: join(dir, 'efi0'),
      tap: net.addTap(0),
      mac: labMac(index, 0),
      memoryMiB: 512,
      diskBytes: 64 * 1024 * 1024,
      firmware: 'uefi',
    });
    await writeImageToDisk(image.path, vm.diskPath);
  });

  after(() => {
    vm?.destroy();
    net?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.equal(linkExists(`kiln-lab${index}`), false);
    if (vm) assert.deepEqual(processesWith(vm.qmpSocket), []);
  });

  it('PXE first: OVMF runs the NIC iPXE, which starts DHCP on net0', async () => {
    await vm!.setBootDevice('pxe', { persistent: true });
    const since = vm!.consoleMark();
    const started = Date.now();
    await vm!.powerOn();
    await vm!.waitForConsole(new RegExp(`net0: ${labMac(index, 0)} using`), { since, timeoutMs: 90_000 });
    assert.match(readFileSync(join(vm!.dir, 'power.log'), 'utf8'), /start boot=uefi:pxe/);
    process.stderr.write(`# UEFI power on -> iPXE net0 in ${Date.now() - started} ms\n`);
  });

  it('one-time disk + reset: the demo OS boots through syslinux.efi', async () => {
    await vm!.setBootDevice('disk');
    const since = vm!.consoleMark();
    const started = Date.now();
    await vm!.reset();
    await vm!.waitForConsole(DEMO_NO_CONFIGDRIVE, { since, timeoutMs: 120_000 });
    assert.doesNotMatch(vm!.readConsole(since), /using virtio-net/);
    assert.deepEqual(await vm!.bootDevice(), { persistent: 'pxe', next: null });
    process.stderr.write(`# UEFI reset -> demo OS marker in ${Date.now() - started} ms\n`);
    await vm!.powerOff();
    assert.equal(await vm!.powerState(), 'off');
  });
});
