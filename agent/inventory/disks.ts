// Block devices as IPA lists them: lsblk whole disks (plus md RAID and multipath volumes),
// without zero-size devices, floppies, ram disks and CD-ROMs; serial and WWN from udev where
// lsblk lacks them; by_path from the /dev/disk/by-path symlinks.
import type { InventoryDisk } from '../../shared/wire/ipa.ts';
import type { Collector, CollectorContext } from './types.ts';

export const LSBLK_COLUMNS = 'KNAME,MODEL,SIZE,ROTA,TYPE,SERIAL,WWN,VENDOR,HCTL,TRAN,RO';

interface LsblkDevice {
  kname?: string;
  name?: string;
  model?: string | null;
  size?: number | string | null;
  rota?: boolean | string | null;
  type?: string;
  serial?: string | null;
  wwn?: string | null;
  vendor?: string | null;
  hctl?: string | null;
  children?: LsblkDevice[];
}

const str = (v: unknown): string | null => {
  if (v === null || v === undefined) return null;
  const s = String(v).trim();
  return s === '' ? null : s;
};

const KEEP_TYPES = new Set(['disk', 'raid0', 'raid1', 'raid4', 'raid5', 'raid6', 'raid10', 'mpath']);

/** Parse `lsblk -J -b -o <LSBLK_COLUMNS>` into IPA disk records (udev fields left empty). */
export function parseLsblk(json: string): InventoryDisk[] {
  const doc = JSON.parse(json) as { blockdevices?: LsblkDevice[] };
  const out: InventoryDisk[] = [];
  const seen = new Set<string>();
  const visit = (d: LsblkDevice) => {
    const name = str(d.kname) ?? str(d.name);
    const size = Number(d.size ?? 0);
    if (
      name &&
      KEEP_TYPES.has(String(d.type)) &&
      size > 0 &&
      !/^(fd|ram|zram|loop)\d/.test(name) &&
      !seen.has(name)
    ) {
      seen.add(name);
      out.push({
        name: `/dev/${name}`,
        model: str(d.model),
        size,
        rotational: d.rota === true || d.rota === '1' || d.rota === 'true',
        wwn: str(d.wwn),
        serial: str(d.serial),
        vendor: str(d.vendor),
        wwn_with_extension: null,
        wwn_vendor_extension: null,
        hctl: str(d.hctl),
        by_path: null,
      });
    }
    for (const c of d.children ?? []) visit(c);
  };
  for (const d of doc.blockdevices ?? []) visit(d);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** `udevadm info --query=property` output → key/value map. */
export function parseUdevProperties(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

async function byPathLinks(ctx: CollectorContext): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  const dir = '/dev/disk/by-path';
  let names: string[] = [];
  try {
    names = await ctx.readdir(dir);
  } catch {
    return map;
  }
  for (const n of names.sort()) {
    try {
      const target = await ctx.readlink(`${dir}/${n}`);
      const dev = `/dev/${target.split('/').pop()}`;
      if (!map.has(dev)) map.set(dev, `${dir}/${n}`);
    } catch {
      // a link that vanished meanwhile
    }
  }
  return map;
}

export const disksCollector: Collector = {
  name: 'disks',
  async collect(ctx) {
    const r = await ctx.run('lsblk', ['-J', '-b', '-o', LSBLK_COLUMNS], { timeoutMs: 30_000 });
    const disks = parseLsblk(r.stdout);
    const links = await byPathLinks(ctx);
    let udevOk = true;
    for (const d of disks) {
      d.by_path = links.get(d.name) ?? null;
      if (!udevOk) continue;
      try {
        const u = parseUdevProperties(
          (await ctx.run('udevadm', ['info', '--query=property', `--name=${d.name}`])).stdout,
        );
        d.serial = str(u.ID_SERIAL_SHORT) ?? d.serial ?? str(u.ID_SERIAL);
        d.wwn = str(u.ID_WWN) ?? d.wwn;
        d.wwn_with_extension = str(u.ID_WWN_WITH_EXTENSION) ?? d.wwn;
        d.wwn_vendor_extension = str(u.ID_WWN_VENDOR_EXTENSION);
      } catch (e) {
        udevOk = false;
        ctx.fail(`udev properties unavailable (serial/WWN from lsblk only): ${(e as Error).message}`);
      }
    }
    return { disks };
  },
};
