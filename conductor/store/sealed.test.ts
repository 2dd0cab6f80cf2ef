// What sealStore writes underneath: every write path seals, every read path opens. The raw store
// (the same database without the decorator) shows what is really kept.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createSecretBox, type SecretBox } from '../secrets/box.ts';
import { resealAll, sealStore } from './sealed.ts';
import { openSqliteStore } from './sqlite.ts';
import type { NodeRecord, Store } from './store.ts';

const PW = 'bmc-pass-8f3a';
const TOKEN = 'agent-token-5c1e9d';

describe('sealStore', () => {
  let raw: Store;
  let box: SecretBox;
  let sealed: Store;
  beforeEach(async () => {
    raw = await openSqliteStore(':memory:');
    box = createSecretBox(randomBytes(32));
    sealed = sealStore(raw, box);
  });
  afterEach(() => raw.close());

  /** The node as stored: no plain secret anywhere in it, and its secrets sealed by `box`. */
  async function assertSealedAtRest(uuid: string): Promise<NodeRecord> {
    const r = (await raw.nodes.get(uuid))!;
    const text = JSON.stringify(r);
    assert.ok(!text.includes(PW) && !text.includes(TOKEN), text);
    if (r.bmc_password !== null) assert.ok(box.sealedHere(r.bmc_password), r.bmc_password);
    if (r.driver_internal_info.agent_secret_token !== undefined) {
      assert.ok(box.sealedHere(r.driver_internal_info.agent_secret_token as string));
    }
    return r;
  }

  it('seals on create and opens on get, getByName, list and reserve', async () => {
    const made = await sealed.nodes.create({
      uuid: 'n1',
      name: 'rack1',
      driver: 'ipmi',
      bmc_password: PW,
      driver_internal_info: { agent_secret_token: TOKEN, agent_url: 'http://10.0.0.9:9999' },
    });
    assert.equal(made.bmc_password, PW);
    assert.equal(made.driver_internal_info.agent_secret_token, TOKEN);
    const r = await assertSealedAtRest('n1');
    // Non-secret fields are kept as they are, so they stay queryable and readable.
    assert.equal(r.driver_internal_info.agent_url, 'http://10.0.0.9:9999');
    assert.deepEqual(await sealed.nodes.get('n1'), made);
    assert.deepEqual(await sealed.nodes.getByName('rack1'), made);
    assert.deepEqual(await sealed.nodes.list(), [made]);
    const reserved = await sealed.nodes.reserve('n1', 'c1');
    assert.equal(reserved.bmc_password, PW);
    assert.equal(reserved.driver_internal_info.agent_secret_token, TOKEN);
  });

  it('seals on update and in a transition patch, and opens the results', async () => {
    await sealed.nodes.create({ uuid: 'n1', driver: 'ipmi', provision_state: 'manageable' });
    const u = await sealed.nodes.update('n1', { bmc_password: PW });
    assert.equal(u.bmc_password, PW);
    await assertSealedAtRest('n1');
    await sealed.nodes.reserve('n1', 'c1');
    const t = await sealed.nodes.transition({
      uuid: 'n1',
      from: 'manageable',
      to: 'cleaning',
      target: 'available',
      reservation: 'c1',
      patch: { driver_internal_info: { agent_secret_token: TOKEN, nested: [{ password: PW }] } },
      event: { node_uuid: 'n1', event: 'provide', actor: 't', result: 'ok' },
    });
    assert.equal(t.driver_internal_info.agent_secret_token, TOKEN);
    assert.deepEqual(t.driver_internal_info.nested, [{ password: PW }]);
    assert.equal(t.bmc_password, PW);
    await assertSealedAtRest('n1');
  });

  it('leaves non-string and non-secret values alone', async () => {
    const dii = {
      agent_secret_token_pregenerated: false,
      agent_last_heartbeat: '2026-12-01T00:00:00Z',
      clean_steps: [{ step: 'erase_devices', args: {} }],
    };
    await sealed.nodes.create({ uuid: 'n1', driver: 'ipmi', driver_internal_info: dii, bmc_password: null });
    const r = (await raw.nodes.get('n1'))!;
    assert.deepEqual(r.driver_internal_info, dii);
    assert.equal(r.bmc_password, null);
  });

  it('reads a legacy plain-text value, and seals it on the next write', async () => {
    await raw.nodes.create({
      uuid: 'n1',
      driver: 'ipmi',
      bmc_password: PW,
      driver_internal_info: { agent_secret_token: TOKEN },
    });
    const n = (await sealed.nodes.get('n1'))!;
    assert.equal(n.bmc_password, PW);
    await sealed.nodes.update('n1', {
      bmc_password: n.bmc_password,
      driver_internal_info: n.driver_internal_info,
    });
    await assertSealedAtRest('n1');
  });

  it('names the node when a secret was sealed with another key', async () => {
    const other = createSecretBox(randomBytes(32));
    await sealStore(raw, other).nodes.create({ uuid: 'n1', name: 'rack1', driver: 'ipmi', bmc_password: PW });
    await assert.rejects(sealed.nodes.get('n1'), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.match(
        e.message,
        new RegExp(`^node rack1: secret sealed with another key \\(id ${other.keyId};`),
      );
      assert.match(e.message, /start with the key file that sealed it/);
      return true;
    });
  });
});

describe('resealAll', () => {
  let raw: Store;
  beforeEach(async () => {
    raw = await openSqliteStore(':memory:');
  });
  afterEach(() => raw.close());

  it('seals every legacy plain-text secret once, and a second run changes nothing', async () => {
    const box = createSecretBox(randomBytes(32));
    for (let i = 0; i < 3; i++) {
      await raw.nodes.create({
        uuid: `n${i}`,
        driver: 'ipmi',
        bmc_password: i === 2 ? null : PW,
        driver_internal_info: i === 1 ? { agent_secret_token: TOKEN } : {},
      });
    }
    assert.deepEqual(await resealAll(raw, box), { nodes: 3, changed: 2, sealedPlain: 3, resealed: 0 });
    for (const n of await raw.nodes.list()) {
      assert.ok(!JSON.stringify(n).includes(PW) && !JSON.stringify(n).includes(TOKEN));
    }
    const before = await raw.nodes.list();
    assert.deepEqual(await resealAll(raw, box), { nodes: 3, changed: 0, sealedPlain: 0, resealed: 0 });
    assert.deepEqual(await raw.nodes.list(), before);
    assert.equal((await sealStore(raw, box).nodes.get('n1'))!.driver_internal_info.agent_secret_token, TOKEN);
  });

  it('moves secrets to a new key; the old key no longer opens them', async () => {
    const old = createSecretBox(randomBytes(32));
    const next = createSecretBox(randomBytes(32));
    await sealStore(raw, old).nodes.create({
      uuid: 'n1',
      driver: 'ipmi',
      bmc_password: PW,
      driver_internal_info: { agent_secret_token: TOKEN },
    });
    assert.deepEqual(await resealAll(raw, next, { from: [old] }), {
      nodes: 1,
      changed: 1,
      sealedPlain: 0,
      resealed: 2,
    });
    const n = (await sealStore(raw, next).nodes.get('n1'))!;
    assert.equal(n.bmc_password, PW);
    assert.equal(n.driver_internal_info.agent_secret_token, TOKEN);
    await assert.rejects(sealStore(raw, old).nodes.get('n1'), /sealed with another key/);
  });

  it('refuses, changing nothing, when a secret is under a key it was not given', async () => {
    const stranger = createSecretBox(randomBytes(32));
    const box = createSecretBox(randomBytes(32));
    await raw.nodes.create({ uuid: 'a', driver: 'ipmi', bmc_password: PW }); // plain, would be sealed
    await sealStore(raw, stranger).nodes.create({
      uuid: 'b',
      name: 'rack2',
      driver: 'ipmi',
      bmc_password: PW,
    });
    const before = await raw.nodes.list();
    await assert.rejects(resealAll(raw, box), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.match(e.message, new RegExp(`node rack2: .*another key \\(id ${stranger.keyId};`));
      return true;
    });
    assert.deepEqual(await raw.nodes.list(), before);
  });
});
