// The layering rules hold for the repository, and the checker catches a violating import of
// each kind in a fixture tree (so a green run means the rules were checked, not skipped).
//   shared/        imports nothing of ours
//   agent/         shared/ only (it runs alone in the ramdisk)
//   conductor/     shared/ only (it reaches the agent over HTTP)
//   cli/           anything (it starts the conductor, the lab, the tools)
//   ramdisk-build/, lab/, tools/, test/, bench/, scripts/: free
//   *.test.ts next to the code may also import test/ support code.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { checkLayers, formatReport, LAYERS } from './layers.ts';

const repo = join(import.meta.dirname, '..', '..');

describe('layering rules', () => {
  test('state a rule for each top-level folder', () => {
    assert.deepEqual(LAYERS.shared?.mayImport, []);
    assert.deepEqual(LAYERS.agent?.mayImport, ['shared']);
    assert.deepEqual(LAYERS.conductor?.mayImport, ['shared']);
    for (const free of ['cli', 'ramdisk-build', 'lab', 'tools', 'test', 'bench', 'scripts'])
      assert.equal(LAYERS[free]?.mayImport, '*', free);
  });

  test('hold for the repository', () => {
    const r = checkLayers(repo);
    assert.ok(r.files > 100, `only ${r.files} source files found: is the walk broken?`);
    assert.equal(formatReport(r), '');
  });
});

describe('the layer checker', () => {
  const root = mkdtempSync(join(tmpdir(), 'kiln-layers-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const put = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  put(
    'shared/ok.ts',
    "import { x } from './other.ts';\nimport { readFile } from 'node:fs';\nexport const y = x;\n",
  );
  put('shared/bad.ts', "// the one import below is bad\nexport * from '../cli/main.ts';\n");
  put(
    'agent/bad.ts',
    [
      "import { a } from './local.ts';",
      "// import { b } from '../conductor/commented.ts';",
      'const s = "import(\'../conductor/in-a-string.ts\')";',
      'import type {',
      '  NodeRecord,',
      "} from '../conductor/store/store.ts';",
      'export async function f() {',
      "  return import('../cli/dynamic.ts');",
      '}',
      '',
    ].join('\n'),
  );
  put('agent/bad-support.ts', "import '../test/support/wait.ts';\n");
  put(
    'agent/unit.test.ts',
    "import { w } from '../test/support/wait.ts';\nimport { s } from '../shared/ok.ts';\n",
  );
  put('conductor/deep/bad.ts', "\n\nimport { buildConfigDrive } from '../../agent/disk/configdrive.ts';\n");
  put('cli/main.ts', "import '../conductor/x.ts';\nimport '../agent/y.ts';\nimport '../lab/z.ts';\n");
  put('lab/free.ts', "import '../agent/y.ts';\nimport '../conductor/x.ts';\n");
  put('newthing/x.ts', 'export {};\n');
  put('dist/bundle.mjs', "import '../conductor/x.ts';\n");

  test('reports each violating import as file:line imports X (rule), and nothing else', () => {
    const r = checkLayers(root);
    assert.deepEqual(r.violations.map((v) => `${v.file}:${v.line} ${v.specifier}`).sort(), [
      'agent/bad-support.ts:1 ../test/support/wait.ts',
      'agent/bad.ts:6 ../conductor/store/store.ts',
      'agent/bad.ts:8 ../cli/dynamic.ts',
      'conductor/deep/bad.ts:3 ../../agent/disk/configdrive.ts',
      'shared/bad.ts:2 ../cli/main.ts',
    ]);
    const msg = r.violations.find((v) => v.file === 'conductor/deep/bad.ts')?.message;
    assert.match(
      msg ?? '',
      /^conductor\/deep\/bad\.ts:3 imports \.\.\/\.\.\/agent\/disk\/configdrive\.ts \(conductor\/ may import only conductor\/, shared\/: /,
    );
    assert.deepEqual(r.unruled, ['newthing']);
  });

  test('run as a command, fails on the fixture and passes on the repository', () => {
    const cmd = (dir: string) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'layers.ts'), dir], {
        encoding: 'utf8',
      });
    const bad = cmd(root);
    assert.equal(bad.status, 1);
    assert.match(
      bad.stderr,
      /^agent\/bad\.ts:6 imports \.\.\/conductor\/store\/store\.ts \(agent\/ may import only agent\/, shared\/: /m,
    );
    assert.match(bad.stderr, /^newthing\/ has source files but no layering rule/m);
    const good = cmd(repo);
    assert.equal(good.status, 0, good.stderr);
  });
});
