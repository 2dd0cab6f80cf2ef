// The operator API as an attacker and as each role meets it, against a real conductor: no token,
// a forged, revoked or expired one, a spoofed actor, a reader that tries to act, an operator that
// tries to mint tokens. Each is refused before anything is read or written, and nothing changes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createToken, hashToken } from '../../conductor/auth/tokens.ts';
import { loadConfig } from '../../conductor/config.ts';
import { startTestConductor, type TestConductor } from '../support/conductor.ts';

describe('operator API authentication and roles', () => {
  let c: TestConductor;
  let node: { uuid: string };
  const made: Record<string, string> = {};
  before(async () => {
    c = await startTestConductor();
    for (const role of ['reader', 'operator'] as const)
      made[role] = (await createToken(c.store.tokens, { name: `t-${role}`, role, expiresAt: null })).token;
    node = (await c.call('POST', '/v1/nodes', { name: 'victim', bmc_address: 'fake://victim' })).body;
    assert.ok(node.uuid);
  });
  after(() => c.close());

  /** The node as the store has it: what every refused request must leave alone. */
  const snapshot = async () => {
    const n = await c.store.nodes.get(node.uuid);
    const events = await c.store.events.list(node.uuid, { limit: 1000 });
    return {
      n: { ...n, updated_at: undefined },
      events: events.length,
      tokens: (await c.store.tokens.list()).length,
    };
  };

  const attempts: [string, string, unknown][] = [
    ['GET', '/v1/nodes', undefined],
    ['GET', '/v1/nodes/victim', undefined],
    ['POST', '/v1/nodes', { name: 'intruder' }],
    ['PATCH', '/v1/nodes/victim', { bmc_options: { insecure: true } }],
    ['PUT', '/v1/nodes/victim/states/provision', { target: 'manage' }],
    ['PUT', '/v1/nodes/victim/states/power', { target: 'power off' }],
    ['DELETE', '/v1/nodes/victim', undefined],
    ['POST', '/v1/images', { name: 'x', url: 'http://10.0.0.1/x', checksum: `sha256:${'a'.repeat(64)}` }],
    ['GET', '/v1/tokens', undefined],
    ['POST', '/v1/tokens', { name: 'mine', role: 'admin' }],
    ['GET', '/v1/openapi.json', undefined],
  ];

  it('refuses every route without a token, a forged one, or garbage, with 401 and nothing changed', async () => {
    const before = await snapshot();
    for (const token of [null, 'kiln_forged', `kiln_${'A'.repeat(43)}`, 'Basic abc']) {
      for (const [method, path, body] of attempts) {
        const r = await c.callAs(token)(method, path, body);
        assert.equal(r.status, 401, `${method} ${path} with ${token}`);
        assert.equal(r.body.error.code, 'UNAUTHENTICATED');
        assert.match(r.body.error.message, /token/);
      }
    }
    assert.deepEqual(await snapshot(), before);
    // The version documents stay open: ramdisks and clients discover the API there.
    assert.equal((await c.callAs(null)('GET', '/')).status, 200);
  });

  it('refuses a revoked and an expired token', async () => {
    const { record, token } = await createToken(c.store.tokens, {
      name: 'short',
      role: 'admin',
      expiresAt: null,
    });
    assert.equal((await c.callAs(token)('GET', '/v1/nodes')).status, 200);
    const revoked = await c.call('DELETE', `/v1/tokens/${record.id}`);
    assert.equal(revoked.status, 204);
    const after = await c.callAs(token)('GET', '/v1/nodes');
    assert.equal(after.status, 401);
    assert.match(after.body.error.message, /not valid \(unknown or revoked\)/);

    const old = await c.store.tokens.create({
      id: 'exp000000001',
      name: 'expired',
      role: 'admin',
      hash: hashToken('kiln_expired-secret'),
      expires_at: new Date(Date.now() - 1000).toISOString(),
    });
    const r = await c.callAs('kiln_expired-secret')('POST', '/v1/nodes', { name: 'late' });
    assert.equal(r.status, 401);
    assert.match(r.body.error.message, new RegExp(`API token ${old.name} expired at .*kiln token create`));
    assert.equal(await c.store.nodes.getByName('late'), undefined);
  });

  it('lets a reader read and nothing else (403 naming the role needed)', async () => {
    const reader = c.callAs(made.reader!);
    assert.equal((await reader('GET', '/v1/nodes/victim')).status, 200);
    assert.equal((await reader('GET', `/v1/nodes/${node.uuid}/events`)).status, 200);
    const before = await snapshot();
    for (const [method, path, body] of attempts.filter(([m]) => m !== 'GET')) {
      const r = await reader(method, path, body);
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.equal(r.body.error.code, 'FORBIDDEN');
      assert.match(r.body.error.message, /token t-reader has role reader; .* needs (operator|admin)/);
    }
    assert.equal((await reader('GET', '/v1/tokens')).status, 403);
    assert.deepEqual(await snapshot(), before);
  });

  it('lets an operator act on nodes but not see or mint tokens', async () => {
    const op = c.callAs(made.operator!);
    const patched = await op('PATCH', '/v1/nodes/victim', { extra: { rack: 'r1' } });
    assert.equal(patched.status, 200, patched.text);
    const before = (await c.store.tokens.list()).length;
    assert.equal((await op('GET', '/v1/tokens')).status, 403);
    const mint = await op('POST', '/v1/tokens', { name: 'escalate', role: 'admin' });
    assert.equal(mint.status, 403);
    assert.equal((await c.store.tokens.list()).length, before);
  });

  it('records the token name as the actor, whatever X-Kiln-Actor a client claims', async () => {
    const r = await fetch(`${c.url}/v1/nodes/victim`, {
      method: 'PATCH',
      headers: {
        authorization: `Bearer ${made.operator}`,
        'content-type': 'application/json',
        'x-kiln-actor': 'admin',
      },
      body: JSON.stringify({ extra: { rack: 'r2' } }),
    });
    assert.equal(r.status, 200);
    const events = await c.store.events.list(node.uuid, { limit: 1000 });
    assert.equal(events.at(-1)!.actor, 't-operator');
    assert.ok(!events.some((e) => e.actor === 'admin'));
  });

  it('shows a new token once; lists, the database and the log never hold it', async () => {
    const r = await c.call('POST', '/v1/tokens', { name: 'ci', role: 'reader', expires: '30d' });
    assert.equal(r.status, 201);
    const token = r.body.token as string;
    assert.match(token, /^kiln_[A-Za-z0-9_-]{43}$/, 'at least 256 random bits');
    assert.ok(Date.parse(r.body.expires_at) > Date.now() + 29 * 86_400_000);
    assert.equal((await c.callAs(token)('GET', '/v1/nodes')).status, 200);
    const list = await c.call('GET', '/v1/tokens');
    assert.ok(list.body.tokens.some((t: { name: string }) => t.name === 'ci'));
    assert.ok(!list.text.includes(token));
    assert.ok(!list.text.includes(hashToken(token)), 'not even the hash is shown');
    const row = (await c.store.tokens.find('ci'))!;
    assert.equal(row.hash, hashToken(token));
    assert.ok(!JSON.stringify(await c.store.tokens.list()).includes(token));
    assert.ok(!c.logs.join('\n').includes(token));
    assert.ok(!c.logs.join('\n').includes(c.adminToken));
    // Refused input says why, and makes nothing.
    const dup = await c.call('POST', '/v1/tokens', { name: 'ci', role: 'reader' });
    assert.equal(dup.status, 409);
    const bad = await c.call('POST', '/v1/tokens', { name: 'x', role: 'root' });
    assert.equal(bad.status, 400);
    const past = await c.call('POST', '/v1/tokens', {
      name: 'y',
      role: 'reader',
      expires: '2001-01-01T00:00:00Z',
    });
    assert.equal(past.status, 400);
    assert.match(past.body.error.message, /not in the future/);
  });

  it('does not read a body before the token is checked', async () => {
    const big = 'x'.repeat(8 * 1024 * 1024);
    const t0 = Date.now();
    const r = await fetch(`${c.url}/v1/nodes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: big,
    }).catch((e: Error) => e);
    // Either the 401 arrives, or the server closed the connection on the unread body: never a 413.
    if (!(r instanceof Error)) {
      assert.equal(r.status, 401);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
    }
    assert.ok(Date.now() - t0 < 10_000);
  });
});

describe('turning authentication off', () => {
  it('is refused unless the API listens on loopback only', () => {
    assert.throws(
      () => loadConfig({ env: {}, flags: { 'api.auth': 'none', 'api.host': '0.0.0.0' } }),
      /api\.auth: is none, but api\.host is 0\.0\.0\.0, which others can reach/,
    );
    assert.throws(
      () => loadConfig({ env: { KILN_API_AUTH: 'none', KILN_API_HOST: '10.0.0.5' } }),
      /api\.auth: is none/,
    );
    assert.equal(
      loadConfig({ env: {}, flags: { 'api.auth': 'none', 'api.host': '127.0.0.1' } }).api.auth,
      'none',
    );
  });

  it('on loopback, acts as the local admin and records who it is told', async () => {
    const c = await startTestConductor({}, { 'api.auth': 'none' });
    try {
      const r = await fetch(`${c.url}/v1/nodes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-kiln-actor': 'alice' },
        body: JSON.stringify({ name: 'local' }),
      });
      assert.equal(r.status, 201);
      const n = (await c.store.nodes.getByName('local'))!;
      const ev = await c.store.events.list(n.uuid, { limit: 10 });
      assert.equal(ev[0]!.actor, 'local:alice');
    } finally {
      await c.close();
    }
  });
});
