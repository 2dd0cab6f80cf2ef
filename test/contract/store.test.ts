// Runs the store contract against every backend: SQLite in memory and on disk, and PostgreSQL
// (a real throwaway cluster; without the server binaries this file fails rather than skips).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
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
