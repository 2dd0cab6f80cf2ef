// Address pools for full mode: IPv4 arithmetic and the subnet configuration.
import { normaliseMac } from '../../../shared/mac.ts';

export interface ReservationConfig {
  mac: string;
  ip: string;
  hostname?: string;
}

export interface SubnetConfig {
  /** CIDR, e.g. 10.99.0.0/24. */
  cidr: string;
  /** First and last address handed out dynamically. */
  rangeStart: string;
  rangeEnd: string;
  router?: string;
  dns?: string[];
  domain?: string;
  /** Lease length in seconds. */
  leaseTime?: number;
  /** Fixed addresses for known MACs (may lie outside the dynamic range, must lie inside the CIDR). */
  reservations?: ReservationConfig[];
}

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new RangeError(`not an IPv4 address: ${ip}`);
  }
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export class Subnet {
  readonly network: number;
  readonly prefix: number;
  readonly mask: number;
  readonly start: number;
  readonly end: number;
  readonly leaseTime: number;
  readonly reservations = new Map<string, ReservationConfig>();
  readonly reservedIps = new Map<number, string>();

  constructor(readonly config: SubnetConfig) {
    const [net, len] = config.cidr.split('/');
    const prefix = Number(len);
    if (!net || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) {
      throw new RangeError(`subnet ${config.cidr}: expected a.b.c.d/N with N between 8 and 30`);
    }
    this.prefix = prefix;
    this.mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    this.network = (ipToInt(net) & this.mask) >>> 0;
    this.start = ipToInt(config.rangeStart);
    this.end = ipToInt(config.rangeEnd);
    if (!this.containsInt(this.start) || !this.containsInt(this.end) || this.start > this.end) {
      throw new RangeError(
        `subnet ${config.cidr}: range ${config.rangeStart}-${config.rangeEnd} is not inside it`,
      );
    }
    this.leaseTime = config.leaseTime ?? 3600;
    for (const r of config.reservations ?? []) {
      // Keyed by the form macOf gives a packet's chaddr, so "52-54-00-…" reservations match too.
      const mac = normaliseMac(r.mac);
      if (!mac) throw new RangeError(`reservation ${r.mac} → ${r.ip}: not a MAC address`);
      const ip = ipToInt(r.ip);
      if (!this.containsInt(ip))
        throw new RangeError(`reservation ${mac} → ${r.ip} is outside subnet ${config.cidr}`);
      this.reservations.set(mac, { ...r, mac });
      this.reservedIps.set(ip, mac);
    }
  }

  containsInt(ip: number): boolean {
    return (ip & this.mask) >>> 0 === this.network;
  }

  contains(ip: string): boolean {
    return this.containsInt(ipToInt(ip));
  }

  get netmask(): string {
    return intToIp(this.mask);
  }

  get broadcast(): string {
    return intToIp((this.network | ~this.mask) >>> 0);
  }
}
