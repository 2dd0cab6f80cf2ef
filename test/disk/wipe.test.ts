// Each erase tier on a loop device with a GPT, an ext4 filesystem and junk everywhere, checked
// by reading the device back; plus the safety checks that keep mounted/read-only disks out.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { execa } from 'execa';
import { createDiskCommands } from '../../agent/commands/disk-steps.ts';
import { StepTable } from '../../agent/commands/steps.ts';
import type { Progress } from '../../agent/commands/types.ts';
import { listBlockDevices, selectEraseTargets } from '../../agent/disk/devices.ts';
import { TargetGuard } from '../../agent/disk/guard.ts';
import { rescanPartitions } from '../../agent/disk/rescan.ts';
import { eraseExpress, eraseFull, eraseMetadata } from '../../agent/disk/wipe.ts';
import { createLogger } from '../../shared/log.ts';
import { createLoopDevice, type LoopDevice, readDevice } from '../support/loopdev.ts';
import { fillJunk, MiB } from './fixtures.ts';

const SIZE = 64 * MiB;
let disk: LoopDevice;
let guard: TargetGuard;

async function prepare(): Promise<void> {
  await fillJunk(disk.path, SIZE);
  await execa('sgdisk', ['-n', '1:0:+24M', '-n', '2:0:+16M', disk.path]);
  const parts = await rescanPartitions(disk.path);
  assert.equal(parts.length, 2);
  await execa('mkfs.ext4', ['-q', '-F', parts[0]!.path]);
  await execa('mkfs.vfat', [parts[1]!.path]);
}

async function signatures(): Promise<string> {
  const r = await execa('blkid', ['-p', disk.path], { reject: false });
  return r.stdout.trim();
}

before(async () => {
  disk = await createLoopDevice(SIZE);
  guard = new TargetGuard([disk.path]);
});
after(async () => {
  await disk?.destroy();
});

describe('erase tiers', () => {
  beforeEach(prepare);

  test('metadata: signatures and both GPTs gone, the rest untouched', async () => {
    assert.match(await signatures(), /PTTYPE="gpt"/);
    const r = await eraseMetadata(disk.path, { guard });
    assert.equal(r.method, 'metadata');
    assert.equal(await signatures(), '');
    assert.ok((await readDevice(disk.path, 0, MiB)).every((b) => b === 0));
    assert.ok((await readDevice(disk.path, SIZE - MiB, MiB)).every((b) => b === 0));
    assert.equal((await rescanPartitions(disk.path)).length, 0);
    // Metadata only: junk in the unpartitioned gap survives.
    assert.ok((await readDevice(disk.path, 50 * MiB, 4096)).every((b) => b === 0xaa));
  });

  test('express: the device zeroes itself (write-zeroes offload); every byte reads back zero', async () => {
    const r = await eraseExpress(disk.path, { guard });
    assert.equal(r.method, 'write-zeroes');
    const all = await readDevice(disk.path, 0, SIZE);
    assert.ok(all.every((b) => b === 0));
  });

  test('full: zero fill with progress (no secure erase on a loop device); every byte reads back zero', async () => {
    const seen: Progress[] = [];
    const r = await eraseFull(disk.path, { guard, progress: (p) => seen.push(p) });
    assert.equal(r.method, 'zero-fill');
    assert.match(r.verified, /sampled/);
    const all = await readDevice(disk.path, 0, SIZE);
    assert.ok(all.every((b) => b === 0));
    assert.equal(seen.at(-1)?.phase, 'erase');
    assert.equal(seen.at(-1)?.bytes_done, SIZE);
  });
});

describe('clean steps', () => {
  test('erase_devices_metadata through the step table, confined to the allowed loop device', async () => {
    await prepare();
    const cmds = createDiskCommands({ allowOnly: [disk.path] });
    const clean = new StepTable('clean');
    const deploy = new StepTable('deploy');
    cmds.register(clean, deploy);
    const handler = clean.handler('erase_devices_metadata')!;
    const ctx = {
      log: createLogger({ name: 'test', level: 'silent' }),
      signal: new AbortController().signal,
      progress: () => {},
      node: { driver_internal_info: { agent_erase_devices_iterations: 1 } },
      ports: [],
      step: { interface: 'deploy', step: 'erase_devices_metadata', priority: 99 } as never,
    };
    const r = (await handler({}, ctx)) as { erased: Array<{ device: string; method: string }> };
    assert.deepEqual(
      r.erased.map((e) => [e.device, e.method]),
      [[disk.path, 'metadata']],
    );
    assert.equal(await signatures(), '');
    assert.ok(deploy.handler('write_image'));
    assert.ok(clean.handler('erase_devices') && clean.handler('erase_devices_express'));
  });
});

describe('safety', () => {
  let mnt: string;
  afterEach(async () => {
    await execa('umount', [mnt], { reject: false });
    await rm(mnt, { recursive: true, force: true });
  });

  test('a disk with a mounted partition is skipped; a disk outside the guard is refused', async () => {
    await prepare();
    mnt = await mkdtemp(join(tmpdir(), 'kiln-mnt-'));
    await execa('mount', [disk.part(1), mnt]);
    // (afterEach unmounts and removes mnt even when this test fails)
    const devs = await listBlockDevices(undefined, [disk.path]);
    const sel = await selectEraseTargets(devs, null, { allowOnly: [disk.path] });
    assert.equal(sel.targets.length, 0);
    assert.match(sel.skipped[0]!.reason, /mounted/);
    const other = await createLoopDevice(8 * MiB);
    try {
      await assert.rejects(eraseMetadata(other.path, { guard }), { code: 'TARGET_NOT_ALLOWED' });
    } finally {
      await other.destroy();
    }
  });

  test('a read-only disk is skipped', async () => {
    mnt = await mkdtemp(join(tmpdir(), 'kiln-ro-'));
    const file = join(mnt, 'ro.img');
    await execa('truncate', ['-s', '8M', file]);
    const ro = (await execa('losetup', ['--find', '--show', '--read-only', file])).stdout.trim();
    try {
      const devs = await listBlockDevices(undefined, [ro]);
      const sel = await selectEraseTargets(devs, null, { allowOnly: [ro] });
      assert.deepEqual(sel.skipped, [{ path: ro, reason: 'read-only' }]);
    } finally {
      await execa('losetup', ['-d', ro]);
    }
  });
});
