// The conductor's image cache against a real origin HTTP server: one origin download however
// many agents ask, Range from the cache, and nothing cached whose checksum doesn't match.
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
import { type Fault, startImageServer } from '../support/image-server.ts';

const DATA = randomBytes(3 * 1024 * 1024 + 17);
const NODE = randomUUID();
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

  const url = (uuid: string) => cache.signedUrl(base, uuid, NODE, 60);
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
    const first = await request(url(img.uuid));
    assert.equal(first.statusCode, 200);
    assert.ok(Buffer.from(await first.body.arrayBuffer()).equals(DATA));
    assert.ok(await cache.fill(img), 'the fill finished with a verified file');
    const hitsAfterFill = originHits;
    for (let i = 0; i < 5; i++) {
      const r = await request(url(img.uuid));
      assert.ok(Buffer.from(await r.body.arrayBuffer()).equals(DATA));
    }
    assert.equal(originHits, hitsAfterFill, 'served from the cache, not the origin');
    const part = await request(url(img.uuid), { headers: { range: 'bytes=1000-1999' } });
    assert.equal(part.statusCode, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-1999/${DATA.length}`);
    assert.ok(Buffer.from(await part.body.arrayBuffer()).equals(DATA.subarray(1000, 2000)));
    const bad = await request(url(img.uuid), { headers: { range: `bytes=${DATA.length}-` } });
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
    const r = await request(cache.signedUrl(base, randomUUID(), NODE, 60));
    assert.equal(r.statusCode, 404);
    assert.match(
      ((await r.body.json()) as { error: { message: string } }).error.message,
      /not in the catalog/,
    );
  });
});

describe('image cache keeps nothing it could not verify', () => {
  let dir: string;
  let store: Store;
  let cache: ImageCache;
  let origin: Awaited<ReturnType<typeof startImageServer>>;
  const file = () => join(dir, 'origin.raw');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-imgverify-'));
    writeFileSync(file(), DATA);
    origin = await startImageServer();
    store = await openSqliteStore(':memory:');
    cache = new ImageCache({ store, dir: join(dir, 'cache'), log: silentLogger(), originTimeoutS: 30 });
  });
  after(async () => {
    await origin.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Fills an image served with `fault`; returns what the fill gave and what is left in the cache dir. */
  async function fillWith(fault: Fault, size: number | null) {
    const name = randomUUID();
    origin.serve(name, file(), fault);
    const img = await store.images.create({
      uuid: randomUUID(),
      name,
      url: origin.url(name),
      checksum_algo: 'sha256',
      checksum: SHA,
      format: 'raw',
      size,
      image_type: 'whole-disk',
    });
    const got = await cache.fill(img);
    const left = readdirSync(join(dir, 'cache')).filter((f) => f.startsWith(img.uuid));
    return { got, left, cached: await cache.cached(img) };
  }

  it('keeps nothing of a download cut off mid-body', async () => {
    const r = await fillWith({ dropAfter: 1024 * 1024, dropTimes: Infinity }, DATA.length);
    assert.equal(r.got, null);
    assert.equal(r.cached, null);
    assert.deepEqual(r.left, [], 'neither the file nor a .part remains');
  });

  it('keeps nothing of a short file, even when the catalog gives no size', async () => {
    // The origin announces the short length, so the transfer itself looks complete.
    const r = await fillWith({ truncateTo: DATA.length - 1 }, null);
    assert.equal(r.got, null);
    assert.deepEqual(r.left, []);
  });

  it('keeps nothing of a file with bytes after the image', async () => {
    const r = await fillWith({ oversizeBy: 4096 }, null);
    assert.equal(r.got, null);
    assert.deepEqual(r.left, []);
  });

  it('keeps the file when the bytes match (the same origin, no fault)', async () => {
    const r = await fillWith({}, DATA.length);
    assert.ok(r.got);
    assert.equal(r.left.length, 1);
    assert.ok(!r.left[0]!.endsWith('.part'));
  });
});
