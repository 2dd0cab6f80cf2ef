// Kiln issue item 7: the image cache as an SSRF and a data leak. The catalog takes only http(s)
// URLs on images.allowed_hosts; the cache checks again before it fetches (and on every redirect);
// /images/<uuid> on the provisioning network serves only a URL signed for one node and image;
// credentials in image URLs never reach API output. Against a real conductor (REST through
// c.call, downloads at c.publicUrl) and real origin HTTP servers that count what they are asked.
//
// The conductor's own cache is turned off and one built here is mounted on its provisioning
// listener (over the conductor's store), so the test holds the signing key and can change
// allowed_hosts after an image is created, as a config change and restart would.
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { ImageCache } from '../../conductor/images/cache.ts';
import { silentLogger } from '../../shared/log.ts';
import { startTestConductor, type TestConductor } from '../support/conductor.ts';
import { type ImageServer, startImageServer } from '../support/image-server.ts';

const DATA = randomBytes(256 * 1024);
const SHA = createHash('sha256').update(DATA).digest('hex');
const NODE = randomUUID();
const FORBIDDEN_MESSAGE = /not signed for this download or has expired/;

describe('image cache: what it fetches and whom it serves', () => {
  let c: TestConductor;
  let origin: ImageServer;
  let cache: ImageCache;
  let dir: string;
  /** What the cache was built with; changed in place to play a config change. */
  const allowedHosts: string[] = ['127.0.0.1'];
  /** An "internal" server on another loopback host, which no image may reach. */
  let internal: Server;
  let internalHits = 0;
  let internalUrl: string;
  let redirector: Server;
  let redirectorUrl: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-sec-images-'));
    writeFileSync(join(dir, 'disk.raw'), DATA);
    origin = await startImageServer();
    origin.serve('disk.raw', join(dir, 'disk.raw'));
    internal = createServer((_req, res) => {
      internalHits++;
      res.end('internal secrets');
    });
    await new Promise<void>((r) => internal.listen(0, '127.0.0.2', r));
    internalUrl = `http://127.0.0.2:${(internal.address() as AddressInfo).port}/latest/meta-data`;
    // An allowed origin that sends the cache on to the internal host.
    redirector = createServer((_req, res) => res.writeHead(302, { location: internalUrl }).end());
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
    redirectorUrl = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/disk.raw`;
    c = await startTestConductor(
      {
        extraRouters: ({ store }) => {
          cache = new ImageCache({
            store,
            dir: join(dir, 'cache'),
            log: silentLogger(),
            allowedHosts,
            signingKey: randomBytes(32),
          });
          return [cache.router()];
        },
      },
      { 'images.cache': false, 'images.allowed_hosts': ['127.0.0.1'] },
    );
  });
  after(async () => {
    await c.close();
    await origin.close();
    internal.close();
    redirector.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const create = (name: string, url: string) =>
    c.call('POST', '/v1/images', { name, url, checksum: `sha256:${SHA}`, size: DATA.length });
  const imageNames = async () =>
    ((await c.call('GET', '/v1/images')).body.images as { name: string }[]).map((i) => i.name);
  const get = async (url: string) => {
    const r = await request(url);
    const body = Buffer.from(await r.body.arrayBuffer());
    return { status: r.statusCode, body, text: body.toString() };
  };
  const cachedFiles = () => {
    try {
      return readdirSync(join(dir, 'cache'));
    } catch {
      return [];
    }
  };

  it('refuses file:// and gopher:// image URLs with a 400 naming the field and the allowed schemes', async () => {
    const before = await imageNames();
    for (const url of ['file:///etc/shadow', 'gopher://127.0.0.1:70/_GET%20/', 'ftp://127.0.0.1/x.raw']) {
      const r = await create(`bad-${randomUUID()}`, url);
      assert.equal(r.status, 400, `${url}: ${r.text}`);
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
      assert.match(r.body.error.message, /url: image URL scheme \w+: is not allowed; use http or https/);
      assert.equal(r.body.error.details[0].path, 'url');
    }
    assert.deepEqual(await imageNames(), before, 'nothing was added to the catalog');
  });

  it('refuses a host not in images.allowed_hosts at create', async () => {
    const before = await imageNames();
    const r = await create('metadata', 'http://169.254.169.254/latest/meta-data/iam/');
    assert.equal(r.status, 400, r.text);
    assert.match(
      r.body.error.message,
      /host 169\.254\.169\.254 is not in images\.allowed_hosts \(127\.0\.0\.1\)/,
    );
    const internalHost = await create('internal', internalUrl);
    assert.equal(internalHost.status, 400, 'another loopback address is another host');
    assert.deepEqual(await imageNames(), before);
  });

  it('serves an allowed image on a signed URL (the control for the refusals below)', async () => {
    const img = (await create(`ok-${randomUUID()}`, origin.url('disk.raw'))).body;
    const r = await get(cache.signedUrl(c.publicUrl, img.uuid, NODE, 60));
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.equals(DATA));
  });

  it('refuses unsigned, forged, expired, tampered and other-image URLs with one 403, asking the origin nothing', async () => {
    const img = (await create(`signed-${randomUUID()}`, origin.url('disk.raw'))).body;
    const other = (await create(`other-${randomUUID()}`, origin.url('disk.raw'))).body;
    const good = new URL(cache.signedUrl(c.publicUrl, img.uuid, NODE, 60));
    const tamper = (k: string, v: string) => {
      const u = new URL(good);
      u.searchParams.set(k, v);
      return u.toString();
    };
    const signedForOther = new URL(cache.signedUrl(c.publicUrl, other.uuid, NODE, 60));
    const attempts: Record<string, string> = {
      unsigned: `${c.publicUrl}/images/${img.uuid}`,
      'forged sig': tamper('sig', 'ab'.repeat(32)),
      'sig of another image': `${c.publicUrl}/images/${img.uuid}${signedForOther.search}`,
      'another node': tamper('node', randomUUID()),
      'expires pushed out': tamper('expires', String(Math.floor(Date.now() / 1000) + 86_400)),
      expired: cache.signedUrl(c.publicUrl, img.uuid, NODE, -1),
      'sig not hex': tamper('sig', 'z'.repeat(64)),
      'image not in the catalog': `${c.publicUrl}/images/${randomUUID()}${good.search}`,
    };
    const originBefore = origin.requests.length;
    for (const [what, url] of Object.entries(attempts)) {
      const r = await get(url);
      assert.equal(r.status, 403, `${what}: ${r.text}`);
      const body = JSON.parse(r.text);
      assert.equal(body.error.code, 'FORBIDDEN', what);
      assert.match(body.error.message, FORBIDDEN_MESSAGE, what);
      assert.ok(
        !r.text.includes(img.name) && !r.text.includes('127.0.0.1'),
        `${what}: nothing about the image`,
      );
    }
    assert.equal(origin.requests.length, originBefore, 'the origin was never contacted');
  });

  it('refuses, fetching nothing, an image whose host was allowed at create but is not any more', async () => {
    const img = (await create(`moved-${randomUUID()}`, origin.url('disk.raw'))).body;
    const url = cache.signedUrl(c.publicUrl, img.uuid, NODE, 60);
    const originBefore = origin.requests.length;
    allowedHosts.splice(0, allowedHosts.length, 'images.example.net', '.mirror.example.net');
    try {
      const r = await get(url);
      assert.equal(r.status, 403, r.text);
      const { error } = JSON.parse(r.text);
      assert.match(error.message, new RegExp(`image '${img.name}' is not served`));
      assert.match(error.message, /host 127\.0\.0\.1 is not in images\.allowed_hosts/);
      assert.match(error.message, /the cache fetched nothing/);
      // Give a background fill the time it would take to start: there must be none.
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(origin.requests.length, originBefore, 'the origin was not contacted');
      assert.ok(!cachedFiles().some((f) => f.startsWith(img.uuid)), 'nothing cached');
    } finally {
      allowedHosts.splice(0, allowedHosts.length, '127.0.0.1');
    }
  });

  it('does not follow an allowed origin redirecting to a host that is not allowed', async () => {
    const img = (await create(`redirect-${randomUUID()}`, redirectorUrl)).body;
    assert.ok(img.uuid, 'the redirecting origin itself is allowed');
    const r = await get(cache.signedUrl(c.publicUrl, img.uuid, NODE, 60));
    assert.equal(r.status, 502, r.text);
    const { error } = JSON.parse(r.text);
    assert.equal(error.code, 'IMAGE_ORIGIN_FAILED');
    assert.match(error.message, /host 127\.0\.0\.2 is not in images\.allowed_hosts/);
    assert.match(error.message, /a redirect from the origin/);
    // And the background fill, which took the same redirect, stopped there too.
    assert.equal(await cache.fill(await c.store.images.get(img.uuid).then((i) => i!)), null);
    assert.equal(internalHits, 0, 'the internal host was never asked');
    assert.ok(!r.text.includes('internal secrets'));
  });

  it('never shows credentials of an image URL in API output', async () => {
    const port = new URL(origin.url('x')).port;
    const secretUrl = `http://kiln:s3cretPass@127.0.0.1:${port}/disk.raw?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=f00dfeed&token=t0ken&api_key=k3y&os=debian`;
    const created = await create(`secret-${randomUUID()}`, secretUrl);
    assert.equal(created.status, 201, created.text);
    const node = await c.call('POST', '/v1/nodes', {
      name: `n-${randomUUID().slice(0, 8)}`,
      bmc_address: 'fake://n',
    });
    assert.equal(node.status, 201, node.text);
    const patched = await c.call('PATCH', `/v1/nodes/${node.body.uuid}`, {
      instance_info: { image_source: secretUrl, image_url: secretUrl },
    });
    assert.equal(patched.status, 200, patched.text);
    const outputs = [
      created.text,
      (await c.call('GET', `/v1/images/${created.body.uuid}`)).text,
      (await c.call('GET', `/v1/images/${created.body.name}`)).text,
      (await c.call('GET', '/v1/images')).text,
      patched.text,
      (await c.call('GET', `/v1/nodes/${node.body.uuid}`)).text,
    ];
    for (const out of outputs) {
      for (const secret of ['s3cretPass', 'AKIAEXAMPLE', 'f00dfeed', 't0ken', 'k3y'])
        assert.ok(!out.includes(secret), `${secret} is not in ${out.slice(0, 300)}`);
    }
    // What is left still says which origin and path, and the harmless parameter.
    assert.match(created.body.url, /^http:\/\/\*\*\*@127\.0\.0\.1:\d+\/disk\.raw\?/);
    assert.match(created.body.url, /X-Amz-Signature=\*\*\*&token=\*\*\*&api_key=\*\*\*&os=debian$/);
    // The catalog itself keeps the real URL: the cache can still fetch with it.
    assert.equal((await c.store.images.get(created.body.uuid))!.url, secretUrl);
    const r = await get(cache.signedUrl(c.publicUrl, created.body.uuid, NODE, 60));
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(DATA));
  });
});
