// BMC address and MAC through the in-band IPMI interface, as IPA does: `ipmitool lan print <ch>`
// for channels 1–11, first channel with a non-zero address wins. No /dev/ipmi* (a VM, or no
// IPMI driver) means no BMC facts, which is normal and not a failure.
import type { Collector } from './types.ts';

const DEVICES = ['/dev/ipmi0', '/dev/ipmi/0', '/dev/ipmidev/0'];

/** `ipmitool lan print` → { 'IP Address': ..., 'MAC Address': ... } (first value per key). */
export function parseLanPrint(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const key = line.slice(0, i).trim();
    if (key && !(key in out)) out[key] = line.slice(i + 1).trim();
  }
  return out;
}

export const bmcCollector: Collector = {
  name: 'bmc',
  async collect(ctx) {
    let present = false;
    for (const d of DEVICES) if (await ctx.exists(d)) present = true;
    if (!present) return { bmc_address: null, bmc_v6address: null, bmc_mac: null };
    let address: string | null = null;
    let mac: string | null = null;
    for (let ch = 1; ch <= 11; ch++) {
      let text: string;
      try {
        text = (await ctx.run('ipmitool', ['lan', 'print', String(ch)], { timeoutMs: 20_000 })).stdout;
      } catch (e) {
        const msg = (e as Error).message;
        if (/invalid channel/i.test(msg)) continue;
        ctx.fail(`ipmitool lan print ${ch} failed: ${msg}`);
        break;
      }
      const f = parseLanPrint(text);
      const ip = f['IP Address'];
      if (ip && /^\d+\.\d+\.\d+\.\d+$/.test(ip)) {
        address ??= ip;
        if (ip !== '0.0.0.0') {
          address = ip;
          mac = f['MAC Address']?.toLowerCase() ?? null;
          break;
        }
      }
      if (!mac && f['MAC Address'] && f['MAC Address'] !== '00:00:00:00:00:00')
        mac = f['MAC Address'].toLowerCase();
    }
    return { bmc_address: address ?? '0.0.0.0', bmc_v6address: '::/0', bmc_mac: mac };
  },
};
