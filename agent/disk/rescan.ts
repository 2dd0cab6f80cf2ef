// After a partition table changes, make the kernel and /dev agree with it. `partx -u` updates
// the kernel's view; on a ramdisk without udev (and in containers whose /dev is not devtmpfs)
// the partition nodes may still be missing, so they are made from sysfs major:minor.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { run as defaultRun, type Runner } from '../../shared/exec.ts';

export interface PartitionNode {
  number: number;
  path: string;
  /** Start and size in bytes. */
  start: number;
  size: number;
}

export async function rescanPartitions(disk: string, run: Runner = defaultRun): Promise<PartitionNode[]> {
  await run('partx', ['-u', disk]).catch(async () => {
    // partx -u fails when the kernel had no table before; -a adds them.
    await run('partx', ['-a', disk]).catch(() => {});
  });
  const name = basename(disk);
  const sys = `/sys/block/${name}`;
  const parts: PartitionNode[] = [];
  for (const entry of await readdir(sys).catch(() => [] as string[])) {
    if (!entry.startsWith(name)) continue;
    const partNo = await readFile(`${sys}/${entry}/partition`, 'utf8').catch(() => null);
    if (partNo === null) continue;
    const [major, minor] = (await readFile(`${sys}/${entry}/dev`, 'utf8')).trim().split(':');
    const path = `/dev/${entry}`;
    if (!existsSync(path)) await run('mknod', [path, 'b', major!, minor!]);
    const start = Number((await readFile(`${sys}/${entry}/start`, 'utf8')).trim()) * 512;
    const size = Number((await readFile(`${sys}/${entry}/size`, 'utf8')).trim()) * 512;
    parts.push({ number: Number(partNo.trim()), path, start, size });
  }
  return parts.sort((a, b) => a.number - b.number);
}

export async function deviceBytes(device: string, run: Runner = defaultRun): Promise<number> {
  return Number((await run('blockdev', ['--getsize64', device])).stdout.trim());
}
