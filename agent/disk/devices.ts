// Block devices: listing (lsblk -J -b), Ironic root-device hints, the default install disk, and
// the safety checks that keep the agent off disks it must not write: read-only devices,
// virtual media, anything mounted, software-RAID members. Selection never widens beyond the
// optional allow-list (`allowOnly`), which is how tests confine the engine to loop devices.
import { readdir, readFile, realpath } from 'node:fs/promises';
import { basename } from 'node:path';
import { run as defaultRun, type Runner } from '../../shared/exec.ts';
import { rootDiskCandidates } from '../../shared/root-disk.ts';

export interface BlockDevice {
  name: string;
  path: string;
  type: string;
  size: number;
  model: string | null;
  vendor: string | null;
  serial: string | null;
  wwn: string | null;
  rotational: boolean;
  readOnly: boolean;
  removable: boolean;
  hctl: string | null;
  fstype: string | null;
  label: string | null;
  uuid: string | null;
  pttype: string | null;
  ptuuid: string | null;
  parttype: string | null;
  partuuid: string | null;
  mountpoint: string | null;
  byPath: string[];
  children: BlockDevice[];
}

export class DiskSelectionError extends Error {
  readonly code = 'DISK_SELECTION_FAILED';
  constructor(message: string) {
    super(message);
    this.name = 'DiskSelectionError';
  }
}

const COLUMNS =
  'NAME,PATH,TYPE,SIZE,MODEL,VENDOR,SERIAL,WWN,ROTA,RO,RM,HCTL,FSTYPE,LABEL,UUID,PTTYPE,PTUUID,PARTTYPE,PARTUUID,MOUNTPOINT';

type Raw = Record<string, unknown> & { children?: Raw[] };

const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v.trim() : null);
const bool = (v: unknown): boolean => v === true || v === '1' || v === 1 || v === 'true';

export function parseLsblk(json: string): BlockDevice[] {
  const doc = JSON.parse(json) as { blockdevices?: Raw[] };
  const conv = (r: Raw): BlockDevice => ({
    name: String(r.name),
    path: str(r.path) ?? `/dev/${String(r.name)}`,
    type: String(r.type),
    size: Number(r.size ?? 0),
    model: str(r.model),
    vendor: str(r.vendor),
    serial: str(r.serial),
    wwn: str(r.wwn),
    rotational: bool(r.rota),
    readOnly: bool(r.ro),
    removable: bool(r.rm),
    hctl: str(r.hctl),
    fstype: str(r.fstype),
    label: str(r.label),
    uuid: str(r.uuid),
    pttype: str(r.pttype),
    ptuuid: str(r.ptuuid),
    parttype: str(r.parttype),
    partuuid: str(r.partuuid),
    mountpoint: str(r.mountpoint),
    byPath: [],
    children: (r.children ?? []).map(conv),
  });
  return (doc.blockdevices ?? []).map(conv);
}

/** All block devices with their partitions; by-path links filled in where udev made them. */
export async function listBlockDevices(
  run: Runner = defaultRun,
  devices: string[] = [],
): Promise<BlockDevice[]> {
  const { stdout } = await run('lsblk', ['-J', '-b', '-o', COLUMNS, ...devices]);
  const devs = parseLsblk(stdout);
  const links = await byPathLinks();
  const fill = (d: BlockDevice) => {
    d.byPath = links.get(d.path) ?? [];
    d.children.forEach(fill);
  };
  devs.forEach(fill);
  return devs;
}

async function byPathLinks(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const dir = '/dev/disk/by-path';
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const target = await realpath(`${dir}/${n}`).catch(() => null);
    if (target) out.set(target, [...(out.get(target) ?? []), `${dir}/${n}`]);
  }
  return out;
}

// ---- root-device hints (Ironic's syntax: "size": ">= 100", "model": "<in> SSD", ...) ----

export type Hints = Record<string, unknown>;

const NUM_OPS = ['<=', '>=', '!=', '==', '=', '<', '>'] as const;

function matchNumber(spec: unknown, actual: number): boolean {
  if (typeof spec === 'number') return actual === spec;
  const s = String(spec).trim();
  const or = s.split(/\s*<or>\s*/).filter(Boolean);
  if (or.length > 1) return or.some((x) => matchNumber(x, actual));
  for (const op of NUM_OPS) {
    if (s.startsWith(op)) {
      const v = Number(s.slice(op.length).trim());
      if (Number.isNaN(v)) throw new DiskSelectionError(`root-device hint "${s}" is not a number comparison`);
      return op === '<='
        ? actual <= v
        : op === '>='
          ? actual >= v
          : op === '!='
            ? actual !== v
            : op === '<'
              ? actual < v
              : op === '>'
                ? actual > v
                : actual === v;
    }
  }
  const v = Number(s);
  if (Number.isNaN(v)) throw new DiskSelectionError(`root-device hint "${s}" is not a number`);
  return actual === v;
}

function norm(v: string): string {
  return v.trim().replace(/\s+/g, ' ').toLowerCase();
}

function matchString(spec: unknown, actual: string | null): boolean {
  const s = String(spec).trim();
  if (actual === null) return false;
  const a = norm(actual);
  if (s.startsWith('<or>') || s.includes(' <or> '))
    return s
      .split(/\s*<or>\s*/)
      .filter(Boolean)
      .some((x) => matchString(x, actual));
  if (s.startsWith('s==')) return a === norm(s.slice(3));
  if (s.startsWith('s!=')) return a !== norm(s.slice(3));
  if (s.startsWith('<in>')) return a.includes(norm(s.slice(4)));
  return a === norm(s);
}

export const devName = (v: string) => (v.startsWith('/dev/') ? v : `/dev/${v}`);

/** True when `dev` satisfies every hint. Unknown hint names fail loudly rather than match all. */
export function matchesHints(dev: BlockDevice, hints: Hints): boolean {
  for (const [key, spec] of Object.entries(hints)) {
    if (spec === null || spec === undefined) continue;
    switch (key) {
      case 'size':
        if (!matchNumber(spec, Math.floor(dev.size / 1024 ** 3))) return false;
        break;
      case 'rotational': {
        const want =
          typeof spec === 'boolean' ? spec : ['true', '1', 'yes', 'on'].includes(String(spec).toLowerCase());
        if (dev.rotational !== want) return false;
        break;
      }
      case 'name':
        if (!matchString(devName(String(spec)), dev.path)) return false;
        break;
      case 'by_path':
        if (!dev.byPath.includes(String(spec))) return false;
        break;
      case 'model':
      case 'vendor':
      case 'serial':
      case 'hctl':
        if (!matchString(spec, dev[key])) return false;
        break;
      case 'wwn':
      case 'wwn_with_extension':
        if (!matchString(spec, dev.wwn)) return false;
        break;
      default:
        throw new DiskSelectionError(
          `root-device hint "${key}" is not supported (size, model, vendor, serial, wwn, rotational, name, by_path, hctl)`,
        );
    }
  }
  return true;
}

// ---- safety ----

function flatten(d: BlockDevice): BlockDevice[] {
  return [d, ...d.children.flatMap(flatten)];
}

/** Why the agent must not write to this disk, or null when it may. */
export async function unsafeReason(dev: BlockDevice): Promise<string | null> {
  const all = flatten(dev);
  const ro = await readFile(`/sys/block/${basename(dev.path)}/ro`, 'utf8').catch(() => null);
  if (dev.readOnly || ro?.trim() === '1') return 'read-only';
  if (
    all.some((d) => d.label === 'ir-vfd-dev') ||
    /virtual media/i.test(`${dev.vendor ?? ''} ${dev.model ?? ''}`)
  ) {
    return 'virtual media';
  }
  const mounted = all.find((d) => d.mountpoint);
  if (mounted) return `mounted (${mounted.path} on ${mounted.mountpoint})`;
  if (all.some((d) => d.fstype === 'linux_raid_member' || d.type.startsWith('raid')))
    return 'software RAID member';
  return null;
}

export interface SelectionPolicy {
  /** Only these devices may ever be chosen (tests: the loop devices they made). */
  allowOnly?: readonly string[];
  /** node.properties.skip_block_devices: hint dicts naming disks to leave alone. */
  skip?: readonly Hints[];
}

function candidates(devs: BlockDevice[], policy: SelectionPolicy): BlockDevice[] {
  const allow = policy.allowOnly ? new Set(policy.allowOnly.map(devName)) : null;
  return devs
    .filter((d) => {
      if (allow) return allow.has(d.path);
      return d.type === 'disk';
    })
    .filter((d) => !(policy.skip ?? []).some((h) => matchesHints(d, h)));
}

/** The disk the hints (or the smallest ≥ 4 GiB rule) pick, before the safety checks. */
export function pickRootDevice(
  devs: BlockDevice[],
  hints: Hints | null,
  policy: SelectionPolicy = {},
): BlockDevice {
  const pool = candidates(devs, policy);
  const withHints = hints && Object.keys(hints).length > 0;
  const matching = withHints ? pool.filter((d) => matchesHints(d, hints)) : rootDiskCandidates(pool);
  if (matching.length === 0) {
    throw new DiskSelectionError(
      withHints
        ? `no disk matches the root-device hints ${JSON.stringify(hints)}; disks seen: ${pool.map((d) => `${d.path} (${d.size} bytes, model ${d.model ?? '-'}, serial ${d.serial ?? '-'})`).join(', ') || 'none'}`
        : `no disk of at least 4 GiB found (seen: ${pool.map((d) => d.path).join(', ') || 'none'}); set root-device hints`,
    );
  }
  return matching[0]!;
}

/** Ironic's get_os_install_device: hints if given, else the smallest disk of at least 4 GiB. */
export async function selectRootDevice(
  devs: BlockDevice[],
  hints: Hints | null,
  policy: SelectionPolicy = {},
): Promise<BlockDevice> {
  const chosen = pickRootDevice(devs, hints, policy);
  const why = await unsafeReason(chosen);
  if (why)
    throw new DiskSelectionError(
      `${chosen.path} was selected as the root disk but is ${why}; refusing to write to it`,
    );
  return chosen;
}

export interface EraseSelection {
  targets: BlockDevice[];
  skipped: Array<{ path: string; reason: string }>;
}

/** Disks a clean step may erase: every candidate (or only `names`), minus unsafe ones. */
export async function selectEraseTargets(
  devs: BlockDevice[],
  names: readonly string[] | null,
  policy: SelectionPolicy = {},
): Promise<EraseSelection> {
  let pool = candidates(devs, policy);
  if (names && names.length > 0) {
    const want = new Set(names.map(devName));
    const missing = [...want].filter((n) => !pool.some((d) => d.path === n));
    if (missing.length > 0)
      throw new DiskSelectionError(
        `disks ${missing.join(', ')} were asked for but are not eligible on this node`,
      );
    pool = pool.filter((d) => want.has(d.path));
  }
  const out: EraseSelection = { targets: [], skipped: [] };
  for (const d of pool) {
    const why = await unsafeReason(d);
    if (why) out.skipped.push({ path: d.path, reason: why });
    else out.targets.push(d);
  }
  return out;
}
