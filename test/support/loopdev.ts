// Loop devices for disk tests: a sparse backing file in a private temp dir, attached with
// `losetup --partscan`, always detached again (call destroy() from a finally / after hook).
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export interface LoopDevice {
  /** /dev/loopN */
  path: string;
  backingFile: string;
  bytes: number;
  /** Partition device node N (loopNpM). */
  part(n: number): string;
  /** Re-read the partition table (after writing an image with one in it). */
  rescan(): Promise<void>;
  destroy(): Promise<void>;
}

export async function createLoopDevice(
  bytes: number,
  opts: { dir?: string; sectorSize?: number } = {},
): Promise<LoopDevice> {
  const dir = await mkdtemp(join(opts.dir ?? tmpdir(), 'kiln-loop-'));
  const backingFile = join(dir, 'disk.img');
  await execa('touch', [backingFile]);
  await truncate(backingFile, bytes);
  const args = ['--find', '--show', '--partscan'];
  if (opts.sectorSize) args.push('--sector-size', String(opts.sectorSize));
  let path: string;
  try {
    path = (await execa('losetup', [...args, backingFile])).stdout.trim();
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  let destroyed = false;
  return {
    path,
    backingFile,
    bytes,
    part: (n) => `${path}p${n}`,
    rescan: async () => {
      await execa('blockdev', ['--rereadpt', path]).catch(() => execa('partx', ['-u', path]));
    },
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      // Mounts made by a failed test would keep the device busy.
      await execa('sh', ['-c', `grep "^${path}" /proc/mounts | cut -d' ' -f2 | xargs -r umount -l`], {
        reject: false,
      });
      for (let i = 0; i < 5; i++) {
        const r = await execa('losetup', ['-d', path], { reject: false });
        if (r.exitCode === 0) break;
        await new Promise((res) => setTimeout(res, 200));
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Read `length` bytes at `offset` from a device (bypassing nothing: callers flush first). */
export async function readDevice(path: string, offset: number, length: number): Promise<Buffer> {
  const { open } = await import('node:fs/promises');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf.subarray(0, done);
  } finally {
    await fh.close();
  }
}
