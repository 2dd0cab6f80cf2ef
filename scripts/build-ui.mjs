// The web console (ui/): one browser bundle, app.js, beside the static index.html and app.css, in
// dist/ui/ where the conductor serves it at /ui. Everything the page needs is in these three files:
// no CDN, no web fonts, nothing fetched from another origin (the page's CSP allows only 'self').
// Exported so the browser tests can build the current source into a folder of their own.

import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

export const UI_FILES = ['index.html', 'app.js', 'app.css'];

/** Bundle ui/src/main.tsx and copy the static files into `outDir`; returns the files written. */
export async function buildUi(outDir = 'dist/ui', root = '.') {
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: [join(root, 'ui/src/main.tsx')],
    outfile: join(outDir, 'app.js'),
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2020',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'app.css']) copyFileSync(join(root, 'ui', f), join(outDir, f));
  return UI_FILES.map((f) => join(outDir, f));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of await buildUi())
    console.log(`${f.padEnd(16)} ${(statSync(f).size / 1024).toFixed(0).padStart(6)} KiB`);
}
