// Which block devices the agent's destructive steps may write. In the Kiln ramdisk the machine is
// the node being provisioned, so its disks are the job: erase and write steps pick them as IPA
// does. Anywhere else (`kiln agent` on a developer's workstation) the disks belong to someone
// else, so those steps write only to devices named with --allow-device (e.g. a loop device) and
// refuse everything else, saying which device and how to allow it. The ramdisk is recognised by
// the marker file its build writes (ramdisk-build/build.sh: /etc/kiln-ramdisk).
import { existsSync } from 'node:fs';
import { canonicalDevice } from './disk/guard.ts';

export const RAMDISK_MARKER = '/etc/kiln-ramdisk';

export function inKilnRamdisk(marker = RAMDISK_MARKER): boolean {
  return existsSync(marker);
}

export interface DeviceAccess {
  /** Running in the Kiln ramdisk: the machine's own disks and firmware are the node's. */
  inRamdisk: boolean;
  /** Devices destructive steps may write; null: whatever the step selects (the ramdisk's default). */
  allowed: string[] | null;
}

/** The decision: an explicit allow-list always confines; without one only the ramdisk may write. */
export function decideDeviceAccess(input: {
  inRamdisk: boolean;
  allowDevices: readonly string[];
}): DeviceAccess {
  const allowed = [...new Set(input.allowDevices.map(canonicalDevice))];
  if (allowed.length > 0) return { inRamdisk: input.inRamdisk, allowed };
  return { inRamdisk: input.inRamdisk, allowed: input.inRamdisk ? null : [] };
}

/** Why `devices` are refused and the flag that would allow them. */
export function refusalMessage(access: DeviceAccess, devices: readonly string[]): string {
  const what = devices.length
    ? `refusing to write to ${devices.join(', ')}`
    : 'refusing to write to any disk';
  const allowed = access.allowed?.length ? `only ${access.allowed.join(', ')}` : 'none';
  const how = devices.length
    ? `; to allow it, start the agent with ${devices.map((d) => `--allow-device ${d}`).join(' ')}`
    : '; name the devices it may write with --allow-device /dev/...';
  const why = access.inRamdisk
    ? `it is not in the agent's --allow-device list (${allowed})`
    : `the agent is not running in the Kiln ramdisk (no ${RAMDISK_MARKER}), so it writes only to devices given with --allow-device (${allowed})`;
  return `${what}: ${why}${how}`;
}

/** One log line for start-up: what destructive steps may touch. */
export function describeDeviceAccess(access: DeviceAccess): string {
  if (access.allowed === null) return 'Kiln ramdisk: destructive steps may write any disk they select';
  const where = access.inRamdisk ? 'Kiln ramdisk' : `not the Kiln ramdisk (no ${RAMDISK_MARKER})`;
  return `${where}: destructive steps write only to ${access.allowed.length ? access.allowed.join(', ') : 'no device (give --allow-device)'}`;
}
