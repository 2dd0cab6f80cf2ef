// Runs the store contract against every backend: SQLite in memory and on disk, and PostgreSQL
// (a real throwaway cluster; without the server binaries this file fails rather than skips).
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { createSecretBox } from '../../conductor/secrets/box.ts';
import { POSTGRES_MIGRATIONS } from '../../conductor/store/migrations.ts';
import { openStore } from '../../conductor/store/open.ts';
import { openPostgresStore } from '../../conductor/store/postgres.ts';
import { sealStore } from '../../conductor/store/sealed.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import { startPostgres } from '../support/postgres.ts';
import { storeContract } from './store.contract.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

storeContract('sqlite in memory', () => openSqliteStore(':memory:'));
storeContract('sqlite file', () => openSqliteStore(join(dir, `kiln-${files++}.db`)));
// Sealing secrets must not change what callers see (test/security/secrets-at-rest.test.ts shows
// what it changes in the database).
const box = createSecretBox(randomBytes(32));
storeContract('sqlite in memory, sealed', async () => sealStore(await openSqliteStore(':memory:'), box));

const cluster = await startPostgres();
after(() => cluster.stop());
storeContract('postgres', async () => openPostgresStore(await cluster.createSchema()));
storeContract('postgres, sealed', async () =>
  sealStore(await openPostgresStore(await cluster.createSchema()), box),
);

describe('openStore on PostgreSQL', () => {
  it('opens a postgres:// and a postgresql:// URL with the PostgreSQL store', async () => {
    for (const url of [
      await cluster.createDatabase(),
      (await cluster.createDatabase()).replace(/^postgres:/, 'postgresql:'),
    ]) {
      const s = await openStore(url);
      try {
        assert.equal(s.kind, 'postgres');
        await s.nodes.create({ uuid: 'u', driver: 'ipmi' });
        assert.equal(await s.nodes.count(), 1);
      } finally {
        await s.close();
      }
    }
  });
});

describe('PostgreSQL store', () => {
  const withPassword = (url: string) => url.replace('postgres@', 'postgres:hunter2@');

  it('migrates once when several conductors open a fresh database at the same time', async () => {
    const url = await cluster.createSchema();
    const stores = await Promise.all([1, 2, 3].map(() => openPostgresStore(url)));
    await Promise.all(stores.map((s) => s.close()));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(
        rows.map((r) => r.version),
        POSTGRES_MIGRATIONS.map((m) => m.version),
      );
    } finally {
      await client.end();
    }
  });

  it('refuses a database written by a newer Kiln, without showing the password', async () => {
    const url = withPassword(await cluster.createSchema());
    await (await openPostgresStore(url)).close();
    const latest = POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]!.version;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("INSERT INTO schema_migrations VALUES ($1, 'from the future', now())", [latest + 1]);
    await client.end();
    await assert.rejects(openPostgresStore(url), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.match(e.message, new RegExp(`schema version ${latest + 1}.*knows only up to ${latest}`));
      assert.ok(e.message.includes('127.0.0.1'), e.message);
      assert.ok(!e.message.includes('hunter2'), e.message);
      return true;
    });
  });

  it('makes event ids visible in commit order, so a stream following listSince loses none', async () => {
    // Two conductors on one database. The first one's event transaction is held open after its
    // row is in (a trigger sleeps), while the second one writes an event. Had the second drawn
    // the next id and committed first, a follower reading in between would move past the first's
    // id and never see it.
    const url = await cluster.createSchema();
    const [a, b] = [await openPostgresStore(url), await openPostgresStore(url)];
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query(`CREATE FUNCTION slow_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.message = 'slow' THEN PERFORM pg_sleep(0.6); END IF; RETURN NEW; END $$`);
      await admin.query(
        'CREATE TRIGGER slow_event AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION slow_event()',
      );
      const n = await a.nodes.create({ uuid: randomUUID(), driver: 'ipmi' });
      const ev = (message: string) => ({
        node_uuid: n.uuid,
        event: 'note',
        actor: 't',
        result: 'info' as const,
        message,
      });
      const slow = a.events.add(ev('slow'));
      await new Promise((r) => setTimeout(r, 150));
      const fast = b.events.add(ev('fast'));
      const seen: number[] = [];
      let cursor = 0;
      const follow = async () => {
        for (const e of await a.events.listSince(cursor)) {
          seen.push(e.id);
          cursor = e.id;
        }
      };
      const done = Promise.all([slow, fast]);
      let settled = false;
      done.then(() => {
        settled = true;
      });
      while (!settled) {
        await follow();
        await new Promise((r) => setTimeout(r, 20));
      }
      await follow();
      const ids = (await done).map((e) => e.id);
      assert.deepEqual(
        seen,
        [...ids].sort((x, y) => x - y),
      );
    } finally {
      await admin.end();
      await a.close();
      await b.close();
    }
  });

  it('reports an unreachable server as CONFIG_INVALID naming where, not the password', async () => {
    await assert.rejects(
      openPostgresStore('postgres://kiln:hunter2@127.0.0.1:1/kiln'),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'CONFIG_INVALID');
        assert.ok(e.message.includes('127.0.0.1:1/kiln'), e.message);
        assert.ok(!e.message.includes('hunter2'), e.message);
        return true;
      },
    );
  });
});
