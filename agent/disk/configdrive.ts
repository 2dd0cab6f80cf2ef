// OpenStack config drives on the agent's side: taking one from the deploy request and putting it
// on a disk. Building one is shared/configdrive.ts (the conductor makes them).
//   decode: base64(gzip(image)) or a URL to one, as IPA accepts; at most 64 MiB unpacked.
//   write:  reuse a partition labelled config-2, else a new partition in the last 64 MiB
//           (GPT: sgdisk; MBR: sfdisk --append), copy the image in, check blkid sees config-2.
import { gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { CONFIG_DRIVE_LABEL } from '../../shared/configdrive.ts';
import { run as defaultRun, type Runner } from '../../shared/exec.ts';
import type { Logger } from '../../shared/log.ts';
import type { TargetGuard } from './guard.ts';
import { deviceBytes, type PartitionNode, rescanPartitions } from './rescan.ts';
import { imageDispatcher } from './stream/http-source.ts';
import { zeroRange } from './zero.ts';

export const CONFIG_DRIVE_MAX = 64 * 1024 * 1024;

export class ConfigDriveError extends Error {
  readonly code = 'CONFIG_DRIVE_FAILED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigDriveError';
  }
}

/** The image bytes from the `configdrive` parameter (base64+gzip text, or a URL to it). */
export async function decodeConfigDrive(value: string, signal?: AbortSignal): Promise<Buffer> {
  const isUrl = /^https?:\/\//.test(value);
  let data: Buffer;
  if (isUrl) {
    const res = await request(value, { dispatcher: imageDispatcher, signal });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new ConfigDriveError(`config drive download ${value} answered HTTP ${res.statusCode}`);
    }
    const parts: Buffer[] = [];
    let len = 0;
    for await (const c of res.body as AsyncIterable<Buffer>) {
      len += c.length;
      // base64 of gzip can be at most ~4/3 of the limit, plus a raw image at the limit.
      if (len > CONFIG_DRIVE_MAX * 2)
        throw new ConfigDriveError(`config drive at ${value} is larger than 64 MiB`);
      parts.push(c);
    }
    data = Buffer.concat(parts);
  } else {
    data = Buffer.from(value, 'utf8');
  }
  try {
    return gunzipSync(Buffer.from(data.toString('latin1'), 'base64'), { maxOutputLength: CONFIG_DRIVE_MAX });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ConfigDriveError(
        'config drive is larger than 64 MiB once unpacked; Ironic and the agent accept at most 64 MiB',
      );
    }
    // IPA also accepts a URL serving the image itself.
    if (isUrl && data.length <= CONFIG_DRIVE_MAX) return data;
    throw new ConfigDriveError('config drive is neither gzip+base64 text nor a URL', { cause: e });
  }
}

export interface WriteConfigDriveOptions {
  guard: TargetGuard;
  run?: Runner;
  log?: Logger;
}

async function labelOf(path: string, run: Runner): Promise<string | null> {
  const r = await run('blkid', ['-p', '-o', 'value', '-s', 'LABEL', path]).catch(() => null);
  return r?.stdout.trim() || null;
}

async function tableType(disk: string, run: Runner): Promise<'gpt' | 'dos' | null> {
  const r = await run('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', disk]).catch(() => null);
  const t = r?.stdout.trim();
  return t === 'gpt' || t === 'dos' ? t : null;
}

/** Put the config drive on `disk`; returns the partition it went to. */
export async function writeConfigDrive(
  disk: string,
  image: Buffer,
  opts: WriteConfigDriveOptions,
): Promise<PartitionNode> {
  const run = opts.run ?? defaultRun;
  opts.guard.assertWritable(disk);
  if (image.length > CONFIG_DRIVE_MAX)
    throw new ConfigDriveError(`config drive is ${image.length} bytes; at most 64 MiB fit`);
  let parts = await rescanPartitions(disk, run);
  let target: PartitionNode | undefined;
  for (const p of parts) {
    const label = await labelOf(p.path, run);
    if (label?.toLowerCase() === CONFIG_DRIVE_LABEL) target = p;
  }
  if (!target) {
    const kind = await tableType(disk, run);
    const size = await deviceBytes(disk, run);
    if (kind === 'gpt') {
      // An image smaller than the disk has its backup GPT in the middle; move it to the end first.
      await run('sgdisk', ['-e', disk]);
      await run('sgdisk', ['-n', '0:-64M:0', '-c', `0:${CONFIG_DRIVE_LABEL}`, disk]);
    } else if (kind === 'dos') {
      if (parts.length >= 4)
        throw new ConfigDriveError(`${disk} has 4 primary MBR partitions; no room for the config drive`);
      const sectors = Math.floor(size / 512);
      const lastUsed = Math.max(0, ...parts.map((p) => (p.start + p.size) / 512));
      const start = Math.max(sectors - (64 * 1024 * 1024) / 512, Math.ceil(lastUsed / 2048) * 2048);
      if (start + (image.length >> 9) > sectors)
        throw new ConfigDriveError(`${disk} has no free 64 MiB at its end for the config drive`);
      await run('sfdisk', ['--append', '--no-reread', disk], { input: `start=${start}, type=83\n` });
    } else {
      throw new ConfigDriveError(
        `${disk} has no partition table; a config drive needs a GPT or MBR disk image`,
      );
    }
    const before = new Set(parts.map((p) => p.number));
    parts = await rescanPartitions(disk, run);
    target = parts.find((p) => !before.has(p.number));
    if (!target)
      throw new ConfigDriveError(
        `created a config drive partition on ${disk} but the kernel does not show it`,
      );
  }
  if (image.length > target.size)
    throw new ConfigDriveError(
      `config drive (${image.length} bytes) does not fit ${target.path} (${target.size} bytes)`,
    );
  opts.guard.assertWritable(target.path);
  await zeroRange(target.path, opts.guard, 0, Math.min(target.size, 1024 * 1024), { run, noOffload: true });
  const { open } = await import('node:fs/promises');
  const fh = await open(target.path, 'r+');
  try {
    await fh.write(image, 0, image.length, 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await run('blockdev', ['--flushbufs', target.path]).catch(() => {});
  const label = await labelOf(target.path, run);
  if (label?.toLowerCase() !== CONFIG_DRIVE_LABEL) {
    throw new ConfigDriveError(
      `wrote the config drive to ${target.path} but blkid reads label ${label ?? 'none'}`,
    );
  }
  opts.log?.info({ disk, partition: target.path, bytes: image.length }, 'config drive written');
  return target;
}
