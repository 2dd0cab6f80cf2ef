// The REST API over real HTTP: CRUD, actions, errors in one shape, nothing written on bad input,
// and no secret in any response or log line.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ImageCreate,
  MaintenanceRequest,
  NodeCreate,
  NodeUpdate,
  PortCreate,
  PowerRequest,
  ProvisionRequest,
} from '../../shared/wire/api.ts';
import { startTestConductor, type TestConductor } from '../support/conductor.ts';

const SECRET = 'Sup3r-s3cret-P@ss';

describe('conductor REST API', () => {
  let c: TestConductor;
  before(async () => {
    c = await startTestConductor();
  });
  after(() => c.close());

  it('serves Ironic-style version documents for ramdisks', async () => {
    const root = await c.call('GET', '/');
    assert.equal(root.status, 200);
    assert.equal(root.body.default_version.id, 'v1');
    assert.ok(Number(root.body.default_version.version.split('.')[1]) >= 68);
    const v1 = await c.call('GET', '/v1');
    assert.equal(v1.status, 200);
    assert.equal(v1.body.id, 'v1');
  });

  it('serves an OpenAPI document that describes the node and image schemas', async () => {
    const r = await c.call('GET', '/v1/openapi.json');
    assert.equal(r.status, 200);
    assert.equal(r.body.openapi, '3.1.0');
    assert.ok(r.body.paths['/v1/nodes/{ident}/states/provision'].put);
    assert.ok(r.body.components.schemas.NodeCreate.properties.bmc_address);
    assert.ok(r.body.components.schemas.ImageCreate.required.includes('checksum'));
  });

  it('creates, shows, lists, updates and deletes nodes', async () => {
    const created = await c.call('POST', '/v1/nodes', {
      name: 'rack1-u01',
      bmc_address: `ipmi://admin:${SECRET}@10.0.0.5:623`,
      ports: ['52:54:00:AA:BB:01'],
      properties: { cpu_arch: 'x86_64' },
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.driver, 'ipmi');
    assert.equal(created.body.bmc_address, 'ipmi://admin@10.0.0.5:623');
    assert.equal(created.body.bmc_password, '******');
    assert.equal(created.body.provision_state, 'enroll');
    assert.deepEqual(created.body.ports, ['52:54:00:aa:bb:01']);

    const shown = await c.call('GET', '/v1/nodes/rack1-u01');
    assert.equal(shown.body.uuid, created.body.uuid);
    const list = await c.call('GET', '/v1/nodes?limit=10');
    assert.ok(list.body.nodes.some((n: { uuid: string }) => n.uuid === created.body.uuid));

    const updated = await c.call('PATCH', `/v1/nodes/${created.body.uuid}`, {
      name: 'rack1-u02',
      properties: { memory_mb: 4096 },
    });
    assert.equal(updated.status, 200);
    assert.equal(updated.body.name, 'rack1-u02');
    assert.deepEqual(updated.body.properties, { cpu_arch: 'x86_64', memory_mb: 4096 });

    const del = await c.call('DELETE', '/v1/nodes/rack1-u02');
    assert.equal(del.status, 204);
    const gone = await c.call('GET', '/v1/nodes/rack1-u02');
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 'NOT_FOUND');
    assert.match(gone.body.error.message, /node rack1-u02 not found/);
  });

  it('drives a fake node through its lifecycle and records events', async () => {
    const img = await c.call('POST', '/v1/images', {
      name: 'demo',
      url: 'http://127.0.0.1:1/demo.raw',
      checksum: `sha256:${'ab'.repeat(32)}`,
    });
    assert.equal(img.status, 201);
    const n = (await c.call('POST', '/v1/nodes', { name: 'life', bmc_address: 'fake://life' })).body;
    for (const [target, want] of [
      ['manage', 'manageable'],
      ['provide', 'available'],
      ['deploy', 'active'],
      ['undeploy', 'available'],
    ] as const) {
      const r = await c.call('PUT', `/v1/nodes/${n.uuid}/states/provision`, {
        target,
        image: target === 'deploy' ? 'demo' : undefined,
      });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      await c.engine.drain();
      assert.equal((await c.call('GET', `/v1/nodes/${n.uuid}`)).body.provision_state, want);
    }
    const ev = await c.call('GET', `/v1/nodes/${n.uuid}/events?limit=100`);
    const names = ev.body.events.map((e: { event: string }) => e.event);
    for (const e of ['create', 'manage', 'provide', 'deploy', 'undeploy', 'done'])
      assert.ok(names.includes(e), e);
  });

  it('answers an illegal action with 409 naming the allowed ones', async () => {
    const n = (await c.call('POST', '/v1/nodes', { name: 'illegal', bmc_address: 'fake://x' })).body;
    const r = await c.call('PUT', `/v1/nodes/${n.uuid}/states/provision`, {
      target: 'deploy',
      image: 'demo',
    });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'INVALID_STATE');
    assert.match(
      r.body.error.message,
      /illegal .* is enroll: 'deploy' is not allowed there; allowed: manage/,
    );
    assert.deepEqual(r.body.error.details.allowed_actions, ['manage']);
  });

  it('powers nodes through the driver', async () => {
    const n = (await c.call('POST', '/v1/nodes', { name: 'pw', bmc_address: 'fake://pw' })).body;
    const on = await c.call('PUT', `/v1/nodes/pw/states/power`, { target: 'power on' });
    assert.equal(on.status, 200);
    assert.equal(on.body.power_state, 'power on');
    const st = await c.call('GET', `/v1/nodes/${n.uuid}/states/power`);
    assert.equal(st.body.power_state, 'power on');
  });

  it('puts nodes in and out of maintenance', async () => {
    await c.call('POST', '/v1/nodes', { name: 'mnt', bmc_address: 'fake://mnt' });
    const on = await c.call('PUT', '/v1/nodes/mnt/maintenance', { reason: 'fan failure' });
    assert.equal(on.body.maintenance, true);
    const blocked = await c.call('PUT', '/v1/nodes/mnt/states/provision', { target: 'manage' });
    assert.equal(blocked.status, 409);
    assert.equal(blocked.body.error.code, 'IN_MAINTENANCE');
    const off = await c.call('DELETE', '/v1/nodes/mnt/maintenance');
    assert.equal(off.body.maintenance, false);
  });

  it('manages ports and refuses duplicate MACs', async () => {
    await c.call('POST', '/v1/nodes', { name: 'ports' });
    const p = await c.call('POST', '/v1/ports', { node: 'ports', address: '52-54-00-00-00-99' });
    assert.equal(p.status, 201);
    assert.equal(p.body.address, '52:54:00:00:00:99');
    const dup = await c.call('POST', '/v1/ports', { node: 'ports', address: '52:54:00:00:00:99' });
    assert.equal(dup.status, 409);
    assert.match(dup.body.error.message, /52:54:00:00:00:99 already belongs to node/);
    const byMac = await c.call('GET', '/v1/ports?address=52:54:00:00:00:99');
    assert.equal(byMac.body.ports.length, 1);
    assert.equal((await c.call('DELETE', '/v1/ports/52:54:00:00:00:99')).status, 204);
  });

  it('accepts a bare hex checksum, inferring sha256 or sha512 from its length', async () => {
    const cases = [
      ['bare256', 'AB'.repeat(32), 'sha256', 'ab'.repeat(32)],
      ['bare512', 'cd'.repeat(64), 'sha512', 'cd'.repeat(64)],
      ['prefixed', `md5:${'ef'.repeat(16)}`, 'md5', 'ef'.repeat(16)],
    ] as const;
    for (const [name, checksum, algo, hex] of cases) {
      const r = await c.call('POST', '/v1/images', { name, url: 'http://127.0.0.1:1/x.raw', checksum });
      assert.equal(r.status, 201, `${checksum}: ${r.text}`);
      assert.equal(r.body.checksum_algo, algo);
      assert.equal(r.body.checksum, hex);
    }
  });

  it('refuses a bare hex checksum of another length with a 400 saying what is accepted', async () => {
    const r = await c.call('POST', '/v1/images', {
      name: 'sha1ish',
      url: 'http://127.0.0.1:1/x.raw',
      checksum: 'a'.repeat(40),
    });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body.error.code, 'VALIDATION_FAILED');
    assert.match(r.body.error.message, /checksum: .*40 hex digits/);
    assert.match(r.body.error.message, /sha256:HEX.*64 hex digits.*128/);
    assert.equal(r.body.error.details[0].path, 'checksum');
  });

  it('never answers 5xx to a body with a field of the wrong type or shape', async () => {
    const n = (await c.call('POST', '/v1/nodes', { name: 'fuzz', bmc_address: 'fake://fuzz' })).body;
    const odd = [
      null,
      0,
      -1,
      1.5,
      true,
      '',
      'x',
      ':',
      'sha256:',
      'a'.repeat(40),
      'x'.repeat(5000),
      [],
      {},
      [1],
    ];
    // Each field goes wrong alone in an otherwise valid body (so validation reaches the
    // cross-field checks) and in an empty one.
    const endpoints = [
      ['POST', '/v1/nodes', NodeCreate, {}],
      ['PATCH', `/v1/nodes/${n.uuid}`, NodeUpdate, {}],
      ['PUT', `/v1/nodes/${n.uuid}/states/provision`, ProvisionRequest, { target: 'abort' }],
      ['PUT', `/v1/nodes/${n.uuid}/states/power`, PowerRequest, { target: 'power on' }],
      ['PUT', `/v1/nodes/${n.uuid}/maintenance`, MaintenanceRequest, {}],
      ['POST', '/v1/ports', PortCreate, { node: n.uuid, address: '52:54:00:ff:ff:01' }],
      ['POST', '/v1/images', ImageCreate, { name: 'fz', url: 'http://x/y', checksum: 'a'.repeat(64) }],
    ] as const;
    const failures: string[] = [];
    for (const [method, path, schema, base] of endpoints) {
      const bodies: unknown[] = [...odd];
      for (const field of Object.keys(schema.shape))
        for (const v of odd) bodies.push({ [field]: v }, { ...base, [field]: v });
      for (const body of bodies) {
        const r = await c.call(method, path, body);
        if (r.status >= 500)
          failures.push(`${method} ${path} ${JSON.stringify(body).slice(0, 90)}: ${r.status}`);
      }
      await c.engine.drain();
    }
    assert.deepEqual(failures, []);
  });

  describe('bad input: 400 with a message, nothing written', () => {
    const cases: [string, string, unknown, { body: string; contentType?: string }?][] = [
      ['POST', '/v1/nodes', undefined, { body: '{"name": "x",' }],
      ['POST', '/v1/nodes', undefined, { body: 'name=x', contentType: 'application/x-www-form-urlencoded' }],
      ['POST', '/v1/nodes', { name: 'a b' }],
      ['POST', '/v1/nodes', { name: 'ok', bogus: 1 }],
      ['POST', '/v1/nodes', { name: 'ok', bmc_address: 'telnet://x' }],
      ['POST', '/v1/nodes', { name: 'ok', bmc_address: 'not a url' }],
      ['POST', '/v1/nodes', { name: 'ok', ports: ['zz:zz'] }],
      ['POST', '/v1/nodes', { name: 'ok', properties: 'x' }],
      ['POST', '/v1/nodes', [1, 2]],
      ['PATCH', '/v1/nodes/victim', { name: 7 }],
      ['PATCH', '/v1/nodes/victim', { provision_state: 'active' }],
      ['PATCH', '/v1/nodes/victim', { bmc_address: 'ftp://x' }],
      ['PUT', '/v1/nodes/victim/states/provision', { target: 'explode' }],
      ['PUT', '/v1/nodes/victim/states/provision', {}],
      ['PUT', '/v1/nodes/victim/states/power', { target: 'power sideways' }],
      ['PUT', '/v1/nodes/victim/maintenance', { reason: 5 }],
      ['GET', '/v1/nodes?limit=0', undefined],
      ['GET', '/v1/nodes?provision_state=flying', undefined],
      ['GET', '/v1/nodes/victim/events?limit=-1', undefined],
      ['POST', '/v1/ports', { node: 'victim', address: 'nope' }],
      ['POST', '/v1/ports', { address: '52:54:00:00:00:01' }],
      ['POST', '/v1/images', { name: 'i', url: 'ftp://x/y', checksum: `sha256:${'a'.repeat(64)}` }],
      ['POST', '/v1/images', { name: 'i', url: 'http://x/y', checksum: 'sha256:abc' }],
      ['POST', '/v1/images', { name: 'i', url: 'http://x/y', checksum: `crc32:${'a'.repeat(8)}` }],
      ['POST', '/v1/images', { name: 'i', url: 'http://x/y', checksum: 'a'.repeat(40) }],
      ['POST', '/v1/images', { name: 'i', url: 'http://x/y', checksum: 'g'.repeat(64) }],
      ['POST', '/v1/images', { name: 'i', url: 'http://x/y', checksum: 5 }],
      ['POST', '/v1/images', { name: 'i', url: 'http://x/y' }],
      [
        'POST',
        '/v1/images',
        { name: 'i', url: 'http://x/y', checksum: `sha256:${'a'.repeat(64)}`, size: -1 },
      ],
    ];

    const counts = async () => ({
      nodes: await c.store.nodes.count(),
      ports: (await c.store.ports.list({ limit: 100000 })).length,
      images: (await c.store.images.list()).length,
      victimEvents: (
        await c.store.events.list((await c.store.nodes.getByName('victim'))!.uuid, { limit: 10000 })
      ).length,
      victim: JSON.stringify({ ...(await c.store.nodes.getByName('victim')), updated_at: 0 }),
    });

    before(async () => {
      await c.call('POST', '/v1/nodes', { name: 'victim', bmc_address: 'fake://victim' });
    });

    for (const [method, path, body, raw] of cases) {
      it(`${method} ${path} ${raw ? raw.body : JSON.stringify(body)}`, async () => {
        const before = await counts();
        const r = await c.call(method, path, body, raw);
        assert.ok([400, 413, 415].includes(r.status), `status ${r.status}: ${r.text}`);
        assert.equal(r.body.error.code, 'VALIDATION_FAILED');
        assert.ok(r.body.error.message.length > 10, r.body.error.message);
        assert.deepEqual(await counts(), before);
      });
    }

    it('an oversized body is refused with 413', async () => {
      const r = await c.call('POST', '/v1/nodes', undefined, {
        body: JSON.stringify({ name: 'big', extra: { x: 'a'.repeat(2 * 1024 * 1024) } }),
      });
      assert.equal(r.status, 413);
    });
  });

  it('never shows a secret in any response or log line', async () => {
    const n = await c.call('POST', '/v1/nodes', {
      name: 'secretive',
      bmc_address: 'redfish+https://bmc.example/redfish/v1/Systems/1',
      bmc_password: SECRET,
    });
    await c.call('PATCH', '/v1/nodes/secretive', { bmc_password: SECRET });
    await c.call('POST', '/v1/nodes', { name: 'secretive', bmc_password: SECRET });
    await c.call('PATCH', '/v1/nodes/secretive', { bmc_address: `ipmi://root:${SECRET}@10.1.1.1` });
    const texts = [
      n.text,
      (await c.call('GET', '/v1/nodes/secretive')).text,
      (await c.call('GET', '/v1/nodes?detail=true')).text,
      (await c.call('GET', '/v1/nodes/secretive/events')).text,
      (await c.call('PUT', '/v1/nodes/secretive/states/power', { target: 'power on' })).text,
    ];
    for (const t of texts) assert.ok(!t.includes(SECRET), t);
    const stored = await c.store.nodes.getByName('secretive');
    assert.equal(stored!.bmc_password, SECRET, 'the secret is kept for the BMC');
    assert.ok(c.logs.length > 0);
    for (const line of c.logs) assert.ok(!line.includes(SECRET), line);
  });
});
