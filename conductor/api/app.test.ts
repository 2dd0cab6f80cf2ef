// Each route group answers errors in its own wire's shape; each listener serves its own routes.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type Koa from 'koa';
import { silentLogger } from '../../shared/log.ts';
import { createBootRouter } from '../boot/http.ts';
import { createRamdiskRouter } from '../ramdisk/ramdisk-api.ts';
import type { Store } from '../store/store.ts';
import { type ApiDeps, createApp, createProvisioningApp } from './app.ts';

let servers: ReturnType<Koa['listen']>[] = [];
let base = '';
let operator = '';

async function listen(app: Koa): Promise<string> {
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((ok) => server.once('listening', ok));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

before(async () => {
  const store = {} as Store;
  base = await listen(
    createProvisioningApp({
      log: silentLogger(),
      routers: [
        createRamdiskRouter({ store, log: silentLogger(), fastTrack: false }),
        createBootRouter({
          filesDir: '/nonexistent',
          log: silentLogger(),
          lookup: async () => {
            throw new Error('store unreachable');
          },
        }),
      ],
    }),
  );
  operator = await listen(
    createApp({
      store,
      nodes: {} as ApiDeps['nodes'],
      engine: {} as ApiDeps['engine'],
      log: silentLogger(),
      bodyLimit: 64,
      auth: false,
    }),
  );
});
after(() => {
  for (const s of servers) s.close();
  servers = [];
});

const json = { 'content-type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.68' };

describe('one error path per wire', () => {
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
    const rest = await fetch(`${operator}/v1/nodes`, {
      method: 'POST',
      headers: json,
      body: 'x'.repeat(100),
    });
    assert.equal(rest.status, 413);
    assert.equal(((await rest.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
    const none = await fetch(`${base}/nowhere`);
    assert.equal(none.status, 404);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  });
});

describe('two listeners, each with its own routes', () => {
  test('the provisioning endpoints serve no operator route', async () => {
    const res = await fetch(`${base}/v1/nodes`, { method: 'POST', headers: json, body: '{}' });
    assert.equal(res.status, 404);
    for (const path of ['/v1/nodes', '/v1/tokens', '/v1/openapi.json'])
      assert.equal((await fetch(`${base}${path}`)).status, 404, path);
    // Version discovery is on both: an agent negotiates its microversion there.
    assert.equal((await fetch(`${base}/`)).status, 200);
  });
  test('the operator API serves no ramdisk route', async () => {
    assert.equal((await fetch(`${operator}/v1/lookup?addresses=52:54:00:00:00:01`)).status, 404);
    assert.equal((await fetch(`${operator}/boot/ipxe?mac=52:54:00:00:00:01`)).status, 404);
  });
});
