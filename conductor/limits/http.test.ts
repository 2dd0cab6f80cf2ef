// The rateLimit middleware in a real koa app over HTTP: 429 with Retry-After in Kiln's error
// shape, nothing behind it run for a refused request, and the MAC keys of a lookup and of an
// inspection call-back (read after the body reader, where the call-back's MACs are).
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Koa from 'koa';
import { request } from 'undici';
import { silentLogger } from '../../shared/log.ts';
import { jsonBody } from '../api/http.ts';
import { restErrors } from '../api/rest-errors.ts';
import { macKeys, rateLimit } from './http.ts';

describe('rateLimit over HTTP', () => {
  let server: Server;
  let base: string;
  let handled = 0;

  before(async () => {
    const app = new Koa();
    app.silent = true;
    app.use(restErrors(silentLogger()));
    app.use(jsonBody(1024 * 1024));
    app.use(rateLimit({ perSecond: 0.01, burst: 2, key: macKeys, what: 'MAC' }));
    app.use((ctx) => {
      handled++;
      ctx.body = { ok: true };
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  const cont = async (inventory: unknown, bootInterface?: string) => {
    const r = await request(`${base}/v1/continue`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inventory, boot_interface: bootInterface }),
    });
    return {
      status: r.statusCode,
      retryAfter: r.headers['retry-after'],
      body: (await r.body.json()) as { error: { code: string; message: string } },
    };
  };
  const inv = (...macs: string[]) => ({ interfaces: macs.map((m) => ({ name: 'eth0', mac_address: m })) });

  it('limits inspection call-backs per MAC in the inventory, in any spelling, and runs nothing for a refused one', async () => {
    assert.equal((await cont(inv('52:54:00:00:00:01'))).status, 200);
    assert.equal((await cont(inv('52-54-00-00-00-01'))).status, 200);
    const before = handled;
    const refused = await cont(inv('52:54:00:00:00:01'));
    assert.equal(refused.status, 429);
    assert.equal(refused.retryAfter, '100');
    assert.equal(refused.body.error.code, 'RATE_LIMITED');
    assert.match(refused.body.error.message, /MAC 52:54:00:00:00:01 .*retry after 100 s/);
    assert.equal(handled, before, 'the handler did not run');
    // The PXE BOOTIF spelling of boot_interface is the same MAC.
    assert.equal((await cont(inv('52:54:00:00:00:99'), '01-52-54-00-00-00-01')).status, 429);
    assert.equal((await cont(inv('52:54:00:00:00:02'))).status, 200, 'another MAC is served');
  });

  it('limits lookups per MAC named in addresses, and a request without a MAC not at all', async () => {
    const lookup = async (q: string) => {
      const r = await request(`${base}/v1/lookup?${q}`);
      await r.body.dump();
      return r.statusCode;
    };
    assert.equal(await lookup('addresses=52:54:00:00:01:01,52:54:00:00:01:02'), 200);
    assert.equal(await lookup('addresses=52:54:00:00:01:02'), 200);
    assert.equal(
      await lookup('addresses=52:54:00:00:01:03,52:54:00:00:01:02'),
      429,
      'one spent MAC refuses it',
    );
    assert.equal(await lookup('addresses=52:54:00:00:01:03'), 200, 'the refused request charged nothing');
    for (let i = 0; i < 5; i++) assert.equal(await lookup('node_uuid=x'), 200);
  });
});
