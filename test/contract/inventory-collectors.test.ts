// Runs the inventory collector contract against every collector the agent runs
// (DEFAULT_COLLECTORS), on one machine made of the recorded fixtures in agent/inventory/fixtures/
// plus the sysfs files they come with.
//
// Not behind the Collector seam, so read from the machine running the test whatever the fixtures
// say: memory.physical_mb (systeminformation's DIMM table), the system_vendor fallback
// (systeminformation reads SMBIOS itself), interface addresses (os.networkInterfaces) and the
// hostname (os.hostname). Their values are checked for shape only.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { bmcCollector } from '../../agent/inventory/bmc.ts';
import { cpuCollector } from '../../agent/inventory/cpu.ts';
import { disksCollector } from '../../agent/inventory/disks.ts';
import { bootCollector, DEFAULT_COLLECTORS, hostnameCollector } from '../../agent/inventory/index.ts';
import { interfacesCollector } from '../../agent/inventory/interfaces.ts';
import { memoryCollector } from '../../agent/inventory/memory.ts';
import { systemCollector } from '../../agent/inventory/system.ts';
import type { Collector } from '../../agent/inventory/types.ts';
import {
  type CollectorSubject,
  type FakeMachine,
  inventoryCollectorContract,
} from './inventory-collectors.contract.ts';

const fixture = (name: string) =>
  readFileSync(join(import.meta.dirname, '../../agent/inventory/fixtures', name), 'utf8');

const NET = '/sys/class/net';
const DMI = '/sys/class/dmi/id';
const MEM = '/sys/devices/system/memory';
const LAN_PRINT = fixture('ipmitool-lan-print.txt');

const machine: FakeMachine = {
  files: {
    '/proc/cpuinfo': fixture('cpuinfo-kvm-epyc.txt'),
    '/proc/meminfo': fixture('meminfo-24g.txt'),
    [`${MEM}/block_size_bytes`]: '8000000\n',
    ...Object.fromEntries(Array.from({ length: 192 }, (_, i) => [`${MEM}/memory${i}/online`, '1\n'])),
    [`${NET}/eth0/address`]: '52:54:00:12:34:56\n',
    [`${NET}/eth0/carrier`]: '1\n',
    [`${NET}/eth0/speed`]: '1000\n',
    [`${NET}/eth0/device/vendor`]: '0x1af4\n',
    [`${NET}/eth0/device/device`]: '0x1000\n',
    [`${NET}/br0/address`]: '52:54:00:ff:ff:ff\n',
    [`${NET}/lo/address`]: '00:00:00:00:00:00\n',
    [`${DMI}/sys_vendor`]: 'QEMU\n',
    [`${DMI}/product_name`]: 'Standard PC (Q35 + ICH9, 2009)\n',
    [`${DMI}/product_serial`]: 'KILN-0001\n',
    [`${DMI}/product_uuid`]: '6F1A2B3C-4D5E-4F60-8172-839405A6B7C8\n',
    [`${DMI}/bios_vendor`]: 'EDK II\n',
    [`${DMI}/bios_version`]: 'edk2-stable202302\n',
    [`${DMI}/bios_date`]: '02/06/2023\n',
  },
  dirs: {
    [MEM]: ['block_size_bytes', 'auto_online_blocks', ...Array.from({ length: 192 }, (_, i) => `memory${i}`)],
    [NET]: ['lo', 'br0', 'eth0'],
    '/dev/disk/by-path': ['pci-0000:00:04.0'],
  },
  links: {
    [`${NET}/eth0/device/driver`]: '../../../../bus/virtio/drivers/virtio_net',
    '/dev/disk/by-path/pci-0000:00:04.0': '../../vda',
  },
  present: [`${NET}/eth0/device`, '/sys/firmware/efi', '/dev/ipmi0'],
  tools: {
    lscpu: () => fixture('lscpu-kvm-epyc.txt'),
    lsblk: () => fixture('lsblk-virtio.json'),
    udevadm: () => 'ID_SERIAL=virtio-kiln0001\nID_SERIAL_SHORT=kiln0001\n',
    tcpdump: () => fixture('tcpdump-lldp.txt'),
    ipmitool: (args) => (args[2] === '1' ? LAN_PRINT : ''),
  },
};

const world = {
  machine,
  all: DEFAULT_COLLECTORS,
  settings: { collectLldp: true, lldpTimeoutS: 1, bootif: '01-52-54-00-12-34-56' },
};

const MEMTOTAL = Number(/^MemTotal:\s+(\d+) kB/m.exec(fixture('meminfo-24g.txt'))![1]) * 1024;
/** The host's own SMBIOS, which systeminformation reads past the seam. */
const hostSmbios = existsSync(`${DMI}/sys_vendor`) && readFileSync(`${DMI}/sys_vendor`, 'utf8').trim() !== '';

const subjects: Array<CollectorSubject & { collector: Collector }> = [
  {
    collector: cpuCollector,
    keys: ['cpu'],
    inputs: { tools: ['lscpu'], paths: ['/proc/cpuinfo'] },
    reportsLoss: true,
    expect: ({ cpu }) => {
      assert.equal(cpu?.model_name, 'AMD EPYC');
      assert.equal(cpu?.count, 2);
      assert.equal(cpu?.architecture, 'x86_64');
      assert.equal(cpu?.socket_count, 1);
      assert.ok(cpu?.flags.includes('avx2'), 'flags from /proc/cpuinfo');
    },
  },
  {
    collector: memoryCollector,
    keys: ['memory'],
    inputs: { tools: [], paths: ['/proc/meminfo', MEM] },
    reportsLoss: true,
    expect: ({ memory }) => assert.equal(memory?.total, MEMTOTAL),
  },
  {
    collector: disksCollector,
    keys: ['disks'],
    inputs: { tools: ['lsblk', 'udevadm'], paths: ['/dev/disk/by-path'] },
    reportsLoss: true,
    expect: ({ disks }) => {
      assert.deepEqual(
        disks?.map((d) => [d.name, d.size, d.serial, d.by_path]),
        [['/dev/vda', 274877906944, 'kiln0001', '/dev/disk/by-path/pci-0000:00:04.0']],
        'whole disks with a size only: no loop, no empty zram',
      );
    },
  },
  {
    collector: interfacesCollector,
    keys: ['interfaces'],
    inputs: { tools: ['tcpdump'], paths: [NET] },
    reportsLoss: true,
    expect: ({ interfaces }) => {
      assert.deepEqual(
        interfaces?.map((i) => [i.name, i.mac_address, i.has_carrier, i.speed_mbps, i.vendor, i.driver]),
        [['eth0', '52:54:00:12:34:56', true, 1000, '0x1af4', 'virtio_net']],
        'physical NICs only',
      );
      assert.ok((interfaces?.[0]?.lldp?.length ?? 0) > 0, 'LLDP TLVs from the recorded frame');
    },
  },
  {
    collector: systemCollector,
    keys: ['system_vendor'],
    inputs: { tools: ['dmidecode'], paths: [DMI] },
    // Unless systeminformation finds this host's own SMBIOS past the seam.
    reportsLoss: !hostSmbios,
    expect: ({ system_vendor: sv }) => {
      assert.equal(sv?.manufacturer, 'QEMU');
      assert.equal(sv?.serial_number, 'KILN-0001');
      assert.equal(sv?.firmware.version, 'edk2-stable202302');
      assert.equal(sv?.system_uuid, '6f1a2b3c-4d5e-4f60-8172-839405a6b7c8');
    },
  },
  {
    collector: bootCollector,
    keys: ['boot'],
    inputs: { tools: [], paths: ['/sys/firmware/efi'] },
    // No /sys/firmware/efi means a BIOS boot, not a failure.
    reportsLoss: false,
    expect: ({ boot }) =>
      assert.deepEqual(boot, { current_boot_mode: 'uefi', pxe_interface: '01-52-54-00-12-34-56' }),
  },
  {
    collector: bmcCollector,
    keys: ['bmc_address', 'bmc_v6address', 'bmc_mac'],
    // /dev/ipmi0 stays: the collector must try ipmitool and report that it failed.
    inputs: { tools: ['ipmitool'], paths: [] },
    reportsLoss: true,
    expect: (p) => {
      assert.equal(p.bmc_address, '10.1.0.57');
      assert.equal(p.bmc_mac, 'a4:bf:01:64:86:70');
    },
  },
  {
    collector: hostnameCollector,
    keys: ['hostname'],
    inputs: { tools: [], paths: [] },
    reportsLoss: false,
    expect: (p) => assert.equal(p.hostname, os.hostname()),
  },
];

assert.deepEqual(
  subjects.map((s) => s.collector.name).sort(),
  DEFAULT_COLLECTORS.map((c) => c.name).sort(),
  'a subject for every collector the agent runs',
);
for (const s of subjects) inventoryCollectorContract(world, s);
