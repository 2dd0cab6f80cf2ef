// Kiln issue item 6: BMC passwords and agent tokens were kept in plain text, in a database file
// every user could read. Now node secrets are sealed (conductor/store/sealed.ts) under a key kept
// outside the database (conductor/secrets/key.ts), and the SQLite files are created 0600.
//
// The attack is reading the database at rest: a copy of the SQLite file and its WAL, or what a
// PostgreSQL user with SELECT on the table (or a backup of its data directory) sees. Each check
// first shows, with a node written through the raw store, that the same read does find plain
// text, so "not found" means sealed, not "looked in the wrong place".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { loadKeyFile, loadOrCreateKey } from '../../conductor/secrets/key.ts';
import { openPostgresStore } from '../../conductor/store/postgres.ts';
import { resealAll, sealStore } from '../../conductor/store/sealed.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import type { Store } from '../../conductor/store/store.ts';
import { type PostgresCluster, startPostgres } from '../support/postgres.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-at-rest-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Fresh, unguessable secrets per node, so a hit can only be this test's write. */
const secrets = () => ({
  password: `bmc-${randomBytes(9).toString('hex')}`,
  token: `tok-${randomBytes(12).toString('hex')}`,
  /** A password set before `password`: an overwritten secret must not linger either. */
  earlier: `old-${randomBytes(9).toString('hex')}`,
});
type Secrets = ReturnType<typeof secrets>;

const mode = (p: string) => statSync(p).mode & 0o777;

/** Every byte of the SQLite database as it sits on disk: the main file, its WAL and shared memory. */
function sqliteBytes(path: string): Buffer {
  return Buffer.concat(
    [path, `${path}-wal`, `${path}-shm`].filter((f) => existsSync(f)).map((f) => readFileSync(f)),
  );
}

const contains = (bytes: Buffer, s: string) => bytes.includes(Buffer.from(s, 'utf8'));

/** Write a node through every write path: create, update, and a transition's patch. */
async function writeNode(store: Store, s: Secrets, name: string): Promise<string> {
  const uuid = randomUUID();
  await store.nodes.create({
    uuid,
    name,
    driver: 'ipmi',
    provision_state: 'manageable',
    bmc_password: s.earlier,
  });
  await store.nodes.update(uuid, { bmc_password: s.password, bmc_address: 'ipmi://10.0.0.7' });
  await store.nodes.reserve(uuid, 'c1');
  await store.nodes.transition({
    uuid,
    from: 'manageable',
    to: 'cleaning',
    target: 'available',
    reservation: 'c1',
    patch: { driver_internal_info: { agent_url: 'http://10.0.0.7:9999', agent_secret_token: s.token } },
    event: { node_uuid: uuid, event: 'provide', actor: 'test', result: 'ok' },
  });
  await store.nodes.release(uuid, 'c1');
  return uuid;
}

async function assertReadsBack(store: Store, uuid: string, s: Secrets): Promise<void> {
  const n = (await store.nodes.get(uuid))!;
  assert.equal(n.bmc_password, s.password);
  assert.equal(n.driver_internal_info.agent_secret_token, s.token);
  assert.equal(n.driver_internal_info.agent_url, 'http://10.0.0.7:9999');
}

/** `kiln secrets rotate-key` in its own process, as an operator runs it. */
function rotateKey(
  db: string,
  oldKey: string,
  newKey: string,
): { status: number; stdout: string; stderr: string } {
  const cmd = pathToFileURL(join(import.meta.dirname, '..', '..', 'cli', 'commands', 'secrets.ts')).href;
  const script = `
    import { Command } from 'commander';
    import { registerSecretsCommands } from ${JSON.stringify(cmd)};
    const program = new Command('kiln').option('--json');
    registerSecretsCommands(program);
    try { await program.parseAsync(process.argv.slice(1), { from: 'user' }); }
    catch (e) { process.stderr.write('error: ' + e.message + '\\n'); process.exitCode = 1; }`;
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
      'secrets',
      'rotate-key',
      '--db',
      db,
      '--key-file',
      oldKey,
      '--new-key-file',
      newKey,
    ],
    { encoding: 'utf8', timeout: 60_000, cwd: join(import.meta.dirname, '..', '..') },
  );
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('secrets at rest: SQLite', () => {
  const path = join(dir, 'kiln.db');
  const keyFile = join(dir, 'kiln-secrets.key');
  const plain = secrets();
  const sealed = secrets();
  let raw: Store;
  let store: Store;
  let uuid: string;

  before(async () => {
    const box = await loadOrCreateKey(keyFile, { env: {} });
    raw = await openSqliteStore(path);
    store = sealStore(raw, box);
    // The control: the same bytes, with a node written without sealing, do show its secrets.
    await writeNode(raw, plain, 'control');
    uuid = await writeNode(store, sealed, 'sealed');
  });
  after(() => raw.close());

  it('keeps neither the BMC password nor the agent token in the database file or its WAL', async () => {
    const bytes = sqliteBytes(path);
    assert.ok(contains(bytes, plain.password) && contains(bytes, plain.token), 'the control is not visible');
    assert.ok(!contains(bytes, sealed.password), 'BMC password in plain text on disk');
    assert.ok(!contains(bytes, sealed.token), 'agent token in plain text on disk');
    assert.ok(!contains(bytes, sealed.earlier), 'an earlier BMC password in plain text on disk');
    await assertReadsBack(store, uuid, sealed);
  });

  it('creates the database, its -wal and -shm files and the key file 0600', () => {
    for (const f of [path, `${path}-wal`, `${path}-shm`, keyFile]) assert.equal(mode(f), 0o600, f);
  });

  it('rotation re-seals under the new key: the store reads them back, the old key no longer opens them', async () => {
    // The conductor is stopped while the key changes (the command's own instructions).
    await raw.close();
    const newKeyFile = join(dir, 'kiln-secrets.key.new');
    const r = rotateKey(`sqlite:${path}`, keyFile, newKeyFile);
    assert.equal(r.status, 0, r.stderr);
    // Both nodes: the control's plain-text secrets are sealed too. Nothing secret is printed.
    assert.match(
      r.stdout,
      /checked 2 nodes; re-sealed 2 secrets from key [0-9a-f]{8} and sealed 2 plain-text ones/,
    );
    for (const s of [plain.password, plain.token, sealed.password, sealed.token]) {
      assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s));
    }
    assert.equal(mode(newKeyFile), 0o600);

    const oldBox = await loadKeyFile(keyFile);
    const newBox = await loadKeyFile(newKeyFile);
    raw = await openSqliteStore(path);
    await assertReadsBack(sealStore(raw, newBox), uuid, sealed);
    await assert.rejects(sealStore(raw, oldBox).nodes.get(uuid), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.match(e.message, new RegExp(`sealed with another key \\(id ${newBox.keyId};`));
      return true;
    });
    // Not even the control's old plain text lingers: SQLite zeroes what an update frees
    // (secure_delete) and the WAL went with the rotation's last connection.
    const bytes = sqliteBytes(path);
    for (const s of [plain.password, plain.token, sealed.password, sealed.token])
      assert.ok(!contains(bytes, s), s);
    for (const n of await raw.nodes.list()) {
      const text = JSON.stringify(n);
      assert.ok(!text.includes(plain.password) && !text.includes(sealed.token), text);
      assert.ok(newBox.sealedHere(n.bmc_password!), n.bmc_password!);
    }
    // Running it again is a no-op, so an interrupted rotation is finished by re-running it.
    const again = rotateKey(`sqlite:${path}`, keyFile, newKeyFile);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /re-sealed 0 secrets .* and sealed 0 plain-text ones, .* on 0 nodes/);
  });
});

describe('secrets at rest: PostgreSQL', () => {
  let cluster: PostgresCluster;
  let url: string;
  let raw: Store;
  let store: Store;
  let client: pg.Client;
  const plain = secrets();
  const sealed = secrets();
  let uuid: string;
  let keyFile: string;

  before(async () => {
    cluster = await startPostgres();
    url = await cluster.createDatabase();
    keyFile = join(dir, 'pg-secrets.key');
    raw = await openPostgresStore(url);
    store = sealStore(raw, await loadOrCreateKey(keyFile, { env: {} }));
    await writeNode(raw, plain, 'control');
    uuid = await writeNode(store, sealed, 'sealed');
    client = new pg.Client({ connectionString: url });
    await client.connect();
  });
  after(async () => {
    await client.end();
    await raw.close();
    await cluster.stop();
  });

  const rawColumns = async (name: string) =>
    (
      await client.query(
        'SELECT bmc_password, driver_internal_info::text AS dii FROM nodes WHERE name = $1',
        [name],
      )
    ).rows[0] as { bmc_password: string; dii: string };

  it('a SELECT on the table shows sealed values only, while the store reads them back', async () => {
    const control = await rawColumns('control');
    assert.equal(control.bmc_password, plain.password);
    assert.ok(control.dii.includes(plain.token));
    const row = await rawColumns('sealed');
    assert.match(row.bmc_password, /^kiln:v1:[0-9a-f]{8}:[A-Za-z0-9_-]+$/);
    assert.ok(!row.bmc_password.includes(sealed.password));
    assert.ok(!row.dii.includes(sealed.token), row.dii);
    assert.match(JSON.parse(row.dii).agent_secret_token, /^kiln:v1:/);
    await assertReadsBack(store, uuid, sealed);
  });

  it('the data directory (tables and WAL, after a checkpoint) holds no plain-text secret', async () => {
    await client.query('CHECKPOINT');
    const files = readdirSync(join(cluster.dir, 'data'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    const hits = (s: string) => files.filter((f) => contains(readFileSync(f), s));
    assert.ok(hits(plain.password).length > 0, 'the control is not visible in the data directory');
    assert.deepEqual(hits(sealed.password), []);
    assert.deepEqual(hits(sealed.token), []);
  });

  it('rotation re-seals every row; the old key no longer opens them', async () => {
    await raw.close();
    const newKeyFile = join(dir, 'pg-secrets.key.new');
    const r = rotateKey(url, keyFile, newKeyFile);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /re-sealed 2 secrets .* and sealed 2 plain-text ones/);
    const newBox = await loadKeyFile(newKeyFile);
    raw = await openPostgresStore(url);
    await assertReadsBack(sealStore(raw, newBox), uuid, sealed);
    await assert.rejects(
      sealStore(raw, await loadKeyFile(keyFile)).nodes.get(uuid),
      /sealed with another key/,
    );
    for (const name of ['control', 'sealed']) {
      const row = await rawColumns(name);
      assert.ok(newBox.sealedHere(row.bmc_password), row.bmc_password);
      assert.ok(newBox.sealedHere(JSON.parse(row.dii).agent_secret_token));
    }
  });

  it('resealAll at start seals legacy rows so a SELECT no longer shows them', async () => {
    const legacy = secrets();
    await writeNode(raw, legacy, 'legacy');
    assert.equal((await rawColumns('legacy')).bmc_password, legacy.password);
    const box = await loadKeyFile(join(dir, 'pg-secrets.key.new'));
    const report = await resealAll(raw, box);
    assert.equal(report.sealedPlain, 2);
    const row = await rawColumns('legacy');
    assert.ok(!row.bmc_password.includes(legacy.password) && !row.dii.includes(legacy.token));
    const n = (await sealStore(raw, box).nodes.getByName('legacy'))!;
    assert.equal(n.bmc_password, legacy.password);
  });
});
