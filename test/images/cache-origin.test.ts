// The image cache's pass-through to an origin that misbehaves the way real ones do: closing the
// connection right after the body while the agent reads slowly, disappearing, answering 404.
// The conductor must survive every one of these, and the agent must learn which origin failed.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import {
  type AddressInfo,
  connect,
  createServer as createNetServer,
  type Server,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Koa from 'koa';
import { request } from 'undici';
import { download } from '../../agent/disk/stream/http-source.ts';
import { ImageCache } from '../../conductor/images/cache.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import type { Store } from '../../conductor/store/store.ts';
import { silentLogger } from '../../shared/log.ts';

const SIZE = 4 * 1024 * 1024;
const DATA = Buffer.alloc(SIZE, 0x5a);

/**
 * An HTTP/1.0 origin like `python3 -m http.server`: headers, the whole body, then it closes the
 * connection. `nextSent` resolves when it has handed a whole response to the kernel and sent
 * its FIN: from then on the end of the body is on its way whatever the reader does.
 */
function closingOrigin() {
  const events: string[] = [];
  let onSent: (() => void) | undefined;
  const server: Server = createNetServer((s: Socket) => {
    s.once('data', () => {
      s.write(`HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${SIZE}\r\n\r\n`);
      s.end(DATA, () => {
        events.push('sent');
        onSent?.();
      });
    });
    s.on('error', () => {});
  });
  return {
    server,
    events,
    nextSent: () => new Promise<void>((r) => (onSent = r)),
  };
}

describe('image cache pass-through against misbehaving origins', () => {
  let store: Store;
  let dir: string;
  let app: Server;
  let base: string;
  const origin = closingOrigin();
  let originUrl: string;
  let deadUrl: string;
  let cache: ImageCache;
  /** The signed URL (path and query) of an image, as the conductor hands it to an agent. */
  const path = (uuid: string) => {
    const u = new URL(cache.signedUrl(base, uuid, randomUUID(), 600));
    return `${u.pathname}${u.search}`;
  };

  before(async () => {
    await new Promise<void>((r) => origin.server.listen(0, '127.0.0.1', r));
    originUrl = `http://127.0.0.1:${(origin.server.address() as AddressInfo).port}`;
    // A port that was free a moment ago: connection refused.
    const probe = createNetServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    deadUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/gone.raw`;
    await new Promise((r) => probe.close(r));
    store = await openSqliteStore(':memory:');
    dir = mkdtempSync(join(tmpdir(), 'kiln-imgorigin-'));
    // A long origin timeout: nothing in these tests may end because a timer fired.
    cache = new ImageCache({ store, dir, log: silentLogger(), originTimeoutS: 600 });
    const koa = new Koa();
    koa.use(cache.router().routes());
    app = koa.listen(0, '127.0.0.1');
    await new Promise((r) => app.once('listening', r));
    base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  });
  after(async () => {
    app.close();
    origin.server.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const add = (url: string, name: string = randomUUID()) =>
    store.images.create({
      uuid: randomUUID(),
      name,
      url,
      checksum_algo: 'sha256',
      // A checksum that never matches keeps the image uncached, so every request passes through.
      checksum: 'ab'.repeat(32),
      format: 'raw',
      size: SIZE,
      image_type: 'whole-disk',
    });

  it('survives an origin that closes right after the body while the reader is paused', async () => {
    const img = await add(`${originUrl}/img.raw`);
    const sock = connect(Number(new URL(base).port), '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.pause();
    // Two origin responses: the background fill's and the pass-through's. Wait until both are
    // sent and closed by the origin while this reader has not read a byte, so the conductor
    // holds a paused body whose end has already arrived.
    const bothSent = (async () => {
      while (origin.events.length < 2) await origin.nextSent();
    })();
    origin.events.length = 0;
    sock.write(`GET ${path(img.uuid)} HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\n\r\n`);
    await bothSent;
    // Now read slowly: 256 KiB at a time with pauses, as a slow disk would.
    const chunks: Buffer[] = [];
    let got = 0;
    const done = new Promise<void>((resolve, reject) => {
      sock.on('error', reject);
      sock.on('end', resolve);
    });
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got % (256 * 1024) < c.length) {
        sock.pause();
        setTimeout(() => sock.resume(), 20);
      }
    });
    sock.resume();
    await done;
    const raw = Buffer.concat(chunks);
    const head = raw.subarray(0, raw.indexOf('\r\n\r\n')).toString();
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.equal(raw.length - head.length - 4, SIZE, 'the whole body arrived');
    // And the conductor is still alive and answering.
    const r = await request(`${base}${path(randomUUID())}`);
    assert.equal(r.statusCode, 404);
    await r.body.dump();
  });

  it('destroys the origin request when the agent goes away mid-download', { timeout: 20_000 }, async () => {
    const sockets: Socket[] = [];
    const stalling = createNetServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
      s.once('data', () => {
        // Announce a big body, send a little, then keep the connection open.
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${SIZE}\r\n\r\n`);
        s.write(DATA.subarray(0, 65536));
      });
    });
    await new Promise<void>((r) => stalling.listen(0, '127.0.0.1', r));
    try {
      const img = await add(`http://127.0.0.1:${(stalling.address() as AddressInfo).port}/big.raw`);
      const sock = connect(Number(new URL(base).port), '127.0.0.1');
      sock.on('error', () => {});
      sock.write(`GET ${path(img.uuid)} HTTP/1.1\r\nHost: kiln\r\n\r\n`);
      // Response bytes reach the agent only once the pass-through's origin request is open.
      await new Promise((r) => sock.once('data', r));
      // The background fill opens the other connection, in its own time.
      while (sockets.length < 2) await new Promise((r) => stalling.once('connection', r));
      assert.equal(sockets.length, 2, 'the background fill and the pass-through each opened one');
      const oneClosed = Promise.race(sockets.map((s) => new Promise((r) => s.once('close', r))));
      sock.destroy();
      // Without the destroy this waits for the origin timeout (600 s) and the test times out.
      await oneClosed;
      assert.equal(sockets.filter((s) => s.destroyed).length, 1, 'only the pass-through was dropped');
    } finally {
      for (const s of sockets) s.destroy();
      stalling.close();
    }
  });

  it('answers 502 naming the origin and its status when the origin answers 404', async () => {
    // Answers 404 with a length (so the connection looks reusable), then closes it at once:
    // a pooled client that reuses it fails the next request with "socket hang up".
    const perSocket: number[] = [];
    const missing = createNetServer((s) => {
      const i = perSocket.push(0) - 1;
      s.on('error', () => {});
      s.on('data', () => {
        perSocket[i]!++;
        s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found');
      });
    });
    await new Promise<void>((r) => missing.listen(0, '127.0.0.1', r));
    try {
      const url = `http://user:s3cret@127.0.0.1:${(missing.address() as AddressInfo).port}/nope.raw`;
      const img = await add(url, 'nope');
      const r = await request(`${base}${path(img.uuid)}`);
      assert.equal(r.statusCode, 502);
      const body = (await r.body.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'IMAGE_ORIGIN_FAILED');
      assert.match(body.error.message, /answered HTTP 404/);
      assert.match(body.error.message, /127\.0\.0\.1:\d+\/nope\.raw/);
      assert.ok(!body.error.message.includes('s3cret'), 'credentials in the URL are masked');
      for (let i = 0; i < 5; i++) {
        const again = await request(`${base}${path(img.uuid)}`);
        assert.match(((await again.body.json()) as typeof body).error.message, /answered HTTP 404/);
      }
      assert.ok(
        perSocket.every((n) => n <= 1),
        `one request per origin connection, never a reused one: ${perSocket}`,
      );
      // What the agent reports, and so what lands in last_error, names the origin too.
      const d = download({ url: `${base}${path(img.uuid)}`, hashAlgo: 'sha256', maxAttempts: 1 });
      await assert.rejects(
        (async () => {
          for await (const _ of d.chunks);
        })(),
        (e: Error) =>
          /HTTP 502: image origin http:\/\/\*\*\*@127\.0\.0\.1:\d+\/nope\.raw answered HTTP 404/.test(
            e.message,
          ),
      );
    } finally {
      missing.close();
    }
  });

  it('answers 502 naming the origin when the origin is unreachable', async () => {
    const img = await add(deadUrl);
    const r = await request(`${base}${path(img.uuid)}`);
    assert.equal(r.statusCode, 502);
    const { error } = (await r.body.json()) as { error: { message: string } };
    assert.match(
      error.message,
      /image origin http:\/\/127\.0\.0\.1:\d+\/gone\.raw is unreachable: .*ECONNREFUSED/,
    );
  });
});
