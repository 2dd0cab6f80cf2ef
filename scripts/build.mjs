// Type-checked separately (`tsc`); this only bundles.
// The agent becomes ONE self-contained ESM file: it runs from an empty folder on the ramdisk,
// so every dependency is inlined and only Node built-ins are imported at run time.
// The CLI keeps its dependencies external: it is installed with node_modules beside it
// (better-sqlite3 is a native addon and cannot be bundled).
// The web console is a browser bundle of its own, in dist/ui/.

import { chmodSync, statSync } from 'node:fs';
import { build } from 'esbuild';
import { buildUi } from './build-ui.mjs';

// Some bundled CommonJS packages call require() for built-ins; ESM has no require, so give it one.
const requireShim =
  "import{createRequire as __kilnCreateRequire}from'node:module';const require=__kilnCreateRequire(import.meta.url);";

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: false,
  logLevel: 'warning',
  legalComments: 'none',
};

await build({
  ...common,
  entryPoints: ['agent/main.ts'],
  outfile: 'dist/agent.mjs',
  minify: true,
  banner: { js: `#!/usr/bin/env node\n${requireShim}` },
});
await build({
  ...common,
  entryPoints: ['cli/main.ts'],
  outfile: 'dist/kiln.mjs',
  packages: 'external',
  banner: { js: `#!/usr/bin/env node\n${requireShim}` },
});
chmodSync('dist/kiln.mjs', 0o755);
chmodSync('dist/agent.mjs', 0o755);
// The web console the conductor serves at /ui (see scripts/build-ui.mjs).
const ui = await buildUi('dist/ui');
for (const f of ['dist/agent.mjs', 'dist/kiln.mjs', ...ui]) {
  console.log(`${f.padEnd(16)} ${(statSync(f).size / 1024).toFixed(0).padStart(6)} KiB`);
}
