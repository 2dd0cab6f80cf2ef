// Every code an error in conductor/, shared/ or cli/ carries is a row of ERROR_TABLE: the type
// checks KilnError's constructor, this checks the literals a type can't see through (a subclass's
// `readonly code = '…'`, a `super('…'` call, a code built in a string).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_TABLE } from './errors.ts';

const root = join(fileURLToPath(import.meta.url), '..', '..');

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    if (e === 'node_modules' || e.startsWith('.')) continue;
    const p = join(dir, e);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (e.endsWith('.ts') && !e.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const PATTERNS = [
  /new KilnError\(\s*'([^']*)'/g,
  /readonly code(?:\s*:\s*[^=;]+)?\s*=\s*'([^']*)'/g,
  /\bsuper\(\s*'([A-Z][A-Z0-9_]*)'/g,
];

describe('error codes in the source', () => {
  it('every code a conductor, shared or cli error carries is a key of ERROR_TABLE', () => {
    const found: { code: string; where: string }[] = [];
    for (const file of ['conductor', 'shared', 'cli'].flatMap((d) => sources(join(root, d)))) {
      const text = readFileSync(file, 'utf8');
      for (const re of PATTERNS) {
        for (const m of text.matchAll(re)) {
          const line = text.slice(0, m.index).split('\n').length;
          found.push({ code: m[1]!, where: `${file.slice(root.length + 1)}:${line}` });
        }
      }
    }
    assert.ok(found.length > 50, `the scan found only ${found.length} codes; is the pattern broken?`);
    const unknown = found.filter((f) => !Object.hasOwn(ERROR_TABLE, f.code));
    assert.deepEqual(
      unknown.map((f) => `${f.where}: ${f.code}`),
      [],
      'codes missing from ERROR_TABLE',
    );
  });
});
