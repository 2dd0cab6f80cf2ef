import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openStore, parseStoreUrl } from './open.ts';

describe('store URL', () => {
  it('maps SQLite spellings to a path', () => {
    assert.deepEqual(parseStoreUrl(':memory:'), { kind: 'sqlite', path: ':memory:' });
    assert.deepEqual(parseStoreUrl('sqlite::memory:'), { kind: 'sqlite', path: ':memory:' });
    assert.deepEqual(parseStoreUrl('sqlite:/var/lib/kiln/kiln.db'), {
      kind: 'sqlite',
      path: '/var/lib/kiln/kiln.db',
    });
    assert.deepEqual(parseStoreUrl('sqlite:///var/lib/kiln/kiln.db'), {
      kind: 'sqlite',
      path: '/var/lib/kiln/kiln.db',
    });
    assert.deepEqual(parseStoreUrl('sqlite:kiln.db'), { kind: 'sqlite', path: 'kiln.db' });
    assert.deepEqual(parseStoreUrl('/srv/kiln.db'), { kind: 'sqlite', path: '/srv/kiln.db' });
    assert.deepEqual(parseStoreUrl('data/kiln.db'), { kind: 'sqlite', path: 'data/kiln.db' });
  });

  it('maps postgres:// and postgresql:// to PostgreSQL unchanged', () => {
    for (const url of [
      'postgres://kiln:pw@db.example:5432/kiln',
      'postgresql://kiln@db/kiln?sslmode=require',
    ]) {
      assert.deepEqual(parseStoreUrl(url), { kind: 'postgres', url });
    }
  });

  it('refuses an empty URL, an empty sqlite path and unknown schemes', () => {
    for (const [url, needle] of [
      ['', 'empty'],
      ['sqlite:', 'names no file'],
      ['mysql://db/kiln', "'mysql'"],
    ] as const) {
      assert.throws(
        () => parseStoreUrl(url),
        (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && e.message.includes(needle),
        url,
      );
    }
  });
});

describe('openStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-open-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('opens SQLite from a sqlite: URL, a plain path and :memory:', async () => {
    for (const url of [`sqlite:${join(dir, 'a.db')}`, join(dir, 'b.db'), ':memory:']) {
      const s = await openStore(url);
      try {
        assert.equal(s.kind, 'sqlite');
        await s.nodes.create({ uuid: 'u', driver: 'ipmi' });
        assert.equal(await s.nodes.count(), 1);
      } finally {
        await s.close();
      }
    }
    // The file really is where the URL said: reopening sees the node.
    const again = await openStore(join(dir, 'a.db'));
    assert.equal((await again.nodes.get('u'))?.uuid, 'u');
    await again.close();
  });
});
