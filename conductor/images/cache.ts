// The conductor's image cache: agents download images from the conductor, not from the origin,
// so fifty nodes deploying one image cost the origin one download. GET /images/<uuid> serves the
// cached file with Range (agents resume dropped downloads); while the cache is still filling,
// requests are passed through to the origin and one background fill per image runs. A cached
// file is kept only if its checksum matches the catalog, so the cache can't serve bad bytes.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Router from '@koa/router';
import type Koa from 'koa';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { restErrors } from '../api/rest-errors.ts';
import { parseRange } from '../boot/http.ts';
import type { ImageRecord, Store } from '../store/store.ts';
import { getOrigin, maskUrl, OriginError } from './origin.ts';

export interface ImageCacheOptions {
  store: Store;
  dir: string;
  log: Logger;
  /** Seconds without data before an origin download is abandoned. */
  originTimeoutS?: number;
}

export class ImageCache {
  private readonly fills = new Map<string, Promise<string | null>>();
  private readonly log: Logger;

  constructor(private readonly opts: ImageCacheOptions) {
    this.log = opts.log.child({ component: 'image-cache' });
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
        idleTimeoutMs: this.idleMs(),
        bodyIdleTimeoutMs: this.idleMs(),
      });
      if (res.statusCode !== 200) {
        res.resume();
        throw new OriginError(`origin answered HTTP ${res.statusCode}`, res.statusCode ?? null);
      }
      const hash = createHash(img.checksum_algo);
      let bytes = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          bytes += chunk.length;
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
      const img = await this.opts.store.images.get(ctx.params.uuid!);
      if (!img) throw new KilnError('NOT_FOUND', `image ${ctx.params.uuid} is not in the catalog`);
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
        ctx.body = size === 0 ? '' : createReadStream(file, { start, end });
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
      res = await getOrigin({ url: img.url, headers, idleTimeoutMs: this.idleMs() });
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
    ctx.body = res;
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
