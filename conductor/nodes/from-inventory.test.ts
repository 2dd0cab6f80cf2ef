import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultRootDisk } from '../../shared/root-disk.ts';
import type { Inventory } from '../../shared/wire/ipa.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import {
  addInventoryPorts,
  inventoryMacs,
  localGb,
  portsFromInventory,
  propertiesFromInventory,
} from './from-inventory.ts';

const GiB = 1024 ** 3;
const disk = (name: string, gib: number) => ({ name, size: gib * GiB }) as Inventory['disks'][number];
const nics = (...macs: unknown[]) =>
  ({ interfaces: macs.map((m, i) => ({ name: `eth${i}`, mac_address: m })) }) as Partial<Inventory>;

describe('root disk (IPA: smallest disk of at least 4 GiB)', () => {
  it('picks the smallest disk of at least 4 GiB, ties by name', () => {
    assert.equal(
      defaultRootDisk([disk('/dev/sdb', 480), disk('/dev/sda', 2), disk('/dev/sdc', 240)])?.name,
      '/dev/sdc',
    );
    assert.equal(defaultRootDisk([disk('/dev/sdd', 240), disk('/dev/sdc', 240)])?.name, '/dev/sdc');
    assert.equal(defaultRootDisk([disk('/dev/sda', 4)])?.name, '/dev/sda');
    assert.equal(defaultRootDisk([{ name: '/dev/sda', size: 4 * GiB - 1 }]), null);
    assert.equal(defaultRootDisk([{ name: '/dev/x' }, { name: '/dev/y', size: null }]), null);
    assert.equal(defaultRootDisk([]), null);
  });
});

describe('local_gb (Ironic: root disk GiB - 1, at least 0)', () => {
  const cases: Array<[Inventory['disks'] | undefined, number | undefined]> = [
    [[disk('/dev/vda', 8)], 7],
    [[disk('/dev/vda', 8.9)], 7],
    [[disk('/dev/vda', 4)], 3],
    [[disk('/dev/vda', 100), disk('/dev/vdb', 20), disk('/dev/sr0', 1)], 19],
    [[disk('/dev/vda', 3)], undefined],
    [[], undefined],
    [undefined, undefined],
  ];
  for (const [disks, want] of cases) {
    it(`${JSON.stringify(disks?.map((d) => d.size / GiB))} → ${want}`, () =>
      assert.equal(localGb(disks), want));
  }
});

describe('properties from an inventory', () => {
  it('takes cpu_arch, cpus, memory_mb, local_gb and boot_mode', () => {
    assert.deepEqual(
      propertiesFromInventory({
        cpu: { count: 2, architecture: 'aarch64' } as Inventory['cpu'],
        memory: { total: 3 * 2 ** 30, physical_mb: 3072 },
        disks: [disk('/dev/vda', 10)],
        boot: { current_boot_mode: 'uefi', pxe_interface: null },
      }),
      { cpu_arch: 'aarch64', cpus: 2, memory_mb: 3072, local_gb: 9, boot_mode: 'uefi' },
    );
  });
  it('falls back to the total memory, and leaves out what the inventory does not say', () => {
    assert.deepEqual(propertiesFromInventory({ memory: { total: 2 ** 31, physical_mb: null } }), {
      memory_mb: 2048,
    });
    assert.deepEqual(propertiesFromInventory({}), {});
    assert.deepEqual(propertiesFromInventory({ disks: [disk('/dev/vda', 1)] }), {});
  });
});

describe('ports from an inventory', () => {
  it('normalises, deduplicates and drops all-zero, broadcast and malformed MACs', () => {
    assert.deepEqual(
      inventoryMacs(
        nics(
          '52:54:00:00:00:01',
          '52-54-00-00-00-01',
          '00:00:00:00:00:00',
          'ff:ff:ff:ff:ff:ff',
          'x',
          null,
          'AA:BB:CC:DD:EE:FF',
        ),
      ),
      ['52:54:00:00:00:01', 'aa:bb:cc:dd:ee:ff'],
    );
    assert.deepEqual(inventoryMacs({}), []);
  });

  const inv = nics('52:54:00:00:00:01', '52:54:00:00:00:02');
  const cases: Array<[string, Partial<Inventory>, unknown, string | null]> = [
    ['boot_interface in pxelinux form', inv, '01-52-54-00-00-00-02', '52:54:00:00:00:02'],
    ['boot_interface as a MAC', inv, '52:54:00:00:00:02', '52:54:00:00:00:02'],
    [
      "the inventory's boot.pxe_interface",
      { ...inv, boot: { current_boot_mode: 'bios', pxe_interface: '52-54-00-00-00-02' } },
      undefined,
      '52:54:00:00:00:02',
    ],
    [
      'boot_interface before boot.pxe_interface',
      { ...inv, boot: { current_boot_mode: 'bios', pxe_interface: '52:54:00:00:00:01' } },
      '52:54:00:00:00:02',
      '52:54:00:00:00:02',
    ],
    ['the first NIC when BOOTIF is unknown', inv, null, '52:54:00:00:00:01'],
    ['the first NIC when BOOTIF is garbage', inv, 'not-a-mac', '52:54:00:00:00:01'],
    ['no NIC at all', {}, null, null],
  ];
  for (const [what, i, bootInterface, want] of cases) {
    it(`boot NIC from ${what}`, () => {
      const { ports, bootMac } = portsFromInventory(i, bootInterface);
      assert.equal(bootMac, want);
      assert.deepEqual(
        ports.filter((p) => p.pxe_enabled).map((p) => p.address),
        want && ports.some((p) => p.address === want) ? [want] : [],
      );
    });
  }

  it('creates only the ports no node has yet', async () => {
    const store = await openSqliteStore(':memory:');
    const a = await store.nodes.create({ uuid: crypto.randomUUID(), driver: 'fake' });
    const b = await store.nodes.create({ uuid: crypto.randomUUID(), driver: 'fake' });
    await store.ports.create({ uuid: crypto.randomUUID(), address: '52:54:00:00:00:01', node_uuid: a.uuid });
    const { ports } = portsFromInventory(inv, '52:54:00:00:00:02');
    assert.deepEqual(await addInventoryPorts(store, b.uuid, ports), ['52:54:00:00:00:02']);
    assert.deepEqual(await addInventoryPorts(store, b.uuid, ports), []);
    assert.equal((await store.ports.getByAddress('52:54:00:00:00:01'))?.node_uuid, a.uuid);
    assert.equal((await store.ports.getByAddress('52:54:00:00:00:02'))?.pxe_enabled, true);
  });
});
