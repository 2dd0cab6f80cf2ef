// A lab VM driven end to end by real ipmitool through its virtual BMC (ipmi_sim + the VM's power
// script): bootdev pxe + power on reaches the NIC's iPXE ROM on the lab bridge; bootdev disk +
// power cycle boots the demo OS from the VM's disk; power off stops QEMU. Runs as root (bridge,
// tap); QEMU under TCG.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pendingTeardown } from '../../lab/cleanup.ts';
import { buildDemoImage, DEMO_NO_CONFIGDRIVE, writeImageToDisk } from '../../lab/demo-image.ts';
import { createLabNetwork, type LabNetwork } from '../../lab/network.ts';
import { readPidFile } from '../../lab/proc.ts';
import { type IpmiVbmc, startIpmiVbmc } from '../../lab/vbmc.ts';
import { defineVm, labMac, type Vm } from '../../lab/vm.ts';
import { ipmitool, linkExists, linksStartingWith, processesWith, testLabIndex, waitFor } from './support.ts';

describe('lab VM + IPMI vBMC', { timeout: 240_000 }, () => {
  const index = testLabIndex();
  let dir: string;
  let net: LabNetwork | undefined;
  let vm: Vm | undefined;
  let bmc: IpmiVbmc | undefined;

  before(async () => {
    const image = await buildDemoImage();
    dir = mkdtempSync(join(tmpdir(), 'kiln-lab-test-'));
    net = createLabNetwork({ index, stateDir: join(dir, 'net') });
    const tap = net.addTap(0);
    vm = await defineVm({
      name: 'vm0',
      dir: join(dir, 'vm0'),
      tap,
      mac: labMac(index, 0),
      memoryMiB: 512,
      diskBytes: 256 * 1024 * 1024,
    });
    // The disk already holds the demo OS, as if a deploy had written it.
    await writeImageToDisk(image.path, vm.diskPath);
    bmc = await startIpmiVbmc({ vm, dir: join(dir, 'bmc0') });
  });

  after(() => {
    const qmp = vm?.qmpSocket;
    bmc?.stop();
    vm?.destroy();
    net?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
    // Everything is gone, whatever the tests above did.
    assert.equal(linkExists(`kiln-lab${index}`), false, 'bridge left behind');
    assert.deepEqual(linksStartingWith(`kiln-lab${index}-`), [], 'taps left behind');
    if (qmp) assert.deepEqual(processesWith(qmp), [], 'QEMU left running');
    assert.deepEqual(processesWith(join(dir, 'bmc0')), [], 'ipmi_sim left running');
    assert.deepEqual(processesWith(`radvd-kiln-lab${index}`), [], 'radvd left running');
    assert.deepEqual(pendingTeardown(), []);
  });

  it('answers power status "off" before anything is started', async () => {
    const r = await ipmitool(bmc!, 'chassis', 'power', 'status');
    assert.equal(r.stdout, 'Chassis Power is off');
    assert.equal(await vm!.powerState(), 'off');
  });

  it('bootdev pxe + power on: SeaBIOS hands over to the NIC iPXE ROM, which starts DHCP on net0', async () => {
    const set = await ipmitool(bmc!, 'chassis', 'bootdev', 'pxe');
    assert.match(set.stdout, /Set Boot Device to pxe/);
    assert.equal(set.stderr, '');
    assert.equal((await vm!.bootDevice()).persistent, 'pxe');
    const param = await ipmitool(bmc!, 'chassis', 'bootparam', 'get', '5');
    assert.match(param.stdout, /Force PXE/);

    const since = vm!.consoleMark();
    await ipmitool(bmc!, 'chassis', 'power', 'on');
    assert.equal((await ipmitool(bmc!, 'chassis', 'power', 'status')).stdout, 'Chassis Power is on');
    const banner = await vm!.waitForConsole(/iPXE \(http:\/\/ipxe\.org\)/, { since, timeoutMs: 60_000 });
    const mac = labMac(index, 0);
    const dhcp = await vm!.waitForConsole(new RegExp(`Configuring \\(net0 ${mac}\\)`), {
      since,
      timeoutMs: 60_000,
    });
    const out = vm!.readConsole(since);
    assert.match(out, new RegExp(`net0: ${mac} using virtio-net`));
    // pxe first: the disk (which holds a bootable OS) was not tried before the network.
    assert.doesNotMatch(out.slice(0, dhcp.match.index), /Booting from Hard Disk/);
    assert.match(readFileSync(join(vm!.dir, 'power.log'), 'utf8'), /start boot=order=nc/);
    process.stderr.write(
      `# iPXE banner after ${banner.elapsedMs} ms, DHCP on net0 after ${dhcp.elapsedMs} ms\n`,
    );
  });

  it('bootdev disk + power cycle: a fresh QEMU boots the demo OS from the disk', async () => {
    const pidBefore = readPidFile(join(vm!.dir, 'qemu.pid'));
    const set = await ipmitool(bmc!, 'chassis', 'bootdev', 'disk');
    assert.match(set.stdout, /Set Boot Device to disk/);
    assert.equal((await vm!.bootDevice()).persistent, 'disk');
    const since = vm!.consoleMark();
    const started = Date.now();
    await ipmitool(bmc!, 'chassis', 'power', 'cycle');
    await waitFor('power on after cycle', async () => (await vm!.powerState()) === 'on', 30_000);
    const pidAfter = readPidFile(join(vm!.dir, 'qemu.pid'));
    assert.notEqual(pidAfter, pidBefore, 'power cycle must start a new QEMU process');
    await vm!.waitForConsole(DEMO_NO_CONFIGDRIVE, { since, timeoutMs: 90_000 });
    const out = vm!.readConsole(since);
    assert.match(out, /Booting from Hard Disk/);
    assert.match(out, /SYSLINUX/);
    assert.doesNotMatch(out, /Configuring \(net0/);
    assert.match(readFileSync(join(vm!.dir, 'power.log'), 'utf8'), /start boot=order=cn/);
    process.stderr.write(`# power cycle -> demo OS marker in ${Date.now() - started} ms\n`);
    // The serial console is interactive too: the demo OS's shell answers on it.
    const typed = vm!.consoleMark();
    await vm!.sendConsole('echo KILN-TYPED-$((6*7))\r');
    await vm!.waitForConsole(/KILN-TYPED-42/, { since: typed, timeoutMs: 20_000 });
    const sets = bmc!.calls().filter((c) => c.startsWith('set'));
    process.stderr.write(`# chassis_control calls: ${sets.join(', ')}\n`);
    assert.ok(sets.indexOf('set boot default') > sets.indexOf('set boot pxe'));
  });

  it('power off: QEMU stops and power status says off', async () => {
    const pid = readPidFile(join(vm!.dir, 'qemu.pid'));
    assert.ok(pid, 'a QEMU pid while on');
    await ipmitool(bmc!, 'chassis', 'power', 'off');
    assert.equal((await ipmitool(bmc!, 'chassis', 'power', 'status')).stdout, 'Chassis Power is off');
    assert.deepEqual(processesWith(vm!.qmpSocket), []);
    assert.equal(await vm!.powerState(), 'off');
  });
});
