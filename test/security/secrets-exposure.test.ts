// Kiln security issue, "Done when": no secret reaches argv, logs, API output or the database file.
// One realistic flow against a real conductor with a file-backed SQLite store and a real BMC
// (OpenIPMI's ipmi_sim, driven by the real ipmitool): a node with an IPMI password, an image whose
// URL carries user:password and a ?token=, a deploy with a config drive holding tenant secrets, an
// API token made through the API, the enrollment BMC password in config, power on and off through
// the API, then every API view read. Each secret is then looked for in every place it may not be:
// (a) ipmitool's argv, (b) the conductor's log lines, (c) every API answer, (d) the bytes of the
// database file and its WAL. Each search first finds something it should (the password in
// ipmitool's environment, the node's name on disk, the token's hash), so "not found" means not
// there, not "looked in the wrong place". Values that must be recoverable are sealed (kiln:v1:).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../conductor/auth/tokens.ts';
import { createPowerRegistry } from '../../conductor/power/registry.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import { createLogger } from '../../shared/log.ts';
import { startTestConductor, type TestConductor } from '../support/conductor.ts';
import { type IpmiSim, startIpmiSim } from '../support/ipmi-sim.ts';

const hex = (n: number) => randomBytes(n).toString('hex');

// Fresh and unguessable per run, so any hit can only be this test's write. The BMC password is
// at most 16 bytes (IPMI 1.5's limit; ipmi_sim keeps it to that).
const S = {
  bmcPassword: `pw-${hex(6)}`,
  urlPassword: `urlpw-${hex(8)}`,
  urlToken: `urltok-${hex(8)}`,
  userData: `userdata-secret-${hex(8)}`,
  sshKey: `AAAAC3NzaC1lZDI1NTE5${hex(16)}`,
  enrollPassword: `enroll-${hex(8)}`,
  /** Written the way the ramdisk lookup writes it (driver_internal_info.agent_secret_token). */
  agentToken: `agent-${hex(12)}`,
};

describe('no secret reaches argv, logs, API output or the database file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-exposure-'));
  const dbPath = join(dir, 'kiln.db');
  const argvFile = join(dir, 'ipmitool-argv');
  const envFile = join(dir, 'ipmitool-env');
  const nodeName = `exposure-${hex(4)}`;
  /** The power drivers' own log lines (their logger is made before the conductor's). */
  const powerLogs: string[] = [];
  /** Every API answer this flow received, as text. */
  const answers: { what: string; text: string }[] = [];
  let sim: IpmiSim;
  let c: TestConductor;
  let apiToken: string;
  let nodeUuid: string;

  const call = async (what: string, method: string, path: string, body?: unknown, status?: number) => {
    const r = await c.call(method, path, body);
    answers.push({ what: `${what}: ${method} ${path}`, text: r.text });
    if (status !== undefined) assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
    return r;
  };

  /** Every byte of the database as it sits on disk: the main file, its WAL and shared memory. */
  const dbBytes = () =>
    Buffer.concat(
      [dbPath, `${dbPath}-wal`, `${dbPath}-shm`].filter((f) => existsSync(f)).map((f) => readFileSync(f)),
    );
  const onDisk = (bytes: Buffer, s: string) => bytes.includes(Buffer.from(s, 'utf8'));

  before(async () => {
    sim = await startIpmiSim({ password: S.bmcPassword });
    // The real ipmitool behind a wrapper that records its argv, one run a line, and the password
    // it found in its environment (what -E reads), so the test shows the password did go through.
    const wrapper = join(dir, 'ipmitool');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nprintf '%s\\n' "$*" >> '${argvFile}'\nprintf '%s\\n' "$IPMI_PASSWORD" >> '${envFile}'\nexec ipmitool "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    const powerStream = new PassThrough();
    powerStream.on('data', (d: Buffer) => powerLogs.push(...d.toString().split('\n').filter(Boolean)));
    const power = createPowerRegistry({
      log: createLogger({ name: 'kiln-power', level: 'debug', destination: powerStream }),
      ipmi: { ipmitool: wrapper },
    });
    c = await startTestConductor(
      { store: await openSqliteStore(dbPath), power },
      { 'enrollment.bmc_username': 'root', 'enrollment.bmc_password': S.enrollPassword },
    );

    assert.equal(
      c.config.enrollment.bmc_password,
      S.enrollPassword,
      'the conductor holds the enrollment password',
    );
    const node = await call(
      'create node',
      'POST',
      '/v1/nodes',
      {
        name: nodeName,
        bmc_address: `ipmi://${sim.user}@${sim.host}:${sim.port}`,
        bmc_password: S.bmcPassword,
        ports: ['52:54:00:5e:c0:01'],
        // The fake deploy interface: the flow is the API's and the store's, not a ramdisk's.
        properties: { deploy_interface: 'fake', bmc_options: { backoff_ms: 100 } },
      },
      201,
    );
    nodeUuid = node.body.uuid;

    await call(
      'create image',
      'POST',
      '/v1/images',
      {
        name: 'exposure-img',
        url: `http://deployer:${S.urlPassword}@127.0.0.1:1/images/exposure.raw?token=${S.urlToken}&v=2`,
        checksum: `sha256:${'ab'.repeat(32)}`,
      },
      201,
    );

    const tok = await call(
      'create token',
      'POST',
      '/v1/tokens',
      { name: 'exposure-ops', role: 'operator' },
      201,
    );
    apiToken = tok.body.token;
    assert.match(apiToken, /^kiln_/);
    // The new token works (so it is a real one), and using it logs nothing of it either.
    const asOps = await c.callAs(apiToken)('GET', `/v1/nodes/${nodeUuid}`);
    assert.equal(asOps.status, 200, asOps.text);

    // Power through the API: ipmitool runs with the password, and ipmi_sim's chassis obeys.
    await call('power on', 'PUT', `/v1/nodes/${nodeUuid}/states/power`, { target: 'power on' }, 200);
    assert.equal(sim.power(), 'on');
    await call('power off', 'PUT', `/v1/nodes/${nodeUuid}/states/power`, { target: 'power off' }, 200);
    assert.equal(sim.power(), 'off');
    await call('power state', 'GET', `/v1/nodes/${nodeUuid}/states/power`, undefined, 200);

    for (const target of ['manage', 'provide'] as const) {
      await call(target, 'PUT', `/v1/nodes/${nodeUuid}/states/provision`, { target }, 202);
      await c.engine.drain();
    }
    await call(
      'deploy',
      'PUT',
      `/v1/nodes/${nodeUuid}/states/provision`,
      {
        target: 'deploy',
        image: 'exposure-img',
        hostname: 'tenant-host',
        configdrive: {
          user_data: `#cloud-config\nchpasswd: { list: "root:${S.userData}" }\n`,
          public_keys: { tenant: `ssh-ed25519 ${S.sshKey} tenant@example` },
          meta_data: { role: 'web' },
        },
      },
      202,
    );
    await c.engine.drain();
    const deployed = await c.store.nodes.get(nodeUuid);
    assert.equal(deployed?.provision_state, 'active', deployed?.last_error ?? '');
    // An agent token, written as the ramdisk lookup writes it, so its at-rest form is checked too.
    await c.store.nodes.update(nodeUuid, {
      driver_internal_info: { ...deployed!.driver_internal_info, agent_secret_token: S.agentToken },
    });

    // Every view an operator has.
    await call('node show', 'GET', `/v1/nodes/${nodeUuid}`, undefined, 200);
    await call('node show by name', 'GET', `/v1/nodes/${nodeName}`, undefined, 200);
    await call('node list', 'GET', '/v1/nodes', undefined, 200);
    await call('node list detail', 'GET', '/v1/nodes?detail=true', undefined, 200);
    await call('node states', 'GET', `/v1/nodes/${nodeUuid}/states`, undefined, 200);
    await call('node ports', 'GET', `/v1/nodes/${nodeUuid}/ports`, undefined, 200);
    await call('events', 'GET', `/v1/nodes/${nodeUuid}/events?limit=1000`, undefined, 200);
    await call('ports', 'GET', '/v1/ports', undefined, 200);
    await call('images', 'GET', '/v1/images', undefined, 200);
    await call('image show', 'GET', '/v1/images/exposure-img', undefined, 200);
    await call('tokens', 'GET', '/v1/tokens', undefined, 200);
    await call('openapi', 'GET', '/v1/openapi.json', undefined, 200);
    await call('version', 'GET', '/v1', undefined, 200);
  });

  after(async () => {
    await c?.close();
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every secret but the API token (a secret of its creation answer, checked apart). */
  const secrets = (): [string, string][] => [
    ['BMC password', S.bmcPassword],
    ['image URL password', S.urlPassword],
    ['image URL token', S.urlToken],
    ['config drive user_data', S.userData],
    ['enrollment bmc_password', S.enrollPassword],
    ['agent token', S.agentToken],
    ['API token', apiToken],
  ];

  it('(a) ipmitool got the password in its environment, never in its argv', () => {
    const argv = readFileSync(argvFile, 'utf8').trim().split('\n');
    const env = readFileSync(envFile, 'utf8').trim().split('\n');
    assert.ok(argv.length >= 3, `ipmitool ran for power on, off and status: ${argv.join(' | ')}`);
    assert.ok(
      argv.some((a) => / chassis power on$/.test(a)) && argv.some((a) => / chassis power off$/.test(a)),
    );
    assert.deepEqual(new Set(env), new Set([S.bmcPassword]), 'every run read IPMI_PASSWORD');
    for (const a of argv) {
      assert.match(a, / -E /);
      for (const [what, s] of secrets()) assert.ok(!a.includes(s), `${what} in ipmitool argv: ${a}`);
    }
  });

  it('(b) no secret in the conductor log lines or the power drivers', () => {
    const lines = [...c.logs, ...powerLogs];
    assert.ok(
      c.logs.some((l) => l.includes('API token created')),
      'the log capture works',
    );
    for (const line of lines)
      for (const [what, s] of secrets()) assert.ok(!line.includes(s), `${what} in a log line: ${line}`);
  });

  it('(c) no secret in any API answer; masked forms where a secret is set', () => {
    const create = answers.find((a) => a.what.startsWith('create token'))!;
    assert.ok(create.text.includes(apiToken), 'the creation answer shows the new token, once');
    for (const { what, text } of answers) {
      for (const [name, s] of secrets()) {
        if (name === 'API token' && what.startsWith('create token')) continue;
        assert.ok(!text.includes(s), `${name} in the answer to ${what}: ${text.slice(0, 400)}`);
      }
    }
    // Public keys are not secret, but the config drive is the tenant's: the API shows it is there, not what it holds.
    for (const { what, text } of answers)
      assert.ok(!text.includes(S.sshKey), `SSH key in the answer to ${what}`);
    const show = JSON.parse(answers.find((a) => a.what.startsWith('node show'))!.text);
    assert.equal(show.bmc_password, '******');
    assert.equal(show.instance_info.configdrive, '******');
    const image = JSON.parse(answers.find((a) => a.what.startsWith('image show'))!.text);
    assert.match(image.url, /^http:\/\/\*\*\*@127\.0\.0\.1:1\/images\/exposure\.raw\?token=\*\*\*&v=2$/);
  });

  it("(d) the database search works: the node name and the API token's hash are on disk", () => {
    const bytes = dbBytes();
    // The same read finds what was written in plain text, so a miss below means "not there".
    assert.ok(onDisk(bytes, nodeName), 'the node name is not on disk: the search looks in the wrong place');
    assert.ok(onDisk(bytes, hashToken(apiToken)), 'the API token is kept as its SHA-256 hash');
  });

  it('(d) the BMC password and agent token are on disk only sealed, and read back', async () => {
    const bytes = dbBytes();
    assert.ok(onDisk(bytes, 'kiln:v1:'), 'no sealed value on disk');
    for (const [what, s] of [
      ['BMC password', S.bmcPassword],
      ['agent token', S.agentToken],
      ['enrollment bmc_password', S.enrollPassword],
      ['API token', apiToken],
    ] as const)
      assert.ok(!onDisk(bytes, s), `${what} in plain text in the SQLite file or its WAL`);
    // A second, unsealed connection to the same file sees each of them in the sealed form.
    const raw = await openSqliteStore(dbPath);
    try {
      const row = await raw.nodes.get(nodeUuid);
      assert.match(String(row?.bmc_password), /^kiln:v1:/);
      assert.match(String(row?.driver_internal_info.agent_secret_token), /^kiln:v1:/);
    } finally {
      await raw.close();
    }
    const n = await c.store.nodes.get(nodeUuid);
    assert.equal(n?.bmc_password, S.bmcPassword);
    assert.equal(n?.driver_internal_info.agent_secret_token, S.agentToken);
  });

  // Known leak, reported: the images table keeps the URL as given (conductor/store/sqlite.ts and
  // postgres.ts images.create; sealStore in conductor/store/sealed.ts passes `images` through).
  it("(d) the image URL's password and token are not on disk in plain text", () => {
    const bytes = dbBytes();
    assert.ok(
      !onDisk(bytes, S.urlPassword),
      'image URL password in plain text in the SQLite file or its WAL',
    );
    assert.ok(!onDisk(bytes, S.urlToken), 'image URL ?token= in plain text in the SQLite file or its WAL');
  });

  // Known leak, reported: ProvisionEngine.instanceInfoFor (conductor/provision/engine.ts) puts the
  // request's configdrive into instance_info, which sealStore (conductor/store/sealed.ts) does not seal.
  it("(d) the config drive's user_data is not on disk in plain text", () => {
    assert.ok(
      !onDisk(dbBytes(), S.userData),
      'config drive user_data in plain text in the SQLite file or its WAL (nodes.instance_info)',
    );
  });
});
