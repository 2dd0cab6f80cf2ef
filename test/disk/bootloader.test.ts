// install_bootloader (UEFI) on whole-disk images laid out the way real ones are, on a loop device
// of the test's own: an MBR image with only a plain FAT partition (booted by the firmware's
// removable-media path) has no ESP to write an entry for, and that is not a failed deploy; an
// MBR ESP (type 0xef) gets its entry. efibootmgr is recorded, everything else runs for real.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { BootloaderError, installBootloader, NO_ESP_SKIP } from '../../agent/disk/bootloader.ts';
import { type Runner, run as realRun } from '../../shared/exec.ts';
import { createLoopDevice, type LoopDevice } from '../support/loopdev.ts';
import { MiB } from './fixtures.ts';

describe('install_bootloader (UEFI) on MBR whole-disk images', () => {
  let disk: LoopDevice;
  let dir: string;
  const efiCalls: string[][] = [];
  const run: Runner = async (file, args, opts) => {
    if (file === 'efibootmgr') {
      efiCalls.push([...args]);
      return { stdout: '', stderr: '', exitCode: 0 };
    }
    return realRun(file, args, opts);
  };

  /**
   * One FAT partition of the given MBR type holding EFI/BOOT/BOOTX64.EFI, built in files (the
   * way image builders do, with no partition device nodes needed) and written to the disk.
   */
  async function layout(type: '0c' | 'ef'): Promise<void> {
    const image = join(dir, `disk-${type}.img`);
    const fat = join(dir, `fat-${type}.img`);
    await execa('truncate', ['-s', String(disk.bytes), image]);
    await execa('sfdisk', ['--quiet', image], { input: `label: dos\n2048,,${type},*\n` });
    await execa('truncate', ['-s', String(disk.bytes - MiB), fat]);
    await execa('mkfs.vfat', ['-F', '16', fat]);
    const loader = join(dir, 'BOOTX64.EFI');
    await writeFile(loader, 'MZ not really a loader');
    await execa('mmd', ['-i', fat, '::/EFI', '::/EFI/BOOT']);
    await execa('mcopy', ['-i', fat, loader, '::/EFI/BOOT/BOOTX64.EFI']);
    await execa('dd', [`if=${fat}`, `of=${image}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
    await execa('dd', [`if=${image}`, `of=${disk.path}`, 'bs=1M', 'oflag=direct', 'status=none']);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-bootloader-'));
    disk = await createLoopDevice(64 * MiB);
  });
  after(async () => {
    await disk?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a plain FAT partition and no ESP: skipped, saying why, with no efibootmgr call', async () => {
    await layout('0c');
    efiCalls.length = 0;
    const r = await installBootloader({ disk: disk.path, bootMode: 'uefi', run });
    assert.equal(r.action, 'skipped');
    assert.equal(r.reason, `${NO_ESP_SKIP} (${disk.path})`);
    assert.deepEqual(efiCalls, []);
  });

  test('no ESP is still a failure for a partition image or a named ESP', async () => {
    await assert.rejects(
      installBootloader({ disk: disk.path, bootMode: 'uefi', partitionImage: true, run }),
      (e: Error) => e instanceof BootloaderError && /no EFI system partition on/.test(e.message),
    );
    await assert.rejects(
      installBootloader({
        disk: disk.path,
        bootMode: 'uefi',
        efiPartUuid: '0badc0de-0000-4000-8000-000000000001',
        run,
      }),
      /no EFI system partition with PARTUUID 0badc0de/,
    );
  });

  test('an MBR ESP (type 0xef) gets a boot entry for its removable-media loader', async () => {
    await layout('ef');
    efiCalls.length = 0;
    const r = await installBootloader({ disk: disk.path, bootMode: 'uefi', run });
    assert.equal(r.action, 'uefi-entry');
    assert.deepEqual(efiCalls, [
      [],
      ['-c', '-d', disk.path, '-p', '1', '-w', '-L', 'kiln', '-l', '\\EFI\\BOOT\\BOOTX64.EFI'],
    ]);
  });
});
