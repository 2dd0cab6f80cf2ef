import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type BlockDevice,
  matchesHints,
  parseLsblk,
  pickRootDevice,
  selectEraseTargets,
  selectRootDevice,
  unsafeReason,
} from './devices.ts';

const GiB = 1024 ** 3;

// Shape of `lsblk -J -b -o NAME,PATH,TYPE,SIZE,MODEL,...` (util-linux 2.38) on a server.
const LSBLK = JSON.stringify({
  blockdevices: [
    {
      name: 'sda',
      path: '/dev/sda',
      type: 'disk',
      size: 480 * GiB,
      model: 'SAMSUNG MZ7LH480',
      vendor: 'ATA',
      serial: 'S45NNA0M',
      wwn: '0x5002538e',
      rota: false,
      ro: false,
      rm: false,
      hctl: '0:0:0:0',
      mountpoint: null,
    },
    {
      name: 'sdb',
      path: '/dev/sdb',
      type: 'disk',
      size: 4000 * GiB,
      model: 'ST4000NM0035',
      vendor: 'ATA',
      serial: 'ZC1A2B3C',
      wwn: '0x5000c500',
      rota: true,
      ro: false,
      rm: false,
      hctl: '1:0:0:0',
      mountpoint: null,
      children: [
        {
          name: 'sdb1',
          path: '/dev/sdb1',
          type: 'part',
          size: 4000 * GiB,
          fstype: 'linux_raid_member',
          mountpoint: null,
        },
      ],
    },
    {
      name: 'nvme0n1',
      path: '/dev/nvme0n1',
      type: 'disk',
      size: 960 * GiB,
      model: 'Dell Ent NVMe',
      serial: 'NV123',
      rota: false,
      ro: false,
      rm: false,
      mountpoint: null,
      children: [
        {
          name: 'nvme0n1p1',
          path: '/dev/nvme0n1p1',
          type: 'part',
          size: 960 * GiB,
          fstype: 'ext4',
          mountpoint: '/mnt',
        },
      ],
    },
    {
      name: 'sdc',
      path: '/dev/sdc',
      type: 'disk',
      size: 2 * GiB,
      model: 'Virtual Media',
      vendor: 'AMI',
      rota: false,
      ro: false,
      rm: true,
      mountpoint: null,
    },
    { name: 'sr0', path: '/dev/sr0', type: 'rom', size: 1 * GiB, ro: true, mountpoint: null },
  ],
});

const devs = (): BlockDevice[] => parseLsblk(LSBLK);
const byName = (n: string) => devs().find((d) => d.name === n)!;

describe('root-device hints', () => {
  test('Ironic operators on size, strings and booleans', () => {
    const sda = byName('sda');
    assert.ok(matchesHints(sda, { size: 480 }));
    assert.ok(matchesHints(sda, { size: '>= 400' }));
    assert.ok(!matchesHints(sda, { size: '> 480' }));
    assert.ok(matchesHints(sda, { size: '<or> 100 <or> 480' }));
    assert.ok(matchesHints(sda, { model: 'samsung mz7lh480' }));
    assert.ok(matchesHints(sda, { model: '<in> MZ7LH' }));
    assert.ok(matchesHints(sda, { serial: 's== S45NNA0M', rotational: false }));
    assert.ok(matchesHints(sda, { name: 'sda' }));
    assert.ok(matchesHints(sda, { name: '/dev/sda', wwn: '0x5002538e', hctl: '0:0:0:0' }));
    assert.ok(!matchesHints(sda, { rotational: 'true' }));
    assert.throws(() => matchesHints(sda, { colour: 'blue' }), /not supported/);
  });
  test('default: the smallest disk of at least 4 GiB; hints override; unsafe picks are refused', async () => {
    assert.equal((await selectRootDevice(devs(), null)).path, '/dev/sda');
    assert.equal((await selectRootDevice(devs(), { size: '>= 400', rotational: false })).path, '/dev/sda');
    // The only rotational disk is a RAID member: refused rather than replaced by another disk.
    await assert.rejects(selectRootDevice(devs(), { rotational: true }), /\/dev\/sdb .*software RAID member/);
  });
});

describe('safety', () => {
  test('mounted, RAID member and virtual media are reasons to stay off', async () => {
    assert.equal(await unsafeReason(byName('sda')), null);
    assert.match((await unsafeReason(byName('nvme0n1')))!, /mounted \(\/dev\/nvme0n1p1 on \/mnt\)/);
    assert.equal(await unsafeReason(byName('sdb')), 'software RAID member');
    assert.equal(await unsafeReason(byName('sdc')), 'virtual media');
  });
  test('a hinted disk that is unsafe is refused, not silently swapped', async () => {
    await assert.rejects(selectRootDevice(devs(), { serial: 'ZC1A2B3C' }), /software RAID member; refusing/);
  });
  test('no match names the disks seen', async () => {
    await assert.rejects(selectRootDevice(devs(), { serial: 'nope' }), /disks seen: \/dev\/sda \(/);
  });
  test('skip_block_devices and allowOnly narrow the pool', async () => {
    // With sda skipped the smallest ≥ 4 GiB disk is nvme0n1, which is mounted: refused.
    await assert.rejects(selectRootDevice(devs(), null, { skip: [{ name: 'sda' }] }), /nvme0n1 .*mounted/);
    await assert.rejects(
      selectRootDevice(devs(), null, { allowOnly: ['/dev/sdc'] }),
      /no disk of at least 4 GiB/,
    );
  });
  test('erase selection: eligible disks only, the rest reported with a reason', async () => {
    const sel = await selectEraseTargets(devs(), null);
    assert.deepEqual(
      sel.targets.map((d) => d.path),
      ['/dev/sda'],
    );
    assert.deepEqual(
      sel.skipped.map((s) => s.path),
      ['/dev/sdb', '/dev/nvme0n1', '/dev/sdc'],
    );
    await assert.rejects(selectEraseTargets(devs(), ['/dev/sdz']), /not eligible/);
    const only = await selectEraseTargets(devs(), null, { allowOnly: ['/dev/loop7'] });
    assert.equal(only.targets.length + only.skipped.length, 0);
  });
});

describe('the root-disk rule without hints', () => {
  test('takes the smallest disk of at least 4 GiB, ties by name, whatever the listing order', () => {
    const base = byName('sda');
    const disk = (name: string, size: number): BlockDevice => ({ ...base, name, path: `/dev/${name}`, size });
    const listed = [disk('sdz', 8 * GiB), disk('sdb', 8 * GiB), disk('sdc', 2 * GiB), disk('sdd', 16 * GiB)];
    assert.equal(pickRootDevice(listed, null).path, '/dev/sdb');
    assert.equal(pickRootDevice([...listed].reverse(), null).path, '/dev/sdb');
  });
});
