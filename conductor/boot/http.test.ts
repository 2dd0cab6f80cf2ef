import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Koa from 'koa';
import { silentLogger } from '../../shared/log.ts';
import { createBootRouter, parseRange } from './http.ts';
import { prepareLoaders } from './loaders.ts';

let dir = '';
let base = '';
let server: ReturnType<Koa['listen']>;
const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i & 255));
const asked: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-boot-http-'));
  writeFileSync(join(dir, 'vmlinuz'), body);
  writeFileSync(join(dir, '.hidden'), 'x');
  writeFileSync(join(tmpdir(), 'kiln-outside.txt'), 'outside');
  const app = new Koa();
  const r = createBootRouter({
    filesDir: dir,
    loadersDir: dir,
    log: silentLogger(),
    lookup: async (mac) => {
      asked.push(mac);
      return mac.endsWith('01')
        ? {
            action: 'ramdisk',
            mac,
            kernelUrl: 'http://h/k',
            initrdUrl: 'http://h/i',
            apiUrl: 'http://h:6385',
          }
        : { action: 'local', mac, firmware: 'bios' };
    },
  });
  app.use(r.routes()).use(r.allowedMethods());
  server = app.listen(0, '127.0.0.1');
  await new Promise((res) => server.once('listening', res));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(tmpdir(), 'kiln-outside.txt'), { force: true });
});

describe('boot HTTP router', () => {
  test('renders the script for the MAC from the lookup, every time', async () => {
    const a = await fetch(`${base}/boot/ipxe?mac=52:54:00:00:00:01`);
    assert.equal(a.status, 200);
    assert.match(await a.text(), /^#!ipxe\n[\s\S]*kernel --name kernel http:\/\/h\/k/);
    const b = await fetch(`${base}/boot/ipxe?mac=52-54-00-00-00-02`);
    assert.match(await b.text(), /sanboot --no-describe --drive 0x80/);
    assert.deepEqual(asked.slice(-2), ['52:54:00:00:00:01', '52:54:00:00:00:02']);
    const bad = await fetch(`${base}/boot/ipxe?mac=nope`);
    assert.equal(bad.status, 400);
  });

  test('serves files whole, by range, and HEAD', async () => {
    const whole = await fetch(`${base}/boot/files/vmlinuz`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    assert.deepEqual(Buffer.from(await whole.arrayBuffer()), body);
    const part = await fetch(`${base}/boot/files/vmlinuz`, { headers: { Range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), 'bytes 10-19/1000');
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), body.subarray(10, 20));
    const tail = await fetch(`${base}/boot/files/vmlinuz`, { headers: { Range: 'bytes=-5' } });
    assert.deepEqual(Buffer.from(await tail.arrayBuffer()), body.subarray(995));
    const open = await fetch(`${base}/boot/files/vmlinuz`, { headers: { Range: 'bytes=990-' } });
    assert.equal(open.headers.get('content-range'), 'bytes 990-999/1000');
    const bad = await fetch(`${base}/boot/files/vmlinuz`, { headers: { Range: 'bytes=1000-' } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get('content-range'), 'bytes */1000');
    const head = await fetch(`${base}/boot/files/vmlinuz`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '1000');
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    assert.equal((await fetch(`${base}/boot/loaders/vmlinuz`)).status, 200);
  });

  test('no traversal, no dot files', async () => {
    for (const p of ['..%2fkiln-outside.txt', '%2e%2e%2fkiln-outside.txt', '.hidden', 'nope']) {
      const r = await fetch(`${base}/boot/files/${p}`);
      assert.equal(r.status, 404, p);
    }
  });

  test('a missing ramdisk answers 404 saying how to build it', async () => {
    for (const name of ['kernel', 'initramfs']) {
      const r = await fetch(`${base}/boot/files/${name}`);
      assert.equal(r.status, 404);
      assert.equal(
        await r.text(),
        `no ramdisk in ${dir} (${name} missing); build it: kiln ramdisk build --out ${dir}, or point boot.ramdisk_dir at a build\n`,
      );
    }
    assert.equal(await (await fetch(`${base}/boot/files/nope`)).text(), 'no such boot file: nope\n');
  });

  test('a configured loader linking out of the loaders folder is served over HTTP, other links are not', async () => {
    const out = mkdtempSync(join(tmpdir(), 'kiln-boot-http-out-'));
    const loaders = join(out, 'tftp');
    mkdirSync(loaders);
    writeFileSync(join(out, 'ipxe.efi'), 'efi');
    symlinkSync(join(out, 'ipxe.efi'), join(loaders, 'ipxe.efi'));
    symlinkSync(join(out, 'ipxe.efi'), join(loaders, 'snp.efi'));
    const app = new Koa();
    const r = createBootRouter({
      filesDir: out,
      loadersDir: loaders,
      log: silentLogger(),
      lookup: async () => ({ action: 'ignore', mac: '' }),
    });
    app.use(r.routes());
    const srv = app.listen(0, '127.0.0.1');
    await new Promise((res) => srv.once('listening', res));
    const at = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/boot/loaders`;
    const prepared = await prepareLoaders({ efiX64: 'ipxe.efi' }, loaders);
    try {
      const ok = await fetch(`${at}/ipxe.efi`);
      assert.equal(ok.status, 200);
      assert.equal(await ok.text(), 'efi');
      assert.equal((await fetch(`${at}/snp.efi`)).status, 404);
    } finally {
      prepared.release();
      srv.close();
      rmSync(out, { recursive: true, force: true });
    }
  });

  test('parseRange', () => {
    assert.equal(parseRange(undefined, 10), null);
    assert.equal(parseRange('bytes=0-1,3-4', 10), null);
    assert.deepEqual(parseRange('bytes=5-100', 10), { start: 5, end: 9 });
    assert.equal(parseRange('bytes=7-3', 10), 'unsatisfiable');
    assert.equal(parseRange('bytes=-0', 10), 'unsatisfiable');
  });
});
