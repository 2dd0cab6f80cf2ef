// Full-mode address allocation over the subnets. Offers are held in memory only (a server that
// restarts between OFFER and REQUEST just NAKs and the client starts over); committed leases go
// through the LeaseStore on every change. Offers not yet requested may hold at most
// maxOfferedFraction of a subnet's range: past it the oldest unrequested offer is withdrawn for
// the new one, so a DISCOVER flood (which never requests) churns that share and leaves the rest
// of the pool to clients that do request.
import type { Lease, LeaseStore } from './lease-store.ts';
import { intToIp, ipToInt, type Subnet } from './subnet.ts';

const OFFER_HOLD_MS = 30_000;
const DECLINE_HOLD_MS = 10 * 60_000;
/**
 * With no free address left, a new client may take an unrequested offer only once it is this old:
 * a client in the middle of its exchange requests within milliseconds and keeps its address.
 */
const OFFER_PROTECTED_MS = 1000;

interface Hold {
  mac: string;
  until: number;
  subnet: Subnet;
}

export interface PoolLimits {
  /**
   * Share (0 < f <= 1) of each range that unrequested offers may hold; past it a new client's
   * offer replaces the oldest one. Absent: no cap, and an exhausted pool makes no offer.
   */
  maxOfferedFraction?: number;
}

export class LeasePool {
  private readonly leases = new Map<number, Lease>();
  private readonly byMac = new Map<string, number>();
  private readonly offers = new Map<number, Hold>();
  private readonly offerOf = new Map<string, number>();
  private readonly declined = new Map<number, number>();
  private readonly cursor = new Map<Subnet, number>();
  /** Per subnet, the addresses on offer in its dynamic range, oldest first (a Map keeps insertion order). */
  private readonly offeredIn = new Map<Subnet, Map<number, true>>();

  constructor(
    readonly subnets: Subnet[],
    private readonly store: LeaseStore,
    private readonly now: () => number = Date.now,
    private readonly limits: PoolLimits = {},
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
    // Without a cap (tests, the pool alone) an exhausted pool just makes no offer.
    const fresh = this.limits.maxOfferedFraction !== undefined && !this.knows(mac);
    // A new client at the cap takes the place of the oldest unrequested offer.
    if (fresh && this.offeredCount(subnet) >= this.offerCap(subnet)) this.evictOldestOffer(subnet);
    let ip = this.choose(mac, subnet, requested);
    if (ip === null && fresh && this.evictOldestOffer(subnet, OFFER_PROTECTED_MS))
      ip = this.choose(mac, subnet, requested);
    if (ip === null) return null;
    const prev = this.offerOf.get(mac);
    if (prev !== undefined && prev !== ip) this.deleteOffer(prev);
    this.setOffer(ip, { mac, until: this.now() + OFFER_HOLD_MS, subnet });
    this.offerOf.set(mac, ip);
    if (this.offers.size > 4096) this.sweepOffers();
    return intToIp(ip);
  }

  /** Whether the pool knows the MAC: a lease (also an expired one), a live offer or a reservation. */
  knows(mac: string): boolean {
    const ip = this.byMac.get(mac);
    if (ip !== undefined && this.leases.get(ip)?.mac === mac) return true;
    const o = this.offerOf.get(mac);
    if (o !== undefined) {
      const h = this.offers.get(o);
      if (h && h.mac === mac && h.until > this.now()) return true;
    }
    return this.subnets.some((s) => s.reservations.has(mac));
  }

  /** Live unrequested offers in a subnet's dynamic range (expired ones are dropped on the way). */
  offeredCount(subnet: Subnet): number {
    const m = this.offeredIn.get(subnet);
    if (!m) return 0;
    const t = this.now();
    // Every offer is held for the same time, so the oldest expire first.
    for (const ip of m.keys()) {
      const h = this.offers.get(ip);
      if (h && h.until > t) break;
      this.deleteOffer(ip);
    }
    return m.size;
  }

  private offerCap(subnet: Subnet): number {
    const f = this.limits.maxOfferedFraction ?? 1;
    return Math.max(1, Math.floor((subnet.end - subnet.start + 1) * f));
  }

  /** Withdraws the subnet's oldest unrequested offer if it is at least `minAgeMs` old. */
  private evictOldestOffer(subnet: Subnet, minAgeMs = 0): boolean {
    const oldest = this.offeredIn.get(subnet)?.keys().next().value;
    if (oldest === undefined) return false;
    const hold = this.offers.get(oldest);
    if (hold && hold.until - OFFER_HOLD_MS > this.now() - minAgeMs) return false;
    this.deleteOffer(oldest);
    return true;
  }

  private setOffer(ip: number, hold: Hold): void {
    this.deleteOffer(ip);
    this.offers.set(ip, hold);
    // Reserved addresses are outside the cap: their MAC is known and never a flood.
    if (ip >= hold.subnet.start && ip <= hold.subnet.end && !hold.subnet.reservedIps.has(ip)) {
      const m = this.offeredIn.get(hold.subnet) ?? new Map<number, true>();
      this.offeredIn.set(hold.subnet, m);
      m.set(ip, true);
    }
  }

  private deleteOffer(ip: number): void {
    const h = this.offers.get(ip);
    if (!h) return;
    this.offers.delete(ip);
    this.offeredIn.get(h.subnet)?.delete(ip);
    if (this.offerOf.get(h.mac) === ip) this.offerOf.delete(h.mac);
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
    this.deleteOffer(ip);
    const pending = this.offerOf.get(mac);
    if (pending !== undefined) this.deleteOffer(pending);
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
    this.deleteOffer(ip);
    this.declined.set(ip, this.now() + DECLINE_HOLD_MS);
  }

  /** Forgets a pending offer when the client picked another server. */
  withdrawOffer(mac: string): void {
    const ip = this.offerOf.get(mac);
    if (ip !== undefined && this.offers.get(ip)?.mac === mac) this.deleteOffer(ip);
    this.offerOf.delete(mac);
  }

  private sweepOffers(): void {
    const t = this.now();
    for (const [ip, hold] of this.offers) if (hold.until <= t) this.deleteOffer(ip);
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
