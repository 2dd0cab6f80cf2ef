// Lookup and heartbeat rules of Ironic 21.4.4, over HTTP on loopback with the SQLite store.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import Koa from 'koa';
import { silentLogger } from '../../shared/log.ts';
import { waitFor } from '../../test/support/wait.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import type { NodeRecord, Store } from '../store/store.ts';
import {
  createRamdiskRouter,
  maskSecrets,
  normaliseIp,
  recordingHeartbeats,
  requestedVersion,
  sameSecret,
  versionRouter,
  wipeAgentToken,
} from './ramdisk-api.ts';

let store: Store;
let url: string;
let server: ReturnType<Koa['listen']>;
const handled: string[] = [];
let fastTrack = false;

before(async () => {
  store = await openSqliteStore(':memory:');
  const app = new Koa();
  const r = createRamdiskRouter({
    store,
    log: silentLogger(),
    fastTrack: () => fastTrack,
    heartbeatTimeoutS: 123,
    securityLockWaitMs: 2000,
    heartbeats: recordingHeartbeats(store, 'test', (n) => handled.push(n.uuid)),
  });
  for (const x of [versionRouter(), r]) app.use(x.routes());
  server = app.listen(0, '127.0.0.1');
  await new Promise((res) => server.once('listening', res));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.close();
  await store.close();
});

let n = 0;
async function node(
  state: string,
  extra: Partial<NodeRecord> & { bootedRamdisk?: boolean } = {},
): Promise<{ uuid: string; mac: string }> {
  n++;
  const uuid = `6f1c2a34-8b0e-4d55-9a61-${String(n).padStart(12, '0')}`;
  const mac = `52:54:00:00:00:${n.toString(16).padStart(2, '0')}`;
  await store.nodes.create({
    uuid,
    name: `node-${n}`,
    driver: 'fake',
    provision_state: state as NodeRecord['provision_state'],
    instance_info: {
      image_source: 'http://img/x.raw',
      image_url: 'http://secret-temp-url',
      configdrive: 'H4sI',
    },
    driver_internal_info: extra.driver_internal_info ?? { is_whole_disk_image: true },
    properties: { cpu_arch: 'x86_64' },
  });
  await store.ports.create({ uuid: crypto.randomUUID(), address: mac, node_uuid: uuid });
  if (extra.bootedRamdisk) {
    // What the agent workflow's bootRamdisk leaves behind.
    await store.nodes.update(uuid, { power_state: 'power on' });
    await store.events.add({ node_uuid: uuid, event: 'boot_ramdisk', actor: 't', result: 'info' });
  }
  return { uuid, mac };
}

const V = (v: string) => ({ 'X-OpenStack-Ironic-API-Version': v });
async function lookup(q: string, headers: Record<string, string> = V('1.62')) {
  const r = await fetch(`${url}/v1/lookup?${q}`, { headers });
  return { status: r.status, body: (await r.json()) as Record<string, unknown>, headers: r.headers };
}
async function heartbeat(ident: string, body: unknown, headers: Record<string, string> = V('1.68')) {
  const r = await fetch(`${url}/v1/heartbeat/${ident}`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
  });
  const text = await r.text();
  return {
    status: r.status,
    text,
    fault: text ? (JSON.parse(JSON.parse(text).error_message ?? '{}').faultstring as string) : '',
  };
}
const faultOf = (b: Record<string, unknown>) =>
  JSON.parse(String(b.error_message)) as Record<string, unknown>;

describe('lookup', () => {
  beforeEach(() => {
    fastTrack = false;
  });

  test('finds the node by any MAC, hands out the token once', async () => {
    const { uuid, mac } = await node('clean wait');
    const first = await lookup(`addresses=02:00:00:00:00:99,${mac.toUpperCase().replace(/:/g, '-')}`);
    assert.equal(first.status, 200);
    const body = first.body as { node: Record<string, unknown>; config: Record<string, unknown> };
    assert.deepEqual(Object.keys(body.node).sort(), [
      'driver_internal_info',
      'instance_info',
      'links',
      'properties',
      'uuid',
    ]);
    assert.equal(body.node.uuid, uuid);
    assert.equal((body.config.agent_token as string).length, 43);
    assert.match(body.config.agent_token as string, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(body.config.agent_token_required, true);
    assert.equal(body.config.heartbeat_timeout, 123);
    assert.deepEqual((body.node.instance_info as Record<string, unknown>).image_url, '******');
    assert.deepEqual((body.node.instance_info as Record<string, unknown>).configdrive, '******');
    assert.equal((body.node.driver_internal_info as Record<string, unknown>).agent_secret_token, '******');
    assert.equal(first.headers.get('x-openstack-ironic-api-version'), '1.62');
    const stored = await store.nodes.get(uuid);
    assert.equal(stored!.driver_internal_info.agent_secret_token, body.config.agent_token);

    // A UUID alone names nobody (UUIDs are public), with or without a token out.
    const byUuid = await lookup(`node_uuid=${uuid}`);
    assert.equal(byUuid.status, 404);
    assert.equal((await store.nodes.get(uuid))!.provision_state, 'clean wait');

    // One token per boot: a second lookup gets "******", and the cleaning node fails.
    const again = await lookup(`addresses=${mac}`);
    assert.equal(again.status, 200);
    assert.equal((again.body.config as Record<string, unknown>).agent_token, '******');
    const failed = await waitFor('the node to fail', async () => {
      const x = await store.nodes.get(uuid);
      return x?.provision_state === 'clean failed' ? x : undefined;
    });
    assert.match(failed.last_error!, /^security: a second ramdisk lookup from 127\.0\.0\.1/);
    assert.equal(failed.driver_internal_info.agent_secret_token, undefined, 'the agent is forgotten');
    const ev = (await store.events.list(uuid)).filter((e) => e.event === 'security');
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!.result, 'error');
  });

  test('a pregenerated token: the UUID alone finds the node, "******" once, then a security event', async () => {
    const { uuid } = await node('deploying', {
      driver_internal_info: { agent_secret_token: 'p'.repeat(43), agent_secret_token_pregenerated: true },
    });
    const first = await lookup(`node_uuid=${uuid}`);
    assert.equal(first.status, 200);
    assert.equal((first.body.config as Record<string, unknown>).agent_token, '******');
    assert.equal((await store.events.list(uuid)).filter((e) => e.event === 'security').length, 0);
    await lookup(`node_uuid=${uuid}`);
    await waitFor(
      'the node to fail',
      async () => (await store.nodes.get(uuid))?.provision_state === 'deploy failed',
    );
  });

  test('the node view hides secrets: token, image URLs, config drive, credentials in URLs', async () => {
    const { uuid, mac } = await node('clean wait');
    await store.nodes.update(uuid, {
      instance_info: {
        image_source: 'https://user:pw@img.example/x.raw?X-Amz-Signature=abc&v=1',
        image_url: 'http://secret-temp-url',
        configdrive: {
          user_data: '#cloud-config\nchpasswd: {list: "root:hunter2"}',
          public_keys: { k: 'ssh-ed25519 AAA' },
        },
        root_password: 'hunter2',
        user_data: 'hunter2',
      },
      driver_internal_info: {
        clean_step: { args: { url: 'http://a:hunter2@x/' } },
        deploy_token_x: 'hunter2',
      },
    });
    const r = await lookup(`addresses=${mac}`);
    const view = JSON.stringify((r.body as { node: unknown }).node);
    for (const secret of [
      'hunter2',
      'pw@',
      'abc',
      'secret-temp-url',
      'ssh-ed25519',
      String((r.body.config as Record<string, unknown>).agent_token),
    ])
      assert.ok(!view.includes(secret), `${secret} must not reach the agent's node view: ${view}`);
    assert.match(view, /img\.example\/x\.raw/, 'the origin and path stay');
  });

  test('below 1.62 no token is generated; below 1.22 and without a header: 404', async () => {
    const { uuid, mac } = await node('wait call-back');
    const old = await lookup(`addresses=${mac}`, V('1.31'));
    assert.equal(old.status, 200);
    assert.equal((old.body.config as Record<string, unknown>).agent_token, null);
    assert.equal((await store.nodes.get(uuid))!.driver_internal_info.agent_secret_token, undefined);
    assert.equal((await lookup(`addresses=${mac}`, V('1.21'))).status, 404);
    assert.equal((await lookup(`addresses=${mac}`, {})).status, 404, 'no header means the minimum, 1.1');
    assert.equal((await lookup(`addresses=${mac}`, V('1.99'))).status, 406);
    assert.equal((await lookup(`addresses=${mac}`, V('latest'))).status, 200);
  });

  test('400 without any valid MAC or UUID; 404 alike for unknown and wrong state', async () => {
    const bad = await lookup('addresses=zz:zz,foo');
    assert.equal(bad.status, 400);
    assert.deepEqual(faultOf(bad.body), {
      faultcode: 'Client',
      faultstring: "At least one of 'addresses' and 'node_uuid' parameters is required",
      debuginfo: null,
    });
    assert.equal((await lookup('node_uuid=not-a-uuid')).status, 400);
    const unknown = await lookup('addresses=02:00:00:00:00:42');
    const { mac } = await node('active');
    const wrong = await lookup(`addresses=${mac}`);
    assert.equal(unknown.status, 404);
    assert.equal(wrong.status, 404);
    assert.deepEqual(unknown.body, wrong.body);
  });

  test('fast-track admits enroll/manageable/available', async () => {
    const { mac } = await node('manageable', { bootedRamdisk: true });
    assert.equal((await lookup(`addresses=${mac}`)).status, 404);
    fastTrack = true;
    assert.equal((await lookup(`addresses=${mac}`)).status, 200);
    // Only while a ramdisk the conductor booted runs: not on a node it never booted one on,
    // nor once it was powered off (or on again by hand) since.
    const never = await node('available', { power_state: 'power on' });
    await store.nodes.update(never.uuid, { power_state: 'power on' });
    assert.equal((await lookup(`addresses=${never.mac}`)).status, 404);
    const cycled = await node('available', { bootedRamdisk: true });
    await store.events.add({
      node_uuid: cycled.uuid,
      event: 'power',
      actor: 't',
      result: 'ok',
      message: 'power on',
    });
    assert.equal((await lookup(`addresses=${cycled.mac}`)).status, 404);
    const off = await node('available', { bootedRamdisk: true });
    await store.nodes.update(off.uuid, { power_state: 'power off' });
    assert.equal((await lookup(`addresses=${off.mac}`)).status, 404);
  });

  test('409 when the node is locked and has no token yet', async () => {
    const { uuid, mac } = await node('clean wait');
    await store.nodes.reserve(uuid, 'engine-1');
    const r = await lookup(`addresses=${mac}`);
    assert.equal(r.status, 409);
    assert.match(String(faultOf(r.body).faultstring), /is locked by host engine-1/);
    await store.nodes.release(uuid, 'engine-1');
  });
});

describe('heartbeat', () => {
  const hb = (token: string, extra: Record<string, unknown> = {}) => ({
    callback_url: 'http://127.0.0.1:9999',
    agent_token: token,
    agent_version: '9.4.3',
    ...extra,
  });

  async function withToken(state = 'clean wait', bootedRamdisk = false) {
    const x = await node(state, { bootedRamdisk });
    const r = await lookup(`addresses=${x.mac}`);
    return { ...x, token: (r.body.config as Record<string, unknown>).agent_token as string };
  }

  test('202, recorded, engine called', async () => {
    const { uuid, token } = await withToken();
    const r = await heartbeat(uuid, hb(token));
    assert.equal(r.status, 202);
    assert.equal(r.text, '');
    const dii = (await store.nodes.get(uuid))!.driver_internal_info;
    assert.equal(dii.agent_url, 'http://127.0.0.1:9999');
    assert.equal(dii.agent_version, '9.4.3');
    assert.ok(Date.now() - Date.parse(String(dii.agent_last_heartbeat)) < 5000);
    await waitFor('the engine to be called', () => handled.includes(uuid));
    // by name too
    assert.equal((await heartbeat(`node-${n}`, hb(token))).status, 202);
  });

  test('validation order and messages', async () => {
    const { uuid, token } = await withToken();
    assert.equal((await heartbeat(uuid, hb(token), V('1.21'))).status, 404);
    assert.deepEqual(await heartbeat(uuid, hb(token), V('1.35')).then((r) => [r.status, r.fault]), [
      400,
      'Field "agent_version" not recognised',
    ]);
    assert.deepEqual(
      await heartbeat(uuid, hb(token, { agent_verify_ca: 'PEM' }), V('1.62')).then((r) => [
        r.status,
        r.fault,
      ]),
      [400, 'Field "agent_verify_ca" not recognised in this version'],
    );
    // An unknown node answers as a wrong token does: nothing tells them apart without the token.
    const unknown = await heartbeat('6f1c2a34-0000-0000-0000-000000000000', hb(token));
    assert.deepEqual([unknown.status, unknown.fault], [400, 'Invalid or missing agent token received.']);
    assert.equal((await heartbeat(uuid, hb(token, { callback_url: 'ftp://x' }))).status, 400);
    assert.deepEqual(
      await heartbeat(uuid, { callback_url: 'http://127.0.0.1:9999', agent_version: '1' }).then((r) => [
        r.status,
        r.fault,
      ]),
      [400, 'Agent token is required for heartbeat processing.'],
    );
    assert.deepEqual(
      await heartbeat(uuid, hb(token, { agent_version: null })).then((r) => [r.status, r.fault]),
      [400, 'Agent did not transmit a version'],
    );
    assert.deepEqual(await heartbeat(uuid, hb('x'.repeat(43))).then((r) => [r.status, r.fault]), [
      400,
      'Invalid or missing agent token received.',
    ]);
    assert.equal((await heartbeat(uuid, hb(token, { unexpected: 1 }))).status, 400);
    // Once a callback URL is on record, a different one is refused.
    assert.equal((await heartbeat(uuid, hb(token))).status, 202);
    assert.deepEqual(
      await heartbeat(uuid, hb(token, { callback_url: 'http://127.0.0.1:9998' })).then((r) => [
        r.status,
        r.fault,
      ]),
      [400, 'Detected change in ramdisk provided "callback_url"'],
    );
    // Wrong token with a changed callback: the token's answer, not the callback's.
    assert.deepEqual(
      await heartbeat(uuid, hb('y'.repeat(43), { callback_url: 'http://127.0.0.1:9998' })).then((r) => [
        r.status,
        r.fault,
      ]),
      [400, 'Invalid or missing agent token received.'],
    );
    // The call-back must be where the heartbeat comes from (here, loopback).
    const away = await heartbeat(uuid, hb(token, { callback_url: 'http://10.0.0.58:9999' }));
    assert.equal(away.status, 400);
    assert.match(
      away.fault,
      /host 10\.0\.0\.58 is not the address this heartbeat came from \(127\.0\.0\.1\)/,
    );
  });

  test('a TLS agent’s certificate is pinned per boot, and never sent beside a plain-HTTP call-back', async () => {
    const { uuid, token } = await withToken();
    const tls = { callback_url: 'https://127.0.0.1:9999' };
    const plain = await heartbeat(uuid, hb(token, { agent_verify_ca: 'PEM-1' }));
    assert.equal(plain.status, 400);
    assert.equal(plain.fault, 'The "callback_url" must be https when "agent_verify_ca" is sent.');
    assert.equal((await store.nodes.get(uuid))!.driver_internal_info.agent_url, undefined);
    assert.equal((await heartbeat(uuid, hb(token, { ...tls, agent_verify_ca: 'PEM-1' }))).status, 202);
    assert.equal((await heartbeat(uuid, hb(token, { ...tls, agent_verify_ca: 'PEM-2' }))).status, 400);
    // A downgrade to plain HTTP is a changed call-back.
    assert.equal((await heartbeat(uuid, hb(token))).status, 400);
    const dii = (await store.nodes.get(uuid))!.driver_internal_info;
    assert.equal(dii.agent_verify_ca, 'PEM-1');
    assert.equal(dii.agent_url, 'https://127.0.0.1:9999');
  });

  test('Kiln progress is recorded; a locked node skips the record; other states are ignored', async () => {
    const { uuid, token } = await withToken();
    const p = { phase: 'writing', bytes_done: 10, bytes_total: 100 };
    assert.equal((await heartbeat(uuid, hb(token, { kiln_progress: p }))).status, 202);
    assert.deepEqual((await store.nodes.get(uuid))!.driver_internal_info.agent_progress, p);

    await store.nodes.reserve(uuid, 'engine-2');
    const before = (await store.nodes.get(uuid))!.driver_internal_info;
    const p2 = { phase: 'writing', bytes_done: 20, bytes_total: 100 };
    assert.equal((await heartbeat(uuid, hb(token, { kiln_progress: p2 }))).status, 202);
    // Nothing of the skipped beat is written: not its progress, not its time.
    const skipped = (await store.nodes.get(uuid))!.driver_internal_info;
    assert.deepEqual(skipped.agent_progress, p);
    assert.equal(skipped.agent_last_heartbeat, before.agent_last_heartbeat);
    await store.nodes.release(uuid, 'engine-2');

    fastTrack = true;
    const idle = await withToken('available', true);
    const count = handled.length;
    assert.equal((await heartbeat(idle.uuid, hb(idle.token))).status, 202);
    assert.ok((await store.nodes.get(idle.uuid))!.driver_internal_info.agent_url, 'fast-track records');
    // A barrier instead of a sleep: a later heartbeat that does reach the engine. The engine hears
    // heartbeats in the order they were answered, so once it has this one, it would have had the
    // idle node's too.
    const busy = await withToken('clean wait');
    assert.equal((await heartbeat(busy.uuid, hb(busy.token))).status, 202);
    await waitFor('the engine to hear the later heartbeat', () => handled.includes(busy.uuid));
    assert.deepEqual(handled.slice(count), [busy.uuid], 'record-only: the engine is not called');
    fastTrack = false;
  });

  test('wipeAgentToken forgets the ramdisk; the next lookup gets a new token', async () => {
    const { uuid, mac, token } = await withToken();
    await heartbeat(uuid, hb(token));
    const wiped = await wipeAgentToken(store, uuid);
    assert.equal(wiped.driver_internal_info.agent_secret_token, undefined);
    assert.equal(wiped.driver_internal_info.agent_url, undefined);
    const r = await lookup(`addresses=${mac}`);
    const fresh = (r.body.config as Record<string, unknown>).agent_token as string;
    assert.equal(fresh.length, 43);
    assert.notEqual(fresh, token);
  });
});

test('helpers', () => {
  assert.equal(requestedVersion(undefined), '1.1');
  assert.throws(() => requestedVersion('1'), /Invalid value/);
  assert.deepEqual(maskSecrets({ a: { password: 'p', x: 1 }, agent_secret_token: 't', empty_token: null }), {
    a: { password: '******', x: 1 },
    agent_secret_token: '******',
    empty_token: null,
  });
  assert.equal(normaliseIp('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(normaliseIp('::1'), '::1');
  assert.equal(sameSecret('a', 'a'), true);
  assert.equal(sameSecret('a', 'ab'), false);
  assert.equal(sameSecret('', ''), false);
  assert.equal(sameSecret('a', undefined), false);
});
