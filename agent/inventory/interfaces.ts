// Network interfaces from sysfs, as IPA lists them: devices with a backing `device` (physical
// NICs, not bridges/veths/tunnels), their MAC, first IPv4/IPv6 address, carrier, speed, PCI
// vendor/product and driver. LLDP (ipa-collect-lldp) is captured with tcpdump: Node has no raw
// sockets, and IPA's inventory wants the raw TLVs anyway.
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import os from 'node:os';
import { nicMac } from '../../shared/mac.ts';
import type { InventoryInterface } from '../../shared/wire/ipa.ts';
import type { Collector, CollectorContext } from './types.ts';

const NET = '/sys/class/net';

type Fs = Pick<CollectorContext, 'readFile' | 'readdir' | 'readlink' | 'exists'>;

export const nodeFs: Fs = {
  readFile: (p) => readFile(p, 'utf8'),
  readdir: (p) => readdir(p),
  readlink: (p) => readlink(p),
  exists: async (p) => {
    try {
      await stat(p);
      return true;
    } catch {
      return false;
    }
  },
};

async function read(fs: Fs, path: string): Promise<string | null> {
  try {
    return (await fs.readFile(path)).trim();
  } catch {
    return null;
  }
}

/** Names of physical NICs with a real MAC, sorted. */
export async function physicalNics(fs: Fs = nodeFs): Promise<{ name: string; mac: string }[]> {
  const out: { name: string; mac: string }[] = [];
  for (const name of (await fs.readdir(NET)).sort()) {
    if (name === 'lo' || !(await fs.exists(`${NET}/${name}/device`))) continue;
    const mac = nicMac(await read(fs, `${NET}/${name}/address`));
    if (!mac) continue;
    out.push({ name, mac });
  }
  return out;
}

/** Parse `tcpdump -xx` output of one frame into LLDP TLVs [[type, hex], ...]. */
export function parseLldpFrame(tcpdumpText: string): [number, string][] {
  const hex = tcpdumpText
    .split('\n')
    .map((l) => /^\s*0x[0-9a-f]+:\s+(.*)$/i.exec(l)?.[1] ?? '')
    .join('')
    .replace(/[^0-9a-f]/gi, '');
  const bytes = Buffer.from(hex, 'hex');
  // Ethernet header: dst(6) src(6) ethertype(2) = 0x88cc
  if (bytes.length < 16 || bytes.readUInt16BE(12) !== 0x88cc) return [];
  const tlvs: [number, string][] = [];
  let i = 14;
  while (i + 2 <= bytes.length) {
    const head = bytes.readUInt16BE(i);
    const type = head >> 9;
    const len = head & 0x1ff;
    if (type === 0) break;
    tlvs.push([type, bytes.subarray(i + 2, i + 2 + len).toString('hex')]);
    i += 2 + len;
  }
  return tlvs;
}

async function lldp(ctx: CollectorContext, name: string): Promise<[number, string][] | null> {
  try {
    const r = await ctx.run(
      'tcpdump',
      ['-i', name, '-c', '1', '-xx', '-nn', '-e', 'ether', 'proto', '0x88cc'],
      {
        timeoutMs: ctx.settings.lldpTimeoutS * 1000,
      },
    );
    return parseLldpFrame(r.stdout);
  } catch (e) {
    ctx.fail(`no LLDP frame on ${name}: ${(e as Error).message}`);
    return null;
  }
}

export const interfacesCollector: Collector = {
  name: 'interfaces',
  async collect(ctx) {
    const addrs = os.networkInterfaces();
    const nics = await physicalNics(ctx);
    const interfaces = await Promise.all(
      nics.map(async ({ name, mac }): Promise<InventoryInterface> => {
        const a = addrs[name] ?? [];
        const v4 = a.find((x) => x.family === 'IPv4');
        const v6 = a.find((x) => x.family === 'IPv6');
        const speed = Number(await read(ctx, `${NET}/${name}/speed`));
        let driver: string | null = null;
        try {
          driver = (await ctx.readlink(`${NET}/${name}/device/driver`)).split('/').pop() ?? null;
        } catch {
          driver = null;
        }
        return {
          name,
          mac_address: mac,
          ipv4_address: v4?.address ?? null,
          ipv6_address: v6 ? (v6.address.startsWith('fe80') ? `${v6.address}%${name}` : v6.address) : null,
          has_carrier: (await read(ctx, `${NET}/${name}/carrier`)) === '1',
          lldp: ctx.settings.collectLldp ? await lldp(ctx, name) : null,
          vendor: await read(ctx, `${NET}/${name}/device/vendor`),
          product: await read(ctx, `${NET}/${name}/device/device`),
          client_id: null,
          biosdevname: null,
          speed_mbps: Number.isFinite(speed) && speed > 0 ? speed : null,
          driver,
        };
      }),
    );
    if (interfaces.length === 0) ctx.fail('no physical network interface found under /sys/class/net');
    return { interfaces };
  },
};
