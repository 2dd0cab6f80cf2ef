// Runs the store contract against every backend: SQLite in memory and on disk, and PostgreSQL
// (a real throwaway cluster; without the server binaries this file fails rather than skips).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openStore } from '../../conductor/store/open.ts';
import { openPostgresStore } from '../../conductor/store/postgres.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import { startPostgres } from '../support/postgres.ts';
import { storeContract } from './store.contract.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

storeContract('sqlite in memory', () => openSqliteStore(':memory:'));
storeContract('sqlite file', () => openSqliteStore(join(dir, `kiln-${files++}.db`)));

const cluster = await startPostgres();
after(() => cluster.stop());
storeContract('postgres', async () => openPostgresStore(await cluster.createDatabase()));

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
