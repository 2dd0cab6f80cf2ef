// The conductor's image cache: agents download images from the conductor, not from the origin,
// so fifty nodes deploying one image cost the origin one download. GET /images/<uuid> serves the
// cached file with Range (agents resume dropped downloads); while the cache is still filling,
// requests are passed through to the origin and one background fill per image runs. A cached
// file is kept only if its checksum matches the catalog, so the cache can't serve bad bytes.
//
// The route sits on the provisioning network, where anyone can ask: it serves an image only on
// a URL the conductor signed for one node and one image, for a limited time (signedUrl), and it
// fetches only what the catalog names, from the hosts images.allowed_hosts allows.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Router from '@koa/router';
import type Koa from 'koa';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { restErrors } from '../api/rest-errors.ts';
import { parseRange } from '../boot/http.ts';
import type { ImageRecord, Store } from '../store/store.ts';
import { getOrigin, OriginError } from './origin.ts';
import { imageUrlProblem, maskUrl } from './url-policy.ts';

export interface ImageCacheOptions {
  store: Store;
  dir: string;
  log: Logger;
  /** Seconds without data before an origin download is abandoned. */
  originTimeoutS?: number;
  /** images.allowed_hosts: hosts the cache may fetch from (exact or .suffix); empty: any http(s) host. */
  allowedHosts?: readonly string[];
  /**
   * Key of the download URLs' HMAC (derived from the secrets key, so every conductor sharing it
   * accepts the same URLs). Without one a random key is made: URLs this process signed work.
   */
  signingKey?: Buffer;
  /** Clock in ms, for tests of expiry. */
  now?: () => number;
  /** Byte counters (conductor/metrics); nothing is counted without them. */
  metrics?: ImageCounters;
}

/** Where the cache reports the bytes it moves (conductor/metrics/metrics.ts implements it). */
export interface ImageCounters {
  imageServedBytes: { inc(labels: { source: 'cache' | 'origin' }, bytes: number): void };
  imageFetchedBytes: { inc(labels: { purpose: 'fill' | 'passthrough' }, bytes: number): void };
}

/** The one answer to a bad download URL: which part failed is not said. */
const BAD_SIGNATURE =
  'this image URL is not signed for this download or has expired; the conductor hands each deploy a fresh one';

export class ImageCache {
  private readonly fills = new Map<string, Promise<string | null>>();
  private readonly log: Logger;
  private readonly key: Buffer;
  private readonly now: () => number;

  constructor(private readonly opts: ImageCacheOptions) {
    this.log = opts.log.child({ component: 'image-cache' });
    this.key = opts.signingKey ?? randomBytes(32);
    this.now = opts.now ?? Date.now;
  }

  private mac(imageUuid: string, nodeUuid: string, expires: string): Buffer {
    return createHmac('sha256', this.key)
      .update(`kiln-image-v1\n${imageUuid}\n${nodeUuid}\n${expires}`)
      .digest();
  }

  /**
   * The URL one node downloads one image from: `${base}/images/<uuid>?node=…&expires=…&sig=…`,
   * valid for ttlS seconds (long enough for the download and the agent's resumed retries).
   */
  signedUrl(base: string, imageUuid: string, nodeUuid: string, ttlS: number): string {
    const expires = String(Math.floor(this.now() / 1000) + Math.ceil(ttlS));
    const sig = this.mac(imageUuid, nodeUuid, expires).toString('hex');
    const q = new URLSearchParams({ node: nodeUuid, expires, sig });
    return `${base.replace(/\/+$/, '')}/images/${encodeURIComponent(imageUuid)}?${q}`;
  }

  /** Throws the one 403 unless the query carries this image's unexpired signature. */
  private verify(imageUuid: string, query: Record<string, string | string[] | undefined>): void {
    const { node, expires, sig } = query;
    const wellFormed =
      typeof node === 'string' &&
      typeof expires === 'string' &&
      /^\d{1,12}$/.test(expires) &&
      typeof sig === 'string' &&
      /^[0-9a-f]{64}$/.test(sig);
    // The comparison runs whatever the input, in constant time; then the expiry.
    const expected = this.mac(imageUuid, String(node ?? ''), String(expires ?? ''));
    const given = wellFormed ? Buffer.from(sig, 'hex') : Buffer.alloc(32);
    const match = timingSafeEqual(expected, given) && wellFormed;
    if (!match || Number(expires) * 1000 <= this.now()) throw new KilnError('FORBIDDEN', BAD_SIGNATURE);
  }

  /** Throws unless the image's URL may be fetched under the current images.allowed_hosts. */
  private checkOrigin(img: ImageRecord): void {
    const problem = imageUrlProblem(img.url, this.opts.allowedHosts ?? []);
    if (!problem) return;
    this.log.warn({ image: img.name, origin: maskUrl(img.url), err: problem }, 'image origin not allowed');
    throw new KilnError(
      'FORBIDDEN',
      `image '${img.name}' is not served: ${problem}; the cache fetched nothing`,
      { details: { image: img.uuid, origin: maskUrl(img.url) } },
    );
  }

  private path(img: ImageRecord): string {
    // The checksum names the content: a re-registered image with new bytes gets a new file.
    return join(this.opts.dir, `${img.uuid}.${img.checksum.slice(0, 16)}`);
  }

  private idleMs(): number {
    return (this.opts.originTimeoutS ?? 60) * 1000;
  }

  /** The cached file's path, or null while it isn't (fully, verifiably) there. */
  async cached(img: ImageRecord): Promise<string | null> {
    try {
      await stat(this.path(img));
      return this.path(img);
    } catch {
      return null;
    }
  }

  /** Start (or join) the background fill of one image. Resolves with the path, or null on failure. */
  fill(img: ImageRecord): Promise<string | null> {
    let p = this.fills.get(img.uuid);
    if (!p) {
      p = this.download(img).finally(() => this.fills.delete(img.uuid));
      this.fills.set(img.uuid, p);
    }
    return p;
  }

  private async download(img: ImageRecord): Promise<string | null> {
    const final = this.path(img);
    const part = `${final}.part`;
    await mkdir(this.opts.dir, { recursive: true });
    const started = Date.now();
    try {
      const res = await getOrigin({
        url: img.url,
        allowedHosts: this.opts.allowedHosts,
        idleTimeoutMs: this.idleMs(),
        bodyIdleTimeoutMs: this.idleMs(),
      });
      if (res.statusCode !== 200) {
        res.resume();
        throw new OriginError(`origin answered HTTP ${res.statusCode}`, res.statusCode ?? null);
      }
      const hash = createHash(img.checksum_algo);
      let bytes = 0;
      const counters = this.opts.metrics;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          bytes += chunk.length;
          counters?.imageFetchedBytes.inc({ purpose: 'fill' }, chunk.length);
          cb(null, chunk);
        },
      });
      await pipeline(res, tap, createWriteStream(part));
      const digest = hash.digest('hex');
      if (digest !== img.checksum)
        throw new Error(
          `checksum mismatch: catalog says ${img.checksum_algo}:${img.checksum}, origin sent ${digest}`,
        );
      if (img.size !== null && bytes !== img.size)
        throw new Error(`size mismatch: catalog says ${img.size} bytes, origin sent ${bytes}`);
      await rename(part, final);
      this.log.info({ image: img.name, bytes, ms: Date.now() - started }, 'image cached');
      return final;
    } catch (e) {
      await rm(part, { force: true });
      this.log.warn(
        { image: img.name, url: maskUrl(img.url), err: (e as Error).message },
        'image cache fill failed; agents are served from the origin',
      );
      return null;
    }
  }

  router(): Router {
    const r = new Router();
    // Errors in Kiln's REST shape, as the agent's image download expects them.
    r.use(restErrors(this.log));
    r.get('/images/:uuid', async (ctx) => {
      // The signature first: an unsigned request learns nothing, not even whether the image exists.
      this.verify(ctx.params.uuid!, ctx.query);
      const img = await this.opts.store.images.get(ctx.params.uuid!);
      if (!img) throw new KilnError('NOT_FOUND', `image ${ctx.params.uuid} is not in the catalog`);
      this.checkOrigin(img);
      const file = await this.cached(img);
      if (file) {
        const size = (await stat(file)).size;
        ctx.set('Accept-Ranges', 'bytes');
        ctx.set('ETag', `"${img.checksum.slice(0, 32)}"`);
        ctx.type = 'application/octet-stream';
        const range = parseRange(ctx.get('Range') || undefined, size);
        if (range === 'unsatisfiable') {
          ctx.status = 416;
          ctx.set('Content-Range', `bytes */${size}`);
          ctx.body = '';
          return;
        }
        const { start, end } = range ?? { start: 0, end: size - 1 };
        ctx.status = range ? 206 : 200;
        if (range) ctx.set('Content-Range', `bytes ${start}-${end}/${size}`);
        ctx.length = end - start + 1;
        ctx.body = size === 0 ? '' : this.counted(createReadStream(file, { start, end }), 'cache');
        return;
      }
      // Not cached yet: fill in the background, pass this request through to the origin.
      void this.fill(img);
      await this.passThrough(ctx, img);
    });
    return r;
  }

  private async passThrough(ctx: Koa.Context, img: ImageRecord): Promise<void> {
    const headers: Record<string, string> = {};
    if (ctx.get('Range')) headers.range = ctx.get('Range');
    const origin = maskUrl(img.url);
    let res: IncomingMessage;
    try {
      res = await getOrigin({
        url: img.url,
        headers,
        allowedHosts: this.opts.allowedHosts,
        idleTimeoutMs: this.idleMs(),
      });
    } catch (e) {
      throw this.badOrigin(img, (e as Error).message);
    }
    const status = res.statusCode ?? 0;
    if (status !== 200 && status !== 206 && status !== 416) {
      res.resume();
      throw this.badOrigin(img, `image origin ${origin} answered HTTP ${status}`);
    }
    // An agent that goes away (rebooted, killed, timed out) must not leave the origin download
    // running; and an origin that fails mid-body must end the agent's response, not hang it.
    ctx.req.once('close', () => res.destroy());
    res.once('error', (e) => {
      this.log.warn({ image: img.name, origin, err: e.message }, 'image origin failed mid-stream');
      ctx.res.destroy();
    });
    ctx.status = status;
    for (const h of ['content-length', 'content-range', 'accept-ranges', 'etag', 'last-modified']) {
      const v = res.headers[h];
      if (typeof v === 'string') ctx.set(h, v);
    }
    ctx.type = 'application/octet-stream';
    ctx.body = this.counted(res, 'origin');
  }

  /**
   * `stream` through a counting tap (no 'data' listener on the source: that would start it
   * flowing before koa pipes it). Errors and early closes travel through the pipeline both ways.
   */
  private counted(stream: Readable, source: 'cache' | 'origin'): Readable {
    const m = this.opts.metrics;
    if (!m) return stream;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        m.imageServedBytes.inc({ source }, chunk.length);
        if (source === 'origin') m.imageFetchedBytes.inc({ purpose: 'passthrough' }, chunk.length);
        cb(null, chunk);
      },
    });
    pipeline(stream, tap).catch(() => {});
    return tap;
  }

  /**
   * The origin can't serve the image: a 502 naming the origin and its status, so the agent's
   * error (and the node's last_error) says where the image really failed.
   */
  private badOrigin(img: ImageRecord, why: string): KilnError {
    const message = `${why}; check image '${img.name}' (kiln image show ${img.name}) and that its URL is served`;
    this.log.warn({ image: img.name, origin: maskUrl(img.url), err: why }, 'image origin failed');
    return new KilnError('IMAGE_ORIGIN_FAILED', message, { details: { origin: maskUrl(img.url) } });
  }
}
