// The last line of defence before anything writes to a disk: every destructive operation in the
// disk engine asks a TargetGuard first. In the agent the guard allows exactly the disks that
// were selected for this step (root-device hints or the per-disk erase list, after the safety
// checks in devices.ts); tests build it with the loop devices they created, so a bug can never
// reach the machine's own disks.
import { realpathSync } from 'node:fs';

export class TargetNotAllowedError extends Error {
  readonly code = 'TARGET_NOT_ALLOWED';
  constructor(readonly device: string) {
    super(`refusing to write to ${device}: it was not selected as a target for this step`);
    this.name = 'TargetNotAllowedError';
  }
}

function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** Partition device names of a disk: sda → sda1, nvme0n1 → nvme0n1p1, loop3 → loop3p1. */
export function isPartitionOf(part: string, disk: string): boolean {
  if (!part.startsWith(disk)) return false;
  const rest = part.slice(disk.length);
  return /^p?\d+$/.test(rest) && (/\d$/.test(disk) ? rest.startsWith('p') : !rest.startsWith('p'));
}

export class TargetGuard {
  private readonly allowed: Set<string>;
  constructor(targets: readonly string[]) {
    this.allowed = new Set(targets.map(canonical));
  }

  /** Allowed: one of the targets, or a partition of one. */
  allows(device: string): boolean {
    const d = canonical(device);
    if (this.allowed.has(d)) return true;
    for (const a of this.allowed) if (isPartitionOf(d, a)) return true;
    return false;
  }

  assertWritable(device: string): void {
    if (!this.allows(device)) throw new TargetNotAllowedError(device);
  }

  get targets(): string[] {
    return [...this.allowed];
  }
}
