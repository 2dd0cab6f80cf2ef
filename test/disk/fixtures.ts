// Image fixtures for disk tests, made with the real tools (qemu-img, gzip, xz, zstd) from a raw
// disk with random data and holes, so a conversion bug shows as a byte mismatch.
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

export const MiB = 1024 * 1024;

/** Raw image of `bytes` with random blocks at a few offsets (one not cluster-aligned). */
export async function makeRawImage(path: string, bytes: number): Promise<Buffer> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(bytes);
    const spots = [0, 5 * MiB, 6 * MiB, 7 * MiB + 4096, 20 * MiB, 30 * MiB + 1000, bytes - MiB];
    for (const at of spots) if (at + MiB <= bytes) await fh.write(randomBytes(MiB), 0, MiB, at);
  } finally {
    await fh.close();
  }
  return readFile(path);
}

export async function sha256File(path: string, algo = 'sha256'): Promise<string> {
  return createHash(algo)
    .update(await readFile(path))
    .digest('hex');
}

export async function qcow2(raw: string, out: string, opts: string[] = []): Promise<string> {
  await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', ...opts, raw, out]);
  return out;
}

export async function compress(tool: 'gzip' | 'xz' | 'zstd', file: string, dir: string): Promise<string> {
  const ext = { gzip: 'gz', xz: 'xz', zstd: 'zst' }[tool];
  const out = join(dir, `${file.split('/').pop()}.${ext}`);
  const args = tool === 'zstd' ? ['-q', '-c', '-3', '-T0', file] : ['-c', tool === 'xz' ? '-1' : '-1', file];
  await execa(tool, args, { stdout: { file: out } });
  return out;
}

/** Fill a device with 0xAA so that anything left unwritten shows. */
export async function fillJunk(device: string, bytes: number): Promise<void> {
  const fh = await open(device, 'r+');
  try {
    const junk = Buffer.alloc(4 * MiB, 0xaa);
    for (let at = 0; at < bytes; at += junk.length)
      await fh.write(junk, 0, Math.min(junk.length, bytes - at), at);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
