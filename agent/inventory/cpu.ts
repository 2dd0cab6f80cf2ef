// CPU: lscpu for model, frequency, sockets and architecture (as IPA), flags from /proc/cpuinfo.
import os from 'node:os';
import type { InventoryCpu } from '../../shared/wire/ipa.ts';
import type { Collector } from './types.ts';

export function parseLscpu(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** Flags of the first processor: "flags" on x86, "Features" on ARM. */
export function parseCpuinfoFlags(text: string): string[] {
  const m = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(text);
  return m ? m[1]!.trim().split(/\s+/).filter(Boolean) : [];
}

export function cpuFromLscpu(fields: Record<string, string>, flags: string[]): InventoryCpu {
  const freq = fields['CPU max MHz'] ?? fields['CPU MHz'] ?? null;
  const sockets = fields['Socket(s)'] ? Number(fields['Socket(s)']) : null;
  return {
    model_name: fields['Model name'] ?? null,
    frequency: freq,
    count: Number(fields['CPU(s)'] ?? 0),
    architecture: fields.Architecture ?? os.machine(),
    flags: flags.length ? flags : (fields.Flags ?? '').split(/\s+/).filter(Boolean),
    socket_count: Number.isFinite(sockets) ? sockets : null,
  };
}

export const cpuCollector: Collector = {
  name: 'cpu',
  async collect(ctx) {
    let flags: string[] = [];
    try {
      flags = parseCpuinfoFlags(await ctx.readFile('/proc/cpuinfo'));
    } catch (e) {
      ctx.fail(`cannot read /proc/cpuinfo: ${(e as Error).message}`);
    }
    try {
      const r = await ctx.run('lscpu', [], { env: { LC_ALL: 'C' } });
      return { cpu: cpuFromLscpu(parseLscpu(r.stdout), flags) };
    } catch (e) {
      ctx.fail(`lscpu failed, CPU facts from the kernel only: ${(e as Error).message}`);
      const cpus = os.cpus();
      return {
        cpu: {
          model_name: cpus[0]?.model ?? null,
          frequency: cpus[0] ? String(cpus[0].speed) : null,
          count: cpus.length,
          architecture: os.machine(),
          flags,
          socket_count: null,
        },
      };
    }
  },
};
