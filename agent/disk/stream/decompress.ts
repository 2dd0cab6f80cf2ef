// Decompressors as streaming filters. gzip is Node's zlib. Node 20 has neither xz nor zstd, so
// those run the `xz -dc` / `zstd -dc` binaries (both in the ramdisk) as pipes through execa:
// they are the reference decoders, run on their own core beside the agent, and keep only their
// window in memory (zstd's default is at most 8 MiB; --long images would need more and fail).
import type { Duplex } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { execa } from 'execa';
import type { Compression } from './detect.ts';

export class UnsupportedImageError extends Error {
  readonly code = 'UNSUPPORTED_IMAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedImageError';
  }
}

export function decompressor(kind: Compression): Duplex {
  switch (kind) {
    case 'gzip':
      return createGunzip({ chunkSize: 1024 * 1024 });
    case 'xz':
      return execa('xz', ['-dc'], { buffer: false, stderr: 'pipe' }).duplex();
    case 'zstd':
      return execa('zstd', ['-dc', '-q'], { buffer: false, stderr: 'pipe' }).duplex();
    default:
      throw new UnsupportedImageError(
        `${kind}-compressed images are not supported; recompress with gzip, xz or zstd`,
      );
  }
}
