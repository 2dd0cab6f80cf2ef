// The image writer against a real HTTP server and loop devices: every format, checksum and
// length failures, resume after a dropped connection, images too big for the disk.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Progress } from '../../agent/commands/types.ts';
import { TargetGuard } from '../../agent/disk/guard.ts';
import { type WriteImageRequest, writeImage } from '../../agent/disk/stream/write-image.ts';
import { type ImageServer, startImageServer } from '../support/image-server.ts';
import { createLoopDevice, type LoopDevice, readDevice } from '../support/loopdev.ts';
import { compress, fillJunk, MiB, makeRawImage, qcow2, sha256File } from './fixtures.ts';

const IMAGE = 48 * MiB;
let dir: string;
let server: ImageServer;
let disk: LoopDevice;
let small: LoopDevice;
let raw: Buffer;
const files: Record<string, { path: string; sha256: string }> = {};

async function add(name: string, path: string): Promise<void> {
  files[name] = { path, sha256: await sha256File(path) };
  server.serve(name, path);
}

function req(name: string, extra: Partial<WriteImageRequest> = {}): WriteImageRequest {
  const f = files[name]!;
  return {
    url: server.url(name),
    device: disk.path,
    deviceBytes: disk.bytes,
    guard: new TargetGuard([disk.path, small.path]),
    checksum: { algo: 'sha256', value: f.sha256 },
    download: { retryDelayMs: 10 },
    ...extra,
  };
}

async function assertImageOnDisk(device = disk.path): Promise<void> {
  const got = await readDevice(device, 0, IMAGE);
  assert.equal(got.length, raw.length);
  assert.ok(got.equals(raw), 'device content differs from the raw image');
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-stream-'));
  server = await startImageServer();
  disk = await createLoopDevice(64 * MiB);
  small = await createLoopDevice(16 * MiB);
  const rawPath = join(dir, 'disk.raw');
  raw = await makeRawImage(rawPath, IMAGE);
  await add('disk.raw', rawPath);
  for (const tool of ['gzip', 'xz', 'zstd'] as const)
    await add(`disk.raw.${tool}`, await compress(tool, rawPath, dir));
  await add('disk.qcow2', await qcow2(rawPath, join(dir, 'disk.qcow2')));
  await add(
    'v2-4k.qcow2',
    await qcow2(rawPath, join(dir, 'v2-4k.qcow2'), ['-o', 'compat=0.10,cluster_size=4096']),
  );
  await add(
    'prealloc.qcow2',
    await qcow2(rawPath, join(dir, 'prealloc.qcow2'), ['-o', 'preallocation=metadata']),
  );
  await add(
    'big-cluster.qcow2',
    await qcow2(rawPath, join(dir, 'big-cluster.qcow2'), ['-o', 'cluster_size=2M']),
  );
  await add('compressed.qcow2', await qcow2(rawPath, join(dir, 'compressed.qcow2'), ['-c']));
  await add('disk.qcow2.zstd', await compress('zstd', files['disk.qcow2']!.path, dir));
});

after(async () => {
  await server?.close();
  await disk?.destroy();
  await small?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('formats', () => {
  for (const name of ['disk.raw', 'disk.raw.gzip', 'disk.raw.xz', 'disk.raw.zstd']) {
    test(`${name} streams to the disk byte for byte`, async () => {
      await fillJunk(disk.path, disk.bytes);
      const r = await writeImage(req(name));
      assert.equal(r.format, 'raw');
      assert.equal(r.imageBytes, IMAGE);
      assert.equal(r.digest, files[name]!.sha256);
      await assertImageOnDisk();
    });
  }
  for (const name of [
    'disk.qcow2',
    'v2-4k.qcow2',
    'prealloc.qcow2',
    'big-cluster.qcow2',
    'disk.qcow2.zstd',
  ]) {
    test(`${name} (made by qemu-img) converts while streaming; holes read back as zeros`, async () => {
      await fillJunk(disk.path, disk.bytes);
      const r = await writeImage(req(name, { declaredFormat: 'qcow2' }));
      assert.equal(r.format, 'qcow2');
      assert.equal(r.imageBytes, IMAGE);
      await assertImageOnDisk();
      // Past the virtual size nothing was touched.
      assert.ok((await readDevice(disk.path, IMAGE, MiB)).every((b) => b === 0xaa));
    });
  }
  test('compressed qcow2 clusters are refused with the reason', async () => {
    await assert.rejects(writeImage(req('compressed.qcow2')), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'UNSUPPORTED_IMAGE');
      assert.match(e.message, /compressed clusters/);
      return true;
    });
  });
  test('a qcow2 declared as raw is refused', async () => {
    await assert.rejects(writeImage(req('disk.qcow2', { declaredFormat: 'raw' })), /declared raw/);
  });
  test('odd-length raw image: the unaligned tail is written too', async () => {
    const p = join(dir, 'odd.raw');
    await makeRawImage(p, 3 * MiB + 777);
    await add('odd.raw', p);
    await fillJunk(disk.path, 8 * MiB);
    const r = await writeImage(req('odd.raw'));
    assert.equal(r.imageBytes, 3 * MiB + 777);
    const { readFile } = await import('node:fs/promises');
    assert.ok((await readDevice(disk.path, 0, 3 * MiB + 777)).equals(await readFile(p)));
    assert.equal((await readDevice(disk.path, 3 * MiB + 777, 1))[0], 0xaa);
  });
});

describe('verification', () => {
  test('checksum mismatch fails and wipes the first MiB', async () => {
    await fillJunk(disk.path, disk.bytes);
    const bad = 'f'.repeat(64);
    await assert.rejects(
      writeImage(req('disk.raw.gzip', { checksum: { algo: 'sha256', value: bad } })),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'CHECKSUM_MISMATCH');
        return true;
      },
    );
    assert.ok((await readDevice(disk.path, 0, MiB)).every((b) => b === 0));
    assert.ok((await readDevice(disk.path, disk.bytes - MiB, MiB)).every((b) => b === 0));
  });
  test('sha512 and md5 are computed on the downloaded bytes', async () => {
    const f = files['disk.raw.zstd']!;
    for (const algo of ['sha512', 'md5'] as const) {
      const r = await writeImage(
        req('disk.raw.zstd', { checksum: { algo, value: await sha256File(f.path, algo) } }),
      );
      assert.equal(r.digest, await sha256File(f.path, algo));
    }
  });
  test('a truncated image (short file) fails on length when the size is known, else on checksum', async () => {
    server.serve('short.raw', files['disk.raw']!.path, { truncateTo: 10 * MiB });
    files['short.raw'] = files['disk.raw']!;
    await assert.rejects(
      writeImage(req('short.raw', { expectedBytes: IMAGE })),
      /server says 10485760 bytes/,
    );
    await assert.rejects(writeImage(req('short.raw')), { code: 'CHECKSUM_MISMATCH' });
  });
  test('a body longer than announced/expected fails', async () => {
    server.serve('long.raw', files['disk.raw']!.path, { oversizeBy: 3 * MiB, chunked: true });
    files['long.raw'] = files['disk.raw']!;
    await assert.rejects(writeImage(req('long.raw', { expectedBytes: IMAGE })), /more than the expected/);
  });
});

describe('resume', () => {
  test('a dropped connection resumes with Range + If-Range and the hash carries on', async () => {
    server.serve('drop.raw.xz', files['disk.raw.xz']!.path, { dropAfter: 1_000_000, dropTimes: 2 });
    files['drop.raw.xz'] = files['disk.raw.xz']!;
    await fillJunk(disk.path, disk.bytes);
    const before = server.requests.length;
    const r = await writeImage(req('drop.raw.xz'));
    assert.equal(r.resumes, 2);
    const mine = server.requests.slice(before);
    assert.equal(mine.length, 3);
    assert.equal(mine[1]!.range, 'bytes=1000000-');
    assert.equal(mine[1]!.status, 206);
    assert.ok(mine[1]!.ifRange?.startsWith('"'));
    assert.equal(mine[2]!.range, 'bytes=2000000-');
    await assertImageOnDisk();
  });
  test('a server without Range support cannot be resumed: clear failure, disk wiped', async () => {
    server.serve('norange.raw', files['disk.raw']!.path, { dropAfter: 5 * MiB, noRange: true });
    files['norange.raw'] = files['disk.raw']!;
    await fillJunk(disk.path, disk.bytes);
    await assert.rejects(writeImage(req('norange.raw')), /could not resume at byte 5242880/);
    assert.ok((await readDevice(disk.path, 0, MiB)).every((b) => b === 0));
  });
  test('attempts are bounded', async () => {
    server.serve('flaky.raw', files['disk.raw']!.path, {
      dropAfter: MiB,
      dropTimes: Number.POSITIVE_INFINITY,
    });
    files['flaky.raw'] = files['disk.raw']!;
    await assert.rejects(
      writeImage(req('flaky.raw', { download: { maxAttempts: 3, retryDelayMs: 5 } })),
      /after 3 attempt/,
    );
  });
});

describe('disk size and safety', () => {
  test('a raw image larger than the disk is refused before writing', async () => {
    await fillJunk(small.path, small.bytes);
    await assert.rejects(writeImage(req('disk.raw', { device: small.path, deviceBytes: small.bytes })), {
      code: 'DEVICE_TOO_SMALL',
    });
    assert.ok(
      (await readDevice(small.path, 0, MiB)).every((b) => b === 0xaa),
      'disk was touched',
    );
  });
  test('a qcow2 whose virtual size exceeds the disk is refused from its header', async () => {
    await fillJunk(small.path, small.bytes);
    await assert.rejects(writeImage(req('disk.qcow2', { device: small.path, deviceBytes: small.bytes })), {
      code: 'DEVICE_TOO_SMALL',
    });
    assert.ok(
      (await readDevice(small.path, 0, MiB)).every((b) => b === 0xaa),
      'disk was touched',
    );
  });
  test('a compressed image that overruns the disk fails when it does, and the disk is wiped', async () => {
    await fillJunk(small.path, small.bytes);
    await assert.rejects(writeImage(req('disk.raw.zstd', { device: small.path, deviceBytes: small.bytes })), {
      code: 'DEVICE_TOO_SMALL',
    });
    assert.ok((await readDevice(small.path, 0, MiB)).every((b) => b === 0));
  });
  test('a device outside the guard is never opened', async () => {
    await assert.rejects(writeImage(req('disk.raw', { guard: new TargetGuard([small.path]) })), {
      code: 'TARGET_NOT_ALLOWED',
    });
  });
  test('progress reports bytes, total, rate and ETA', async () => {
    const seen: Progress[] = [];
    server.serve('slow.raw', files['disk.raw.gzip']!.path, { rateBps: 40 * MiB });
    files['slow.raw'] = files['disk.raw.gzip']!;
    await writeImage(req('slow.raw', { progress: (p) => seen.push(p) }));
    const dl = seen.filter((p) => p.phase === 'download');
    assert.ok(dl.length >= 2);
    assert.equal(dl.at(-1)!.bytes_done, dl.at(-1)!.bytes_total);
    assert.ok(dl.some((p) => (p.rate_bps ?? 0) > 0 && p.eta_s !== null));
  });
});
