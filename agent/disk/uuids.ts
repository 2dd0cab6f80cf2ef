// What standby.get_partition_uuids answers, in IPA's shape:
//   {"root uuid": ..., "efi system partition uuid": ..., "PReP Boot partition uuid": ..., "partitions": {...}}
// Whole-disk image: "root uuid" is the disk identifier (GPT disk GUID, or 0x-prefixed MBR
// signature). Partition image: the root filesystem's UUID. Read with `blkid -p` (low-level
// probe), which needs no udev.
import { run as defaultRun, type Runner } from '../../shared/exec.ts';
import type { PartitionLayout } from './partition-image.ts';
import { rescanPartitions } from './rescan.ts';

export const ESP_GUID = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b';
export const PREP_GUID = '9e1a2d38-c612-4316-aa26-8b49521e5a8b';

export interface PartitionUuids {
  'root uuid': string | null;
  'efi system partition uuid': string | null;
  'PReP Boot partition uuid': string | null;
  partitions: Record<string, string>;
}

export async function probe(path: string, run: Runner = defaultRun): Promise<Record<string, string>> {
  const r = await run('blkid', ['-p', '-o', 'export', path]).catch(() => null);
  const out: Record<string, string> = {};
  for (const line of (r?.stdout ?? '').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export async function partitionUuids(
  disk: string,
  opts: { layout?: PartitionLayout | null; run?: Runner } = {},
): Promise<PartitionUuids> {
  const run = opts.run ?? defaultRun;
  const parts = await rescanPartitions(disk, run);
  const probes = await Promise.all(parts.map(async (p) => ({ p, info: await probe(p.path, run) })));
  const result: PartitionUuids = {
    'root uuid': null,
    'efi system partition uuid': null,
    'PReP Boot partition uuid': null,
    partitions: {},
  };
  const isEsp = (i: Record<string, string>) =>
    i.PART_ENTRY_TYPE?.toLowerCase() === ESP_GUID || i.PART_ENTRY_TYPE === '0xef';
  const esp = probes.find((x) => isEsp(x.info));
  if (esp) {
    result['efi system partition uuid'] = esp.info.PART_ENTRY_UUID ?? null;
    result.partitions.efi_system_partition = esp.p.path;
  }
  const prep = probes.find(
    (x) => x.info.PART_ENTRY_TYPE?.toLowerCase() === PREP_GUID || x.info.PART_ENTRY_TYPE === '0x41',
  );
  if (prep) {
    result['PReP Boot partition uuid'] = prep.info.PART_ENTRY_UUID ?? null;
    result.partitions['PReP Boot partition'] = prep.p.path;
  }
  const cd = probes.find((x) => x.info.LABEL?.toLowerCase() === 'config-2');
  if (cd) result.partitions.configdrive = cd.p.path;
  if (opts.layout) {
    const root = await probe(opts.layout.root.path, run);
    result['root uuid'] = root.UUID ?? null;
    result.partitions.root = opts.layout.root.path;
  } else {
    const whole = await probe(disk, run);
    const pt = whole.PTUUID ?? null;
    result['root uuid'] = pt && whole.PTTYPE === 'dos' ? `0x${pt}` : pt;
    // The root filesystem of a whole-disk image: the biggest partition that isn't ESP/config drive.
    const root = probes
      .filter((x) => x !== esp && x !== cd && x !== prep)
      .sort((a, b) => b.p.size - a.p.size)[0];
    if (root) result.partitions.root = root.p.path;
  }
  return result;
}
