// Each route group of the conductor's one port answers errors in its own wire's shape.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type Koa from 'koa';
import { silentLogger } from '../../shared/log.ts';
import { createBootRouter } from '../boot/http.ts';
import { createRamdiskRouter } from '../ramdisk/ramdisk-api.ts';
import type { Store } from '../store/store.ts';
import { type ApiDeps, createApp } from './app.ts';

let server: ReturnType<Koa['listen']>;
let base = '';

before(async () => {
  const store = {} as Store;
  const app = createApp({
    store,
    nodes: {} as ApiDeps['nodes'],
    engine: {} as ApiDeps['engine'],
    log: silentLogger(),
    bodyLimit: 64,
    extraRouters: [
      createRamdiskRouter({ store, log: silentLogger(), fastTrack: false }),
      createBootRouter({
        filesDir: '/nonexistent',
        log: silentLogger(),
        lookup: async () => {
          throw new Error('store unreachable');
        },
      }),
    ],
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

const json = { 'content-type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.68' };

describe('one error path per wire on one port', () => {
  test('a heartbeat with a bad body answers in Ironic’s shape, not Kiln’s (was {error:{…}})', async () => {
    const bad = await fetch(`${base}/v1/heartbeat/n1`, { method: 'POST', headers: json, body: '{nope' });
    assert.equal(bad.status, 400);
    const body = (await bad.json()) as { error_message: string };
    assert.match(JSON.parse(body.error_message).faultstring, /^Invalid JSON body: /);
    assert.equal(bad.headers.get('x-openstack-ironic-api-version'), '1.68');
    // The REST limit (64 bytes here) is the REST wire's; the ramdisk API reads its own bodies.
    const big = await fetch(`${base}/v1/heartbeat/n1`, {
      method: 'POST',
      headers: { ...json, 'content-type': 'text/plain' },
      body: 'x'.repeat(100),
    });
    assert.equal(big.status, 415);
    assert.ok('error_message' in ((await big.json()) as object));
  });
  test('a failing boot script lookup answers an iPXE script that retries (was a JSON 500)', async () => {
    const res = await fetch(`${base}/boot/ipxe?mac=52:54:00:00:00:01`);
    assert.equal(res.status, 500);
    const text = await res.text();
    assert.match(text, /^#!ipxe\necho Kiln: internal error/);
    assert.match(
      text,
      /\nchain --replace --autofree http:\/\/127\.0\.0\.1:\d+\/boot\/ipxe\?mac=52:54:00:00:00:01\n$/,
    );
  });
  test('a missing boot file is plain text; REST errors and unclaimed paths are Kiln’s shape', async () => {
    const file = await fetch(`${base}/boot/files/kernel`);
    assert.equal(file.status, 404);
    assert.match(await file.text(), /^no ramdisk in \/nonexistent/);
    const rest = await fetch(`${base}/v1/nodes`, { method: 'POST', headers: json, body: 'x'.repeat(100) });
    assert.equal(rest.status, 413);
    assert.equal(((await rest.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
    const none = await fetch(`${base}/nowhere`);
    assert.equal(none.status, 404);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  });
});
