// startConductor: the URLs are known before anything is served, and a conductor that cannot have
// its API port touches nothing.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { silentLogger } from '../shared/log.ts';
import { loadConfig } from './config.ts';
import { FakePowerDriver } from './power/fake.ts';
import { conductorUrls, startConductor } from './server.ts';
import { openSqliteStore } from './store/sqlite.ts';

// The secrets key of conductors these tests start: in a temporary directory, never the repo.
const KEY_FILE = join(mkdtempSync(join(tmpdir(), 'kiln-key-')), 'secrets.key');

const config = (flags: Record<string, unknown> = {}) =>
  loadConfig({
    env: {},
    flags: {
      'api.host': '127.0.0.1',
      'api.port': 0,
      'api.tls.mode': 'off',
      'secrets.key_file': KEY_FILE,
      'provisioning.host': '127.0.0.1',
      'provisioning.port': 0,
      'conductor.power_sync_interval_s': 0,
      ...flags,
    },
  });

describe('startConductor', () => {
  test('ephemeral ports are in every URL it hands out, each listener its own', async () => {
    const store = await openSqliteStore(':memory:');
    const fake = new FakePowerDriver();
    const c = await startConductor(config(), silentLogger(), { store, power: { get: () => fake } });
    try {
      const apiPort = Number(new URL(c.url).port);
      const port = Number(new URL(c.publicUrl).port);
      assert.ok(port > 0 && apiPort > 0);
      assert.notEqual(port, apiPort);
      assert.equal(c.publicUrl, `http://127.0.0.1:${port}`);
      const urls = conductorUrls(c.config, { api: apiPort, provisioning: port }, []);
      assert.equal(urls.url, c.url);
      assert.equal(urls.ramdisk.kernel, `http://127.0.0.1:${port}/boot/files/kernel`);
      assert.equal(urls.ramdisk.api, c.publicUrl);
      assert.equal(
        urls.netboot.scriptUrl('52:54:00:aa:bb:01', { serverIp: '10.0.0.1' }),
        `http://10.0.0.1:${port}/boot/ipxe?mac=52:54:00:aa:bb:01`,
      );
      const script = await (await fetch(`${c.publicUrl}/boot/ipxe?mac=52:54:00:aa:bb:01`)).text();
      assert.doesNotMatch(script, /ipa-api-url=http:\/\/127\.0\.0\.1:0\b/);
      assert.match(script, new RegExp(`ipa-api-url=http://127\\.0\\.0\\.1:${port} `));
      // Nothing of the operator API is on the provisioning port, and the other way round.
      assert.equal((await fetch(`${c.publicUrl}/v1/nodes`)).status, 404);
      const onApi = await fetch(`${c.url}/boot/ipxe?mac=52:54:00:aa:bb:01`);
      assert.equal(onApi.status, 401, 'the operator API wants a token before anything else');
      assert.doesNotMatch(await onApi.text(), /#!ipxe/);
    } finally {
      await c.close();
      await store.close();
    }
  });

  // Regression: the API port used to be bound last, after engine.recover(). A second conductor
  // started by mistake with the same id and database (port already taken) freed the running
  // one's reservations and failed its in-progress nodes, and only then reported the busy port.
  test('a conductor whose API port is taken fails before recovery touches any node', async () => {
    const store = await openSqliteStore(':memory:');
    const fake = new FakePowerDriver();
    const first = await startConductor(config({ 'conductor.id': 'c1' }), silentLogger(), {
      store,
      power: { get: () => fake },
    });
    try {
      const node = await store.nodes.create({
        uuid: randomUUID(),
        driver: 'fake',
        bmc_address: 'fake://bmc',
        provision_state: 'deploying',
      });
      await store.nodes.reserve(node.uuid, 'c1:running-deploy');
      const port = Number(new URL(first.url).port);
      await assert.rejects(
        startConductor(config({ 'conductor.id': 'c1', 'api.port': port }), silentLogger(), {
          store,
          power: { get: () => fake },
        }),
        (e: Error & { code?: string }) => e.code === 'CONFLICT' && /already in use/.test(e.message),
      );
      const after = await store.nodes.get(node.uuid);
      assert.equal(after?.provision_state, 'deploying');
      assert.equal(after?.reservation, 'c1:running-deploy');
    } finally {
      await first.close();
      await store.close();
    }
  });
});
