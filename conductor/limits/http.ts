// Request rate limits for the provisioning listener, as koa middleware: a token bucket per key
// (the source address; the MACs a request names), answering 429 with Retry-After once a key's
// burst is spent. What the key is, is the caller's choice; sourceKey and macKeys are the two the
// provisioning endpoints use. A request with no key (undefined or []) is not limited here.
import type { Context, Middleware, Next } from 'koa';
import { KilnError } from '../../shared/errors.ts';
import { normaliseMac } from '../../shared/mac.ts';
import { type Clock, KeyedBuckets } from './token-bucket.ts';

export interface RateLimitOptions {
  /** Requests per second allowed for one key. */
  perSecond: number;
  /** Requests allowed at once above the rate. */
  burst: number;
  /** The key(s) a request is counted under; every one must have a token or the request is refused. */
  key: (ctx: Context) => string | readonly string[] | undefined;
  /** What a key is, for the message ("source address", "MAC"). */
  what?: string;
  /** Most keys remembered (least recently used dropped first); default 65536. */
  maxKeys?: number;
  now?: Clock;
}

export function rateLimit(opts: RateLimitOptions): Middleware {
  const buckets = new KeyedBuckets(
    { perSecond: opts.perSecond, burst: opts.burst },
    opts.maxKeys ?? 65_536,
    opts.now,
  );
  const what = opts.what ?? 'client';
  return async (ctx: Context, next: Next) => {
    const k = opts.key(ctx);
    const keys = k === undefined ? [] : typeof k === 'string' ? [k] : k;
    if (keys.length) {
      const r = buckets.takeAll(keys);
      if (!r.ok) {
        // Set before the throw: the error middleware keeps headers and writes the body.
        ctx.set('Retry-After', String(r.retryAfterS));
        throw new KilnError(
          'RATE_LIMITED',
          `too many requests for ${what} ${r.key} (more than ${opts.burst} at once or ${opts.perSecond}/s); retry after ${r.retryAfterS} s`,
          { details: { retry_after_s: r.retryAfterS } },
        );
      }
    }
    await next();
  };
}

/** The peer's address (the listener runs with proxy = false, so no header can choose it). */
export function sourceKey(ctx: Context): string | undefined {
  return ctx.req.socket.remoteAddress ?? undefined;
}

/** Most MACs one request is counted under: a forged request listing thousands costs the same. */
const MAX_MACS = 16;

/**
 * The MACs a provisioning request names: the lookup's `addresses` query, and the inspection
 * call-back's boot_interface and inventory interfaces. The call-back's are in its body, so for
 * it this runs after the body is read; before, it sees none and the request is not limited here.
 */
export function macKeys(ctx: Context): string[] {
  const found: unknown[] = [];
  if (ctx.path.replace(/\/$/, '') === '/v1/lookup') {
    const raw = ctx.query.addresses;
    for (const a of Array.isArray(raw) ? raw : raw ? [raw] : []) found.push(...a.split(','));
  } else if (ctx.path.replace(/\/$/, '') === '/v1/continue') {
    const body = (ctx.request as { body?: unknown }).body as
      | { boot_interface?: unknown; inventory?: { interfaces?: unknown } }
      | undefined;
    if (body && typeof body === 'object') {
      found.push(body.boot_interface);
      const ifaces = body.inventory?.interfaces;
      if (Array.isArray(ifaces))
        for (const i of ifaces.slice(0, MAX_MACS)) found.push((i as { mac_address?: unknown })?.mac_address);
    }
  }
  const macs = new Set<string>();
  for (const f of found) {
    // boot_interface may be a PXE BOOTIF (01-aa-bb-…): take the last six octets.
    const s = typeof f === 'string' ? f.replace(/^01-(?=(?:[0-9a-f]{2}-){5}[0-9a-f]{2}$)/i, '') : f;
    const m = normaliseMac(s);
    if (m) macs.add(m);
    if (macs.size >= MAX_MACS) break;
  }
  return [...macs];
}
