// Making ranges of a disk read back as zeros, fast: first the kernel's write-zeroes path
// (`blkdiscard --zeroout`, BLKZEROOUT: NVMe Write Zeroes, SCSI WRITE SAME, or fallocate on a
// loop device's backing file), then plain writes of a zero buffer. Used for qcow2 holes,
// the wipe tiers and the "kill the half-written image" path.
import { constants, promises as fsp } from 'node:fs';
import { run as defaultRun, type Runner } from '../../shared/exec.ts';
import type { TargetGuard } from './guard.ts';

const ZERO = Buffer.alloc(4 * 1024 * 1024);

export interface ZeroOptions {
  run?: Runner;
  /** Skip the offload and always write zeros (e.g. to measure it, or when offload lies). */
  noOffload?: boolean;
  onBytes?: (done: number) => void;
  signal?: AbortSignal;
}

/** Zero [offset, offset+length) of `device`. Durable (fdatasync) when it returns. */
export async function zeroRange(
  device: string,
  guard: TargetGuard,
  offset: number,
  length: number,
  opts: ZeroOptions = {},
): Promise<'offload' | 'write'> {
  guard.assertWritable(device);
  if (length <= 0) return 'offload';
  if (!opts.noOffload && offset % 512 === 0 && length % 512 === 0) {
    try {
      await (opts.run ?? defaultRun)(
        'blkdiscard',
        ['--zeroout', '--offset', String(offset), '--length', String(length), device],
        { timeoutMs: 24 * 3600_000 },
      );
      opts.onBytes?.(length);
      return 'offload';
    } catch {
      // Not supported by this device: write the zeros ourselves.
    }
  }
  await writeZeros(device, offset, length, opts);
  return 'write';
}

export async function writeZeros(
  device: string,
  offset: number,
  length: number,
  opts: ZeroOptions = {},
): Promise<void> {
  const fh = await fsp.open(device, constants.O_WRONLY);
  try {
    let done = 0;
    while (done < length) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
      const n = Math.min(ZERO.length, length - done);
      const { bytesWritten } = await fh.write(ZERO, 0, n, offset + done);
      if (bytesWritten <= 0) throw new Error(`short write to ${device} at ${offset + done}`);
      done += bytesWritten;
      opts.onBytes?.(done);
    }
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
