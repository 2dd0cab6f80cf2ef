// Partition images: Kiln lays out the disk, then streams the root filesystem image into the
// root partition. GPT for UEFI (ESP first) or when asked; MBR for BIOS by default, as Ironic's
// disk_label capability decides. Layout, in order: [ESP | BIOS boot (GPT+BIOS)], root
// (root_mb), [swap (swap_mb)], [ephemeral (ephemeral_mb)]; the config drive, if any, goes into
// the last 64 MiB afterwards (configdrive.ts), which the layout leaves free.
import { run as defaultRun, type Runner } from '../../shared/exec.ts';
import type { Logger } from '../../shared/log.ts';
import type { TargetGuard } from './guard.ts';
import { deviceBytes, type PartitionNode, rescanPartitions } from './rescan.ts';

export interface PartitionLayoutRequest {
  bootMode: 'uefi' | 'bios';
  /** 'gpt' or 'msdos'; default GPT for UEFI, MBR for BIOS. */
  diskLabel?: 'gpt' | 'msdos' | null;
  rootMb: number;
  swapMb?: number;
  ephemeralMb?: number;
  ephemeralFormat?: string | null;
  /** ESP size (IPA's default is 550 MiB). */
  espMb?: number;
}

export interface PartitionLayout {
  label: 'gpt' | 'msdos';
  root: PartitionNode;
  esp: PartitionNode | null;
  biosBoot: PartitionNode | null;
  swap: PartitionNode | null;
  ephemeral: PartitionNode | null;
}

export class PartitioningError extends Error {
  readonly code = 'PARTITIONING_FAILED';
  constructor(message: string) {
    super(message);
    this.name = 'PartitioningError';
  }
}

const RESERVE_END_MB = 65; // config drive (64 MiB) + backup GPT

export async function makePartitionLayout(
  disk: string,
  req: PartitionLayoutRequest,
  ctx: { guard: TargetGuard; run?: Runner; log?: Logger },
): Promise<PartitionLayout> {
  const run = ctx.run ?? defaultRun;
  ctx.guard.assertWritable(disk);
  const label = req.diskLabel ?? (req.bootMode === 'uefi' ? 'gpt' : 'msdos');
  const espMb = req.espMb ?? 550;
  const plan: Array<{ role: keyof Omit<PartitionLayout, 'label'>; mb: number; gpt: string; mbr: string }> =
    [];
  if (req.bootMode === 'uefi') plan.push({ role: 'esp', mb: espMb, gpt: 'ef00', mbr: 'ef' });
  else if (label === 'gpt') plan.push({ role: 'biosBoot', mb: 1, gpt: 'ef02', mbr: '' });
  plan.push({ role: 'root', mb: req.rootMb, gpt: '8300', mbr: '83' });
  if (req.swapMb) plan.push({ role: 'swap', mb: req.swapMb, gpt: '8200', mbr: '82' });
  if (req.ephemeralMb) plan.push({ role: 'ephemeral', mb: req.ephemeralMb, gpt: '8300', mbr: '83' });
  if (label === 'msdos' && plan.length > 4)
    throw new PartitioningError('an MBR layout with this many partitions needs extended partitions; use GPT');
  const total = plan.reduce((s, p) => s + p.mb, 0) + 1 + RESERVE_END_MB;
  const size = await deviceBytes(disk, run);
  if (total * 1024 * 1024 > size) {
    throw new PartitioningError(
      `the layout needs ${total} MiB but ${disk} has ${Math.floor(size / 1024 / 1024)} MiB; lower root_mb/swap_mb/ephemeral_mb`,
    );
  }
  await run('wipefs', ['--force', '--all', disk]);
  if (label === 'gpt') {
    await run('sgdisk', ['--zap-all', disk]).catch(() => {});
    const args: string[] = [];
    plan.forEach((p, i) => {
      const n = i + 1;
      args.push('-n', `${n}:0:+${p.mb}M`, '-t', `${n}:${p.gpt}`, '-c', `${n}:${p.role}`);
    });
    await run('sgdisk', [...args, disk]);
  } else {
    const lines = ['label: dos'];
    for (const p of plan) {
      const boot = (p.role === 'root' && req.bootMode === 'bios') || p.role === 'esp' ? ', bootable' : '';
      lines.push(`size=${p.mb}MiB, type=${p.mbr}${boot}`);
    }
    await run('sfdisk', ['--no-reread', '--wipe', 'always', disk], { input: `${lines.join('\n')}\n` });
  }
  const parts = await rescanPartitions(disk, run);
  if (parts.length !== plan.length)
    throw new PartitioningError(
      `${disk}: expected ${plan.length} partitions after partitioning, the kernel shows ${parts.length}`,
    );
  const layout: PartitionLayout = {
    label,
    root: parts[0]!,
    esp: null,
    biosBoot: null,
    swap: null,
    ephemeral: null,
  };
  plan.forEach((p, i) => {
    layout[p.role] = parts[i]!;
  });
  for (const p of parts) {
    ctx.guard.assertWritable(p.path);
    await run('wipefs', ['--force', '--all', p.path]);
  }
  if (layout.esp)
    await run('mkfs.vfat', ['-F', '32', '-n', 'EFI-PART', layout.esp.path]).catch(() =>
      run('mkfs.vfat', ['-n', 'EFI-PART', layout.esp!.path]),
    );
  if (layout.swap) await run('mkswap', ['-L', 'swap1', layout.swap.path]);
  if (layout.ephemeral) {
    await run(`mkfs.${req.ephemeralFormat ?? 'ext4'}`, ['-L', 'ephemeral0', layout.ephemeral.path]);
  }
  ctx.log?.info({ disk, label, partitions: parts.map((p) => p.path) }, 'partition layout created');
  return layout;
}
