// Picks the store backend from the configured URL. Backends load lazily, so a conductor on
// PostgreSQL never loads the native SQLite module and one on SQLite never loads pg.
import { KilnError } from '../../shared/errors.ts';
import type { Store } from './store.ts';

export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/**
 * `:memory:`, `sqlite::memory:`, `sqlite:PATH`, `sqlite://PATH` (so `sqlite:///var/lib/kiln.db`)
 * or a plain path mean SQLite; `postgres://` and `postgresql://` mean PostgreSQL.
 */
export function parseStoreUrl(url: string): StoreLocation {
  if (url.trim() === '') {
    throw new KilnError('CONFIG_INVALID', 'the store URL is empty; give a SQLite path or a postgres:// URL');
  }
  if (/^postgres(ql)?:\/\//i.test(url)) return { kind: 'postgres', url };
  if (/^sqlite:/i.test(url)) {
    const path = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (path === '') {
      throw new KilnError(
        'CONFIG_INVALID',
        `store URL ${url} names no file; use e.g. sqlite:/var/lib/kiln/kiln.db`,
      );
    }
    return { kind: 'sqlite', path };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
  if (scheme) {
    throw new KilnError(
      'CONFIG_INVALID',
      `store URL scheme '${scheme}' is not supported; use sqlite:PATH or postgres://USER@HOST/DB`,
      { details: { scheme } },
    );
  }
  return { kind: 'sqlite', path: url };
}

export async function openStore(url: string): Promise<Store> {
  const where = parseStoreUrl(url);
  if (where.kind === 'postgres') {
    const { openPostgresStore } = await import('./postgres.ts');
    return openPostgresStore(where.url);
  }
  const { openSqliteStore } = await import('./sqlite.ts');
  return openSqliteStore(where.path);
}
