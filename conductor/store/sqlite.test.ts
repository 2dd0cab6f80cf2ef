// SQLite-specific behaviour the contract cannot see: the schema version bookkeeping, the pragmas,
// and that a process killed mid-write loses nothing it had reported committed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { SQLITE_MIGRATIONS } from './migrations.ts';
import { openSqliteStore } from './sqlite.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const dbPath = () => join(dir, `t${n++}.db`);
const latest = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.length - 1]!.version;

describe('sqlite store', () => {
  it('records each migration once and reopens without reapplying', async () => {
    const path = dbPath();
    await (await openSqliteStore(path)).close();
    const s = await openSqliteStore(path);
    await s.nodes.create({ uuid: 'u1', driver: 'ipmi' });
    await s.close();
    const db = new Database(path, { readonly: true });
    try {
      const rows = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all();
      assert.deepEqual(
        rows,
        SQLITE_MIGRATIONS.map((m) => ({ version: m.version })),
      );
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.deepEqual(db.prepare('SELECT uuid FROM nodes').all(), [{ uuid: 'u1' }]);
    } finally {
      db.close();
    }
  });

  it('refuses a database written by a newer Kiln', async () => {
    const path = dbPath();
    await (await openSqliteStore(path)).close();
    const db = new Database(path);
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
      latest + 1,
      'from the future',
      new Date().toISOString(),
    );
    db.close();
    await assert.rejects(openSqliteStore(path), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.match(e.message, new RegExp(`schema version ${latest + 1}.*knows only up to ${latest}`));
      assert.ok(e.message.includes(path), e.message);
      return true;
    });
  });

  it('refuses a path it cannot open with CONFIG_INVALID naming it', async () => {
    const path = join(dir, 'no', 'such', 'dir', 'kiln.db');
    await assert.rejects(openSqliteStore(path), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.ok(e.message.includes(path), e.message);
      return true;
    });
  });

  it('enforces foreign keys', async () => {
    const s = await openSqliteStore(':memory:');
    try {
      await assert.rejects(s.ports.create({ uuid: 'p', address: '52:54:00:00:00:01', node_uuid: 'ghost' }), {
        code: 'NOT_FOUND',
      });
    } finally {
      await s.close();
    }
  });

  it('keeps every write a killed process reported committed', async () => {
    const path = dbPath();
    const child = join(dir, 'writer.mjs');
    // Each iteration commits a node, then a transition (node row + event row in one transaction),
    // and reports each commit on stdout only after the store's promise resolved.
    writeFileSync(
      child,
      `import { writeSync } from 'node:fs';
import { openSqliteStore } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, 'sqlite.ts')).href)};
const s = await openSqliteStore(process.argv[2]);
for (let i = 0; ; i++) {
  const uuid = 'node-' + String(i).padStart(6, '0');
  await s.nodes.create({ uuid, driver: 'ipmi', name: 'n' + i, properties: { i } });
  writeSync(1, 'created ' + uuid + '\\n');
  await s.nodes.reserve(uuid, 'writer');
  await s.nodes.transition({ uuid, from: 'enroll', to: 'verifying', target: 'manageable', reservation: 'writer',
    event: { node_uuid: uuid, event: 'manage', actor: 'writer', result: 'ok' } });
  writeSync(1, 'moved ' + uuid + '\\n');
}
`,
    );
    const proc = spawn(process.execPath, ['--import', 'tsx', child, path], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const created = new Set<string>();
    const moved = new Set<string>();
    let buf = '';
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      proc.on('exit', (_code, sig) => resolve(sig)),
    );
    proc.stdout.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const line of lines) {
        const [what, uuid] = line.split(' ');
        (what === 'created' ? created : moved).add(uuid!);
      }
      // Kill while the loop is busy writing, well past the warm-up.
      if (moved.size >= 150 && !proc.killed) proc.kill('SIGKILL');
    });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    const signal = await exited;
    clearTimeout(timer);
    assert.equal(signal, 'SIGKILL');
    assert.ok(moved.size >= 150, `the writer only reported ${moved.size} transitions before it died`);

    const integrity = new Database(path);
    assert.equal(integrity.pragma('integrity_check', { simple: true }), 'ok');
    integrity.close();
    const s = await openSqliteStore(path);
    try {
      for (const uuid of created)
        assert.ok(await s.nodes.get(uuid), `${uuid} was reported created but is gone`);
      for (const uuid of moved) {
        assert.equal((await s.nodes.get(uuid))?.provision_state, 'verifying', `${uuid} lost its transition`);
      }
      // Whatever was in flight at the kill is all or nothing: a moved node has its event, an unmoved none.
      for (const node of await s.nodes.list({ limit: 100_000 })) {
        const events = (await s.events.list(node.uuid)).length;
        assert.equal(events, node.provision_state === 'verifying' ? 1 : 0, `${node.uuid}: half a transition`);
      }
    } finally {
      await s.close();
    }
  });

  describe('file modes', () => {
    const mode = (p: string) => statSync(p).mode & 0o777;

    it('creates the database and its -wal and -shm files 0600, whatever the umask', async () => {
      const path = dbPath();
      const old = process.umask(0o000);
      let s: Awaited<ReturnType<typeof openSqliteStore>>;
      try {
        s = await openSqliteStore(path);
      } finally {
        process.umask(old);
      }
      try {
        await s.nodes.create({ uuid: 'u', driver: 'ipmi' });
        for (const f of [path, `${path}-wal`, `${path}-shm`]) assert.equal(mode(f), 0o600, f);
      } finally {
        await s.close();
      }
    });

    it('refuses a database file every user may read, naming it and the fix, and leaves it untouched', async () => {
      const path = dbPath();
      await (await openSqliteStore(path)).close();
      for (const [file, m] of [
        [path, 0o644],
        [`${path}-wal`, 0o604],
      ] as const) {
        if (file.endsWith('-wal')) {
          chmodSync(path, 0o600);
          writeFileSync(file, '');
        }
        chmodSync(file, m);
        const bytes = readFileSync(path);
        await assert.rejects(openSqliteStore(path), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'CONFIG_INVALID');
          assert.ok(e.message.includes(`${file} is open to all users (mode 0${m.toString(8)})`), e.message);
          assert.ok(e.message.includes(`chmod 600 ${path}*`), e.message);
          return true;
        });
        assert.equal(mode(file), m);
        assert.deepEqual(readFileSync(path), bytes);
      }
    });

    it('opens a database its group may read (a deliberate backup group)', async () => {
      const path = dbPath();
      await (await openSqliteStore(path)).close();
      chmodSync(path, 0o640);
      await (await openSqliteStore(path)).close();
      assert.equal(mode(path), 0o640);
    });
  });
});
