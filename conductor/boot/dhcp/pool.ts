// Full-mode address allocation over the subnets. Offers are held in memory only (a server that
// restarts between OFFER and REQUEST just NAKs and the client starts over); committed leases go
// through the LeaseStore on every change.
import type { Lease, LeaseStore } from './lease-store.ts';
import { intToIp, ipToInt, type Subnet } from './subnet.ts';

const OFFER_HOLD_MS = 30_000;
const DECLINE_HOLD_MS = 10 * 60_000;

interface Hold {
  mac: string;
  until: number;
}

export class LeasePool {
  private readonly leases = new Map<number, Lease>();
  private readonly byMac = new Map<string, number>();
  private readonly offers = new Map<number, Hold>();
  private readonly offerOf = new Map<string, number>();
  private readonly declined = new Map<number, number>();
  private readonly cursor = new Map<Subnet, number>();

  constructor(
    readonly subnets: Subnet[],
    private readonly store: LeaseStore,
    private readonly now: () => number = Date.now,
  ) {
    for (const l of store.load()) {
      const ip = ipToInt(l.ip);
      this.leases.set(ip, l);
      this.byMac.set(l.mac, ip);
    }
  }

  subnetFor(ip: string): Subnet | undefined {
    const n = ipToInt(ip);
    return this.subnets.find((s) => s.containsInt(n));
  }

  /** The live lease of a MAC in a subnet, if any. */
  leaseOf(mac: string, subnet: Subnet): Lease | undefined {
    const ip = this.byMac.get(mac);
    if (ip === undefined || !subnet.containsInt(ip)) return undefined;
    const l = this.leases.get(ip);
    return l && l.mac === mac ? l : undefined;
  }

  /** Whether `mac` may hold `ip` right now (reservation, own lease or free address). */
  availableFor(ip: number, mac: string, subnet: Subnet): boolean {
    if (!subnet.containsInt(ip)) return false;
    const reservedFor = subnet.reservedIps.get(ip);
    if (reservedFor !== undefined) return reservedFor === mac;
    if (ip < subnet.start || ip > subnet.end) return false;
    const t = this.now();
    const d = this.declined.get(ip);
    if (d !== undefined && d > t) return false;
    const l = this.leases.get(ip);
    if (l && l.mac !== mac && l.expiresAt > t) return false;
    const o = this.offers.get(ip);
    if (o && o.mac !== mac && o.until > t) return false;
    return true;
  }

  /** Picks an address to offer: reservation, current lease, requested, then the next free one. */
  offer(mac: string, subnet: Subnet, requested?: string): string | null {
    const ip = this.choose(mac, subnet, requested);
    if (ip === null) return null;
    const prev = this.offerOf.get(mac);
    if (prev !== undefined && prev !== ip) this.offers.delete(prev);
    this.offers.set(ip, { mac, until: this.now() + OFFER_HOLD_MS });
    this.offerOf.set(mac, ip);
    if (this.offers.size > 4096) this.sweepOffers();
    return intToIp(ip);
  }

  private choose(mac: string, subnet: Subnet, requested?: string): number | null {
    const res = subnet.reservations.get(mac);
    if (res) return ipToInt(res.ip);
    const own = this.leaseOf(mac, subnet);
    if (own) return ipToInt(own.ip);
    const offered = this.offerOf.get(mac);
    if (offered !== undefined && subnet.containsInt(offered) && this.availableFor(offered, mac, subnet))
      return offered;
    if (requested) {
      const r = safeIp(requested);
      if (r !== null && this.availableFor(r, mac, subnet)) return r;
    }
    const size = subnet.end - subnet.start + 1;
    let c = this.cursor.get(subnet) ?? subnet.start;
    for (let i = 0; i < size; i++) {
      const ip = c;
      c = c >= subnet.end ? subnet.start : c + 1;
      if (this.availableFor(ip, mac, subnet)) {
        this.cursor.set(subnet, c);
        return ip;
      }
    }
    return null;
  }

  /** Makes the lease binding. Returns false when the address is taken by someone else. */
  commit(mac: string, ipStr: string, subnet: Subnet, hostname?: string): Lease | null {
    const ip = ipToInt(ipStr);
    if (!this.availableFor(ip, mac, subnet)) return null;
    const prev = this.byMac.get(mac);
    if (prev !== undefined && prev !== ip) {
      const old = this.leases.get(prev);
      if (old && old.mac === mac) this.drop(prev);
    }
    const lease: Lease = { ip: ipStr, mac, expiresAt: this.now() + subnet.leaseTime * 1000 };
    if (hostname) lease.hostname = hostname;
    this.leases.set(ip, lease);
    this.byMac.set(mac, ip);
    this.offers.delete(ip);
    this.offerOf.delete(mac);
    this.store.upsert(lease);
    return lease;
  }

  release(mac: string, ipStr: string): boolean {
    const ip = safeIp(ipStr);
    if (ip === null) return false;
    const l = this.leases.get(ip);
    if (!l || l.mac !== mac) return false;
    this.drop(ip);
    return true;
  }

  decline(mac: string, ipStr: string): void {
    const ip = safeIp(ipStr);
    if (ip === null) return;
    const l = this.leases.get(ip);
    if (l && l.mac === mac) this.drop(ip);
    this.offers.delete(ip);
    this.declined.set(ip, this.now() + DECLINE_HOLD_MS);
  }

  /** Forgets a pending offer when the client picked another server. */
  withdrawOffer(mac: string): void {
    const ip = this.offerOf.get(mac);
    if (ip !== undefined && this.offers.get(ip)?.mac === mac) this.offers.delete(ip);
    this.offerOf.delete(mac);
  }

  private sweepOffers(): void {
    const t = this.now();
    for (const [ip, hold] of this.offers) {
      if (hold.until <= t) {
        this.offers.delete(ip);
        if (this.offerOf.get(hold.mac) === ip) this.offerOf.delete(hold.mac);
      }
    }
  }

  get size(): number {
    return this.leases.size;
  }

  private drop(ip: number): void {
    const l = this.leases.get(ip);
    this.leases.delete(ip);
    if (l && this.byMac.get(l.mac) === ip) this.byMac.delete(l.mac);
    this.store.remove(intToIp(ip));
  }
}

function safeIp(s: string): number | null {
  try {
    return ipToInt(s);
  } catch {
    return null;
  }
}
