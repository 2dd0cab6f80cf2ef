// The parts of buildRamdisk() (ramdisk-build/index.ts) that need no downloads: where it finds its script and the agent,
// and how it refuses bad input before starting a build. The full build runs in
// test/ramdisk/boot.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { Command } from 'commander';
import { registerRamdiskCommand } from '../../ramdisk-build/cli.ts';
import {
  buildRamdisk,
  buildScriptPath,
  defaultAgentPath,
  defaultCacheDir,
} from '../../ramdisk-build/index.ts';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-ramdisk-unit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const root = resolve(import.meta.dirname, '../..');

test('the build script and the agent are found from the source tree and from dist/', () => {
  assert.equal(buildScriptPath(), join(root, 'ramdisk-build', 'build.sh'));
  assert.equal(buildScriptPath(join(root, 'dist')), join(root, 'ramdisk-build', 'build.sh'));
  assert.equal(defaultAgentPath(), join(root, 'dist', 'agent.mjs'));
  assert.equal(defaultAgentPath(join(root, 'dist')), join(root, 'dist', 'agent.mjs'));
  assert.throws(() => buildScriptPath(tmp), /ramdisk build script not found/);
});

test('the cache defaults to KILN_RAMDISK_CACHE, then XDG_CACHE_HOME, then ~/.cache', () => {
  assert.equal(defaultCacheDir({ KILN_RAMDISK_CACHE: '/c' }), '/c');
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/kiln/ramdisk');
  assert.match(defaultCacheDir({}), /\.cache\/kiln\/ramdisk$/);
});

test('a missing agent bundle or an unknown compression is refused before building', async () => {
  await assert.rejects(
    buildRamdisk({ outDir: join(tmp, 'out'), agentPath: join(tmp, 'nope.mjs'), cacheDir: tmp }),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && /nope\.mjs not found/.test(e.message),
  );
  await assert.rejects(
    buildRamdisk({
      outDir: join(tmp, 'out'),
      agentPath: buildScriptPath(),
      cacheDir: tmp,
      compression: 'lz4' as 'zstd',
    }),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && /lz4/.test(e.message),
  );
});

test('build.sh names what is wrong: a missing agent, an unknown option', () => {
  const r1 = spawnSync('bash', [buildScriptPath(), '--out', join(tmp, 'o'), '--agent', join(tmp, 'x.mjs')], {
    encoding: 'utf8',
  });
  assert.equal(r1.status, 1);
  assert.match(r1.stderr, /agent bundle .*x\.mjs not found; run 'node scripts\/build\.mjs' first/);
  const r2 = spawnSync('bash', [buildScriptPath(), '--bogus'], { encoding: 'utf8' });
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /unknown option '--bogus'/);
});

test('kiln ramdisk build is registered with its options', () => {
  const program = new Command('kiln').option('--json');
  registerRamdiskCommand(program);
  const build = program.commands
    .find((c) => c.name() === 'ramdisk')
    ?.commands.find((c) => c.name() === 'build');
  assert.ok(build);
  const flags = build.options.map((o) => o.long);
  for (const f of ['--out', '--agent', '--cache', '--compression', '--node-version', '--kernel-package']) {
    assert.ok(flags.includes(f), f);
  }
});
