// Runs every *.test.ts under the source folders with Node's own runner.
// Node 20's `node --test` does not expand globs, so the files are listed here; finding none is an
// error, because a green run that tested nothing hides a broken test layout.
// Usage: node scripts/run-tests.mjs [substring-filter ...]

import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['shared', 'conductor', 'agent', 'cli', 'test'];
const filters = process.argv.slice(2);

function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e === 'node_modules' || e.startsWith('.')) continue;
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (e.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = roots
  .flatMap((r) => walk(r, []))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(
    `no test files found under ${roots.join(', ')}${filters.length ? ` matching ${filters.join(', ')}` : ''}`,
  );
  process.exit(1);
}
console.error(`running ${files.length} test files`);
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
