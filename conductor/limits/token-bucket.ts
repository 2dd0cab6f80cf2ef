// Token buckets: `perSecond` tokens flow in up to `burst`; a request takes one or is refused.
// KeyedBuckets keeps one per key (source address, MAC) with a hard cap on how many it holds:
// the least recently used key goes first, so a flood of new keys (random MACs, spoofed sources)
// costs a bounded amount of memory. An evicted key comes back with a full bucket, which is what
// a key that has been quiet long enough to be evicted would have anyway under real traffic.

export type Clock = () => number;

export interface BucketRate {
  /** Tokens added per second. */
  perSecond: number;
  /** Most tokens held: how many requests may come at once after a quiet spell. */
  burst: number;
}

export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: BucketRate,
    private readonly now: Clock = Date.now,
  ) {
    if (!(rate.perSecond > 0) || !(rate.burst >= 1))
      throw new RangeError(`token bucket needs perSecond > 0 and burst >= 1, got ${JSON.stringify(rate)}`);
    this.tokens = rate.burst;
    this.at = now();
  }

  private refill(): void {
    const t = this.now();
    if (t > this.at) {
      this.tokens = Math.min(this.rate.burst, this.tokens + ((t - this.at) / 1000) * this.rate.perSecond);
    }
    this.at = t;
  }

  /** Takes one token; false (nothing taken) when the bucket is empty. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whole seconds until one token is there (0 when one is there now): the Retry-After. */
  retryAfterS(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - this.tokens) / this.rate.perSecond));
  }

  /** Whether the bucket is full, i.e. the key has been quiet: such a bucket can be forgotten. */
  full(): boolean {
    this.refill();
    return this.tokens >= this.rate.burst;
  }
}

export class KeyedBuckets {
  // A Map iterates in insertion order; re-inserting on use keeps the least recently used first.
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly rate: BucketRate,
    /** Most keys held; past it the least recently used is dropped. */
    readonly maxKeys = 65_536,
    private readonly now: Clock = Date.now,
  ) {
    if (!(maxKeys >= 1)) throw new RangeError(`KeyedBuckets needs maxKeys >= 1, got ${maxKeys}`);
    new TokenBucket(rate, now); // validates the rate once, here, not at the first request
  }

  private bucket(key: string): TokenBucket {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key);
    } else {
      b = new TokenBucket(this.rate, this.now);
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    }
    this.buckets.set(key, b);
    return b;
  }

  /** Takes one token from the key's bucket; false when it is empty. */
  take(key: string): boolean {
    return this.bucket(key).take();
  }

  /** Takes one token from each key's bucket, or none at all if any of them is empty. */
  takeAll(keys: readonly string[]): { ok: true } | { ok: false; key: string; retryAfterS: number } {
    const bs = [...new Set(keys)].map((k) => [k, this.bucket(k)] as const);
    for (const [key, b] of bs) {
      const wait = b.retryAfterS();
      if (wait > 0) return { ok: false, key, retryAfterS: wait };
    }
    for (const [, b] of bs) b.take();
    return { ok: true };
  }

  retryAfterS(key: string): number {
    return this.buckets.get(key)?.retryAfterS() ?? 0;
  }

  has(key: string): boolean {
    return this.buckets.has(key);
  }

  get size(): number {
    return this.buckets.size;
  }
}
