// image.install_bootloader for UEFI: find the image's ESP, find the loader it ships (shim, then
// GRUB, then the removable-media path), and point an NVRAM boot entry at it with efibootmgr,
// replacing older entries with the same label. BIOS with a whole-disk image needs nothing: the
// image's own boot sector is on the disk. As in IPA, boot entries are written only from a
// ramdisk that itself booted in UEFI mode; from a BIOS-booted one the step is skipped.
import { access } from 'node:fs/promises';
import { run as defaultRun, type Runner } from '../../shared/exec.ts';
import type { Logger } from '../../shared/log.ts';
import { rescanPartitions } from './rescan.ts';
import { ESP_GUID, probe } from './uuids.ts';

export class BootloaderError extends Error {
  readonly code = 'BOOTLOADER_FAILED';
  constructor(message: string) {
    super(message);
    this.name = 'BootloaderError';
  }
}

export interface InstallBootloaderRequest {
  disk: string;
  bootMode: 'uefi' | 'bios';
  efiPartUuid?: string | null;
  /** Partition image in BIOS mode would need GRUB installed from the image; not supported. */
  partitionImage?: boolean;
  run?: Runner;
  log?: Logger;
}

export interface BootloaderResult {
  /** skipped: UEFI was asked for, but nothing could be done from here (see reason). */
  action: 'none' | 'uefi-entry' | 'skipped';
  reason?: string;
  loader?: string;
  label?: string;
  partition?: string;
}

/** IPA's test for the ramdisk's own boot mode: the kernel shows /sys/firmware/efi only after a UEFI boot. */
export async function ramdiskBootedInUefi(): Promise<boolean> {
  return access('/sys/firmware/efi').then(
    () => true,
    () => false,
  );
}

/** Why a UEFI install_bootloader does nothing in a BIOS-booted ramdisk. */
export const BIOS_RAMDISK_SKIP =
  'UEFI boot entry not written: this ramdisk booted in BIOS mode (no /sys/firmware/efi), so the ' +
  "firmware's boot variables can't be reached from it (IPA skips this step too). The node boots " +
  "the image only through its firmware's own boot order (in UEFI mode: the image's " +
  'EFI/BOOT/BOOTX64.EFI); boot the ramdisk in UEFI mode to have an entry created';

/** Why a UEFI install_bootloader for a whole-disk image without an ESP does nothing. */
export const NO_ESP_SKIP =
  'UEFI boot entry not written: the whole-disk image has no EFI system partition, so it boots ' +
  "only through the firmware's removable-media path (EFI/BOOT/BOOTX64.EFI on a FAT partition)";

const LOADER_PREFERENCE = [
  /^shimx64\.efi$/i,
  /^shimaa64\.efi$/i,
  /^grubx64\.efi$/i,
  /^grubaa64\.efi$/i,
  /^bootx64\.efi$/i,
  /^bootaa64\.efi$/i,
];

/** Loader files on the ESP, read with mtools: no mount, so no vfat module and nothing to unmount. */
async function findLoader(esp: string, run: Runner): Promise<{ dir: string; file: string } | null> {
  const r = await run('mdir', ['-b', '-/', '-i', esp, '::/']).catch(() => null);
  const found: Array<{ dir: string; file: string; rank: number }> = [];
  for (const line of (r?.stdout ?? '').split('\n')) {
    const m = /^::\/(efi\/[^/]+)\/([^/]+)$/i.exec(line.trim());
    if (!m) continue;
    const [, dir, file] = m as unknown as [string, string, string];
    const rank = LOADER_PREFERENCE.findIndex((re) => re.test(file));
    // The removable-media BOOT dir only counts when nothing vendor-specific exists.
    if (rank >= 0) found.push({ dir, file, rank: rank + (/\/boot$/i.test(dir) ? 10 : 0) });
  }
  found.sort((a, b) => a.rank - b.rank);
  return found[0] ?? null;
}

export async function installBootloader(req: InstallBootloaderRequest): Promise<BootloaderResult> {
  if (req.bootMode !== 'uefi') {
    if (req.partitionImage) {
      throw new BootloaderError(
        'BIOS boot of a partition image needs GRUB installed to the disk, which Kiln does not do; use a whole-disk image or UEFI',
      );
    }
    return { action: 'none' };
  }
  const run = req.run ?? defaultRun;
  const parts = await rescanPartitions(req.disk, run);
  let esp: { path: string; number: number } | null = null;
  for (const p of parts) {
    const info = await probe(p.path, run);
    const uuidMatch =
      req.efiPartUuid && info.PART_ENTRY_UUID?.toLowerCase() === req.efiPartUuid.toLowerCase();
    const typeMatch = info.PART_ENTRY_TYPE?.toLowerCase() === ESP_GUID || info.PART_ENTRY_TYPE === '0xef';
    if (uuidMatch || (!req.efiPartUuid && typeMatch)) {
      esp = p;
      break;
    }
  }
  if (!esp) {
    // A whole-disk image is the image's own business: many (the demo image, cloud images on MBR)
    // boot through the firmware's removable-media path on a plain FAT partition, with no ESP
    // to write an entry for. IPA returns without error for whole-disk images here, too. A named
    // ESP, or a partition image (whose ESP Kiln made), missing is a real failure.
    if (!req.efiPartUuid && !req.partitionImage) {
      const reason = `${NO_ESP_SKIP} (${req.disk})`;
      req.log?.warn({ disk: req.disk }, reason);
      return { action: 'skipped', reason };
    }
    throw new BootloaderError(
      `no EFI system partition${req.efiPartUuid ? ` with PARTUUID ${req.efiPartUuid}` : ''} on ${req.disk}; the image can't boot in UEFI mode`,
    );
  }
  const loader = await findLoader(esp.path, run);
  if (!loader)
    throw new BootloaderError(
      `${esp.path} has no EFI loader (EFI/*/shimx64.efi, grubx64.efi or BOOTX64.EFI)`,
    );
  const vendor = loader.dir.split('/')[1] ?? 'boot';
  const label = vendor.toUpperCase() === 'BOOT' ? 'kiln' : vendor;
  const path = `\\${loader.dir.replace(/\//g, '\\')}\\${loader.file}`;
  // Drop stale entries with the same label so boot order doesn't point at an old disk.
  const list = await run('efibootmgr', []);
  for (const line of list.stdout.split('\n')) {
    const m = /^Boot([0-9A-F]{4})\*?\s+(.*)$/.exec(line.trim());
    if (m && m[2]!.split('\t')[0]!.trim() === label) await run('efibootmgr', ['-b', m[1]!, '-B']);
  }
  await run('efibootmgr', ['-c', '-d', req.disk, '-p', String(esp.number), '-w', '-L', label, '-l', path]);
  req.log?.info({ disk: req.disk, partition: esp.path, loader: path, label }, 'UEFI boot entry created');
  return { action: 'uefi-entry', loader: path, label, partition: esp.path };
}
