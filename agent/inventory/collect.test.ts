// Inventory on this very machine, checked against what the kernel and the tools say directly,
// and the failure rule: a broken collector is named, the rest is still collected.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { test } from 'node:test';
import { run } from '../../shared/exec.ts';
import { silentLogger } from '../../shared/log.ts';
import { checkWire, Inventory } from '../../shared/wire/ipa.ts';
import { collectInventory, DEFAULT_COLLECTORS } from './index.ts';

const settings = { collectLldp: false, lldpTimeoutS: 1, bootif: '01-3c-fd-fe-9c-87-60' };

test('collects what this machine can provide', async () => {
  const inv = await collectInventory({ log: silentLogger(), settings });
  assert.equal(inv.cpu.count, os.cpus().length);
  assert.equal(inv.cpu.architecture, os.machine());
  assert.ok(inv.cpu.flags.length > 0, 'flags from /proc/cpuinfo');
  const memKb = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
  assert.equal(inv.memory.total, memKb * 1024);
  assert.ok(inv.memory.physical_mb === null || inv.memory.physical_mb >= Math.floor(memKb / 1024));

  // Disks: every non-empty whole disk lsblk itself reports.
  const lsblk = JSON.parse((await run('lsblk', ['-J', '-b', '-d', '-o', 'KNAME,TYPE,SIZE'])).stdout) as {
    blockdevices: { kname: string; type: string; size: number }[];
  };
  const expected = lsblk.blockdevices
    .filter((d) => d.type === 'disk' && Number(d.size) > 0 && !/^(zram|ram|fd)/.test(d.kname))
    .map((d) => `/dev/${d.kname}`)
    .sort();
  assert.deepEqual(
    inv.disks.map((d) => d.name),
    expected,
  );
  for (const d of inv.disks) assert.ok(d.size > 0);

  // NICs: those with a backing device in sysfs, with the kernel's MAC.
  const physical = readdirSync('/sys/class/net').filter(
    (n) => n !== 'lo' && existsSync(`/sys/class/net/${n}/device`),
  );
  assert.deepEqual(inv.interfaces.map((i) => i.name).sort(), physical.sort());
  for (const i of inv.interfaces) {
    assert.equal(i.mac_address, readFileSync(`/sys/class/net/${i.name}/address`, 'utf8').trim());
    assert.equal(i.lldp, null);
  }
  const withV4 = inv.interfaces.filter((i) =>
    os.networkInterfaces()[i.name]?.some((a) => a.family === 'IPv4'),
  );
  for (const i of withV4) assert.match(i.ipv4_address ?? '', /^\d+\.\d+\.\d+\.\d+$/);

  assert.equal(inv.boot.current_boot_mode, existsSync('/sys/firmware/efi') ? 'uefi' : 'bios');
  assert.equal(inv.boot.pxe_interface, '01-3c-fd-fe-9c-87-60');
  assert.equal(inv.hostname, os.hostname());
  const hasIpmi = ['/dev/ipmi0', '/dev/ipmi/0', '/dev/ipmidev/0'].some((p) => existsSync(p));
  if (!hasIpmi) assert.equal(inv.bmc_address, null, 'no in-band IPMI device, no BMC facts');
  if (!existsSync('/sys/class/dmi/id')) {
    assert.ok(inv.kiln_collector_failures.some((f) => f.collector === 'system_vendor'));
  }
});

test('a failing collector is named and the others still report', async () => {
  const broken = { name: 'disks', collect: async () => Promise.reject(new Error('lsblk exploded')) };
  const inv = await collectInventory({
    log: silentLogger(),
    settings,
    collectors: [...DEFAULT_COLLECTORS.filter((c) => c.name !== 'disks'), broken],
  });
  assert.deepEqual(
    inv.kiln_collector_failures.filter((f) => f.collector === 'disks'),
    [{ collector: 'disks', message: 'lsblk exploded' }],
  );
  assert.deepEqual(inv.disks, []);
  assert.ok(inv.cpu.count > 0);
  assert.ok(inv.memory.total > 0);
});

test('a missing tool degrades to what the kernel knows', async () => {
  const inv = await collectInventory({
    log: silentLogger(),
    settings,
    run: async (file) => {
      throw Object.assign(new Error(`${file}: command not found`), { missing: true });
    },
  });
  assert.equal(inv.cpu.count, os.cpus().length, 'CPU facts from os.cpus() without lscpu');
  assert.ok(inv.kiln_collector_failures.some((f) => f.collector === 'cpu' && /lscpu failed/.test(f.message)));
  assert.ok(inv.kiln_collector_failures.some((f) => f.collector === 'disks'));
  assert.ok(inv.memory.total > 0);
});

test("the agent's inventory is one the conductor accepts (shared/wire/ipa.ts Inventory), also with collectors failing", async () => {
  const whole = await collectInventory({ log: silentLogger(), settings });
  const r = checkWire(Inventory, whole);
  assert.ok(r.ok, r.ok ? '' : r.message);
  const degraded = await collectInventory({
    log: silentLogger(),
    settings,
    run: async () => Promise.reject(new Error('no tools in this ramdisk')),
  });
  const d = checkWire(Inventory, JSON.parse(JSON.stringify(degraded)));
  assert.ok(d.ok, d.ok ? '' : d.message);
});
