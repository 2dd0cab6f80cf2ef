// Flood protection for the DHCP server, decided per packet before any handler runs. Anyone on
// the provisioning segment can send DHCP, with any chaddr, so:
// - every MAC has its own token bucket, whatever it sends (one chatty or looping client can't
//   take the server's time from the others);
// - clients the server does not know yet (no lease, no offer, no reservation) share one global
//   bucket: a DISCOVER flood from random MACs gets that many answers a second, no more;
// - a client refused by the global bucket that asks again soon is let through by a second bucket
//   of the same size. Real clients retransmit (udhcpc after 1-3 s, PXE ROMs after 4 s) with the
//   same MAC; a random-MAC flood never sends the same MAC twice, so it can't spend that bucket.
// The pool's own cap (max_offered_fraction, see pool.ts) keeps whatever gets through from
// holding more than that share of the addresses in offers nobody requests.
import { type Clock, KeyedBuckets, TokenBucket } from '../../limits/token-bucket.ts';

export interface DhcpRateLimit {
  /** Packets per second answered for one client MAC, and the burst above it. */
  perMacPerS: number;
  burst: number;
  /** Packets per second answered, across the server, for clients without a lease or an offer. */
  newClientsPerS: number;
  /** Share (0 < f <= 1) of each pool's range that offers not yet requested may hold. */
  maxOfferedFraction: number;
}

/** The defaults of boot.dhcp.rate_limit. */
export const DEFAULT_DHCP_RATE_LIMIT: DhcpRateLimit = {
  perMacPerS: 2,
  burst: 10,
  newClientsPerS: 50,
  maxOfferedFraction: 0.5,
};

/** MACs remembered per table (per-MAC buckets, refused and recently admitted new clients). */
const MAX_MACS = 65_536;
/** How long a refused new client's second try counts as a retransmission, and an admitted one as known. */
const REMEMBER_MS = 60_000;

/** A capped map of MAC → time, least recently set dropped first. */
class RecentMacs {
  private readonly at = new Map<string, number>();
  constructor(private readonly now: Clock) {}
  add(mac: string): void {
    this.at.delete(mac);
    if (this.at.size >= MAX_MACS) {
      const oldest = this.at.keys().next().value;
      if (oldest !== undefined) this.at.delete(oldest);
    }
    this.at.set(mac, this.now());
  }
  has(mac: string): boolean {
    const t = this.at.get(mac);
    return t !== undefined && this.now() - t < REMEMBER_MS;
  }
  delete(mac: string): void {
    this.at.delete(mac);
  }
}

export type FloodVerdict = 'ok' | 'mac-limited' | 'new-client-limited';

export class DhcpFloodGuard {
  private readonly perMac: KeyedBuckets;
  private readonly newClients: TokenBucket;
  private readonly retries: TokenBucket;
  private readonly refused: RecentMacs;
  private readonly admitted: RecentMacs;

  constructor(limits: DhcpRateLimit, now: Clock = Date.now) {
    this.perMac = new KeyedBuckets({ perSecond: limits.perMacPerS, burst: limits.burst }, MAX_MACS, now);
    const global = { perSecond: limits.newClientsPerS, burst: Math.max(1, Math.ceil(limits.newClientsPerS)) };
    this.newClients = new TokenBucket(global, now);
    this.retries = new TokenBucket(global, now);
    this.refused = new RecentMacs(now);
    this.admitted = new RecentMacs(now);
  }

  /** Whether to handle a packet from `mac`; `known`: it has a lease, an offer or a reservation. */
  admit(mac: string, known: boolean): FloodVerdict {
    if (!this.perMac.take(mac)) return 'mac-limited';
    if (known || this.admitted.has(mac)) return 'ok';
    if (this.newClients.take() || (this.refused.has(mac) && this.retries.take())) {
      this.refused.delete(mac);
      // Its next packets (the REQUEST after the OFFER, the PXE ROM's 4011 request in proxy mode)
      // are part of the same exchange.
      this.admitted.add(mac);
      return 'ok';
    }
    this.refused.add(mac);
    return 'new-client-limited';
  }
}

/** The rate limits with defaults for what is not given; a bad value fails here, at start-up. */
export function dhcpRateLimit(given: Partial<DhcpRateLimit> | undefined): DhcpRateLimit {
  const r = { ...DEFAULT_DHCP_RATE_LIMIT, ...given };
  if (!(r.maxOfferedFraction > 0 && r.maxOfferedFraction <= 1))
    throw new RangeError(
      `boot.dhcp.rate_limit.max_offered_fraction must be in (0, 1], got ${r.maxOfferedFraction}`,
    );
  return r;
}
