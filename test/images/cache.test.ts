// The conductor's image cache against a real origin HTTP server: one origin download however
// many agents ask, Range from the cache, and nothing cached whose checksum doesn't match.
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Koa from 'koa';
import { request } from 'undici';
import { ImageCache } from '../../conductor/images/cache.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import type { Store } from '../../conductor/store/store.ts';
import { silentLogger } from '../../shared/log.ts';

const DATA = randomBytes(3 * 1024 * 1024 + 17);
const SHA = createHash('sha256').update(DATA).digest('hex');

describe('image cache', () => {
  let origin: Server;
  let originHits = 0;
  let originUrl: string;
  let app: Server;
  let base: string;
  let store: Store;
  let dir: string;
  let cache: ImageCache;

  before(async () => {
    origin = createServer((_req, res) => {
      originHits++;
      res.writeHead(200, { 'content-length': DATA.length });
      res.end(DATA);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    store = await openSqliteStore(':memory:');
    dir = mkdtempSync(join(tmpdir(), 'kiln-imgcache-'));
    cache = new ImageCache({ store, dir, log: silentLogger() });
    const koa = new Koa();
    koa.use(cache.router().routes());
    app = koa.listen(0, '127.0.0.1');
    await new Promise((r) => app.once('listening', r));
    base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  });
  after(async () => {
    app.close();
    origin.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const add = (checksum: string) =>
    store.images.create({
      uuid: randomUUID(),
      name: randomUUID(),
      url: `${originUrl}/img.raw`,
      checksum_algo: 'sha256',
      checksum,
      format: 'raw',
      size: DATA.length,
      image_type: 'whole-disk',
    });

  it('passes the first request through, fills once, then serves the cache with Range', async () => {
    const img = await add(SHA);
    originHits = 0;
    const first = await request(`${base}/images/${img.uuid}`);
    assert.equal(first.statusCode, 200);
    assert.ok(Buffer.from(await first.body.arrayBuffer()).equals(DATA));
    assert.ok(await cache.fill(img), 'the fill finished with a verified file');
    const hitsAfterFill = originHits;
    for (let i = 0; i < 5; i++) {
      const r = await request(`${base}/images/${img.uuid}`);
      assert.ok(Buffer.from(await r.body.arrayBuffer()).equals(DATA));
    }
    assert.equal(originHits, hitsAfterFill, 'served from the cache, not the origin');
    const part = await request(`${base}/images/${img.uuid}`, { headers: { range: 'bytes=1000-1999' } });
    assert.equal(part.statusCode, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-1999/${DATA.length}`);
    assert.ok(Buffer.from(await part.body.arrayBuffer()).equals(DATA.subarray(1000, 2000)));
    const bad = await request(`${base}/images/${img.uuid}`, { headers: { range: `bytes=${DATA.length}-` } });
    assert.equal(bad.statusCode, 416);
    await bad.body.dump();
  });

  it('does not keep an image whose bytes do not match the catalog checksum', async () => {
    const img = await add('0'.repeat(64));
    assert.equal(await cache.fill(img), null);
    assert.equal(await cache.cached(img), null);
    assert.ok(!readdirSync(dir).some((f) => f.startsWith(img.uuid)), 'no partial file left behind');
  });

  it('answers 404 for an image not in the catalog', async () => {
    const r = await request(`${base}/images/${randomUUID()}`);
    assert.equal(r.statusCode, 404);
    assert.match(
      ((await r.body.json()) as { error: { message: string } }).error.message,
      /not in the catalog/,
    );
  });
});
