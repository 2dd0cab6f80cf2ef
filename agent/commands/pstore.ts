// IPA's erase_pstore clean step: delete the crash records the kernel keeps in persistent storage
// (pstore: EFI variables, ACPI ERST, ramoops), which survive reboots and would carry one tenant's
// kernel logs to the next. The pstore filesystem is found in /proc/mounts, as IPA finds it. It
// runs only in the Kiln ramdisk: anywhere else the records are this machine's own.
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RAMDISK_MARKER } from '../device-access.ts';
import { commandExecutionError } from './errors.ts';
import type { StepTable } from './steps.ts';

/** Where pstore is mounted, from a mounts table ("pstore /sys/fs/pstore pstore rw,... 0 0"). */
export async function pstoreMountPoint(mounts = '/proc/mounts'): Promise<string | null> {
  const text = await readFile(mounts, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [, dir, type] = line.split(/\s+/);
    if (type === 'pstore' && dir) return dir.replace(/\\040/g, ' ');
  }
  return null;
}

export interface PstoreStepOptions {
  /** Running in the Kiln ramdisk; elsewhere the step refuses. */
  inRamdisk: boolean;
  /** The pstore directory, or null when there is none (default: from /proc/mounts). */
  pstoreDir?: () => Promise<string | null>;
}

export function implementPstoreStep(clean: StepTable, opts: PstoreStepOptions): void {
  clean.implement('erase_pstore', async (_args, ctx) => {
    const dir = await (opts.pstoreDir ?? pstoreMountPoint)();
    if (!opts.inRamdisk) {
      throw commandExecutionError(
        `erase_pstore refused: the agent is not running in the Kiln ramdisk (no ${RAMDISK_MARKER}), so the kernel crash records${dir ? ` in ${dir}` : ''} are this machine's own`,
      );
    }
    if (!dir) {
      ctx.log.info({}, 'no pstore mounted; nothing to erase');
      return { pstore: null, removed: [] };
    }
    const names = await readdir(dir);
    for (const name of names) await rm(join(dir, name), { recursive: true, force: true });
    ctx.log.info({ pstore: dir, removed: names.length }, 'pstore erased');
    return { pstore: dir, removed: names.sort() };
  });
}
