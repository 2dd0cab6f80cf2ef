// The last line of defence before anything writes to a disk: every destructive operation in the
// disk engine asks a TargetGuard first. In the agent the guard allows exactly the disks that
// were selected for this step (root-device hints or the per-disk erase list, after the safety
// checks in devices.ts), and never anything outside the agent's device allow-list when it has
// one (--allow-device: always outside the Kiln ramdisk). Tests build it with the loop devices
// they created, so a bug can never reach the machine's own disks.
import { realpathSync } from 'node:fs';

export class TargetNotAllowedError extends Error {
  readonly code = 'TARGET_NOT_ALLOWED';
  constructor(
    /** The refused device(s), comma-separated; null when no device could be named. */
    readonly device: string | null,
    message?: string,
  ) {
    super(message ?? `refusing to write to ${device}: it was not selected as a target for this step`);
    this.name = 'TargetNotAllowedError';
  }
}

/** The device a path names (symlinks such as /dev/disk/by-id/... resolved). */
export function canonicalDevice(path: string): string {
  const p = path.startsWith('/') ? path : `/dev/${path}`;
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Partition device names of a disk: sda → sda1, nvme0n1 → nvme0n1p1, loop3 → loop3p1. */
export function isPartitionOf(part: string, disk: string): boolean {
  if (!part.startsWith(disk)) return false;
  const rest = part.slice(disk.length);
  return /^p?\d+$/.test(rest) && (/\d$/.test(disk) ? rest.startsWith('p') : !rest.startsWith('p'));
}

/** A set of disks, each standing also for its partitions. */
class DeviceSet {
  private readonly set: Set<string>;
  constructor(devices: readonly string[]) {
    this.set = new Set(devices.map(canonicalDevice));
  }
  has(device: string): boolean {
    const d = canonicalDevice(device);
    if (this.set.has(d)) return true;
    for (const a of this.set) if (isPartitionOf(d, a)) return true;
    return false;
  }
  get list(): string[] {
    return [...this.set];
  }
}

export interface DeviceLimit {
  /** The only devices (and their partitions) anything may be written to. */
  devices: readonly string[];
  /** The refusal's message for devices outside the limit: why, and how to allow them. */
  refusal?: (devices: readonly string[]) => string;
}

export class TargetGuard {
  private readonly allowed: DeviceSet;
  private readonly limit: DeviceSet | null;

  constructor(
    targets: readonly string[],
    private readonly within?: DeviceLimit,
  ) {
    this.allowed = new DeviceSet(targets);
    this.limit = within ? new DeviceSet(within.devices) : null;
  }

  /** Allowed: one of the targets, or a partition of one, and inside the limit if there is one. */
  allows(device: string): boolean {
    return this.allowed.has(device) && (this.limit?.has(device) ?? true);
  }

  assertWritable(device: string): void {
    if (this.limit && !this.limit.has(device)) {
      throw new TargetNotAllowedError(
        device,
        this.within?.refusal?.([device]) ??
          `refusing to write to ${device}: it is outside the device allow-list`,
      );
    }
    if (!this.allowed.has(device)) throw new TargetNotAllowedError(device);
  }

  get targets(): string[] {
    return this.allowed.list;
  }
}
