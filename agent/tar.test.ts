// The tar writer checked by GNU tar itself.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { run } from '../shared/exec.ts';
import { tar } from './tar.ts';

test('GNU tar lists and extracts what tar() wrote', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-tar-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const big = 'x'.repeat(1000);
  writeFileSync(
    join(dir, 'a.tar.gz'),
    gzipSync(
      tar([
        { name: 'dmesg', data: 'hello\n' },
        { name: 'big.log', data: big },
      ]),
    ),
  );
  const list = await run('tar', ['-tzvf', join(dir, 'a.tar.gz')]);
  assert.match(list.stdout, /dmesg/);
  assert.match(list.stdout, / 1000 .*big\.log/);
  const out = await run('tar', ['-xzOf', join(dir, 'a.tar.gz'), 'dmesg']);
  assert.equal(out.stdout, 'hello');
});
