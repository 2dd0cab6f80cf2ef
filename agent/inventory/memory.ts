// Memory: total as the kernel sees it (bytes, like psutil), physical_mb from the DIMMs
// (systeminformation's SMBIOS reading, like IPA's lshw), else from the sysfs memory blocks.
import type { Collector, CollectorContext } from './types.ts';

export function parseMeminfoTotal(text: string): number | null {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

async function dimmMb(): Promise<number | null> {
  const mod = await import('systeminformation/lib/memory.js');
  const memLayout =
    typeof (mod as Partial<typeof mod>).memLayout === 'function'
      ? mod.memLayout
      : (mod as unknown as { default: typeof mod }).default.memLayout;
  const layout = await memLayout();
  const bytes = layout.reduce((a, d) => a + (Number(d.size) || 0), 0);
  return bytes > 0 ? Math.round(bytes / 1024 / 1024) : null;
}

async function sysfsBlocksMb(ctx: CollectorContext): Promise<number | null> {
  const base = '/sys/devices/system/memory';
  const blockSize = Number.parseInt((await ctx.readFile(`${base}/block_size_bytes`)).trim(), 16);
  let online = 0;
  for (const d of await ctx.readdir(base)) {
    if (!d.startsWith('memory')) continue;
    try {
      if ((await ctx.readFile(`${base}/${d}/online`)).trim() === '1') online++;
    } catch {
      // blocks without an "online" file can't be offlined: count them
      online++;
    }
  }
  return online > 0 ? Math.round((online * blockSize) / 1024 / 1024) : null;
}

export const memoryCollector: Collector = {
  name: 'memory',
  async collect(ctx) {
    const total = parseMeminfoTotal(await ctx.readFile('/proc/meminfo'));
    if (total === null) throw new Error('MemTotal missing from /proc/meminfo');
    let physical: number | null = null;
    try {
      physical = await dimmMb();
    } catch (e) {
      ctx.log.debug({ err: String(e) }, 'no DIMM table');
    }
    if (physical === null) {
      try {
        physical = await sysfsBlocksMb(ctx);
      } catch (e) {
        ctx.fail(
          `physical memory size unknown (no SMBIOS DIMM table, no sysfs memory blocks): ${(e as Error).message}`,
        );
      }
    }
    return { memory: { total, physical_mb: physical } };
  },
};
