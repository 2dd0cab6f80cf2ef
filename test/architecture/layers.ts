// The layering rules, checked over the import graph. Every source file under a top-level folder
// is read with TypeScript's own pre-processor (static `import … from`, `import '…'`,
// `export … from`, `import type`, and dynamic `import('…')` with a literal specifier; comments
// and strings are not mistaken for imports), each relative specifier is resolved, and an import
// whose target's top-level folder is not allowed for the importing file's folder is a violation.
// A unit test (*.test.ts) next to the code may also import test/ support code, nothing else more.
// Package and `node:` imports are not checked. test/architecture/layers.test.ts runs this over the
// repository, so `npm test` (and CI) fails on a violating import; `node --import tsx
// test/architecture/layers.ts [root]` prints the violations.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

export interface Layer {
  /** Top-level folders this one may import from (itself is always allowed); '*' for any. */
  mayImport: readonly string[] | '*';
  why: string;
}

/** The rule for each top-level folder. A folder with source files and no rule is an error. */
export const LAYERS: Readonly<Record<string, Layer>> = {
  shared: {
    mayImport: [],
    why: 'shared/ is used by the agent, the conductor and the CLI, so it imports none of them',
  },
  agent: {
    mayImport: ['shared'],
    why: 'the agent runs alone in the ramdisk (dist/agent.mjs); it shares only shared/ with the conductor',
  },
  conductor: {
    mayImport: ['shared'],
    why: 'the conductor talks to the agent over HTTP only; what both need lives in shared/',
  },
  ui: {
    mayImport: ['shared'],
    why: 'the web console runs in the browser and reaches the conductor over its HTTP API only; it may share wire schemas',
  },
  cli: { mayImport: '*', why: 'the kiln command starts the conductor, the lab and the tools' },
  'ramdisk-build': { mayImport: '*', why: 'build tooling, free' },
  lab: { mayImport: '*', why: 'the QEMU lab drives every part, free' },
  tools: { mayImport: '*', why: 'developer tools, free' },
  test: { mayImport: '*', why: 'tests, free' },
  bench: { mayImport: '*', why: 'benchmarks, free' },
  scripts: { mayImport: '*', why: 'build and test scripts, free' },
};

/** Folders that hold no source of ours (or only generated or third-party code). */
const SKIP = new Set(['node_modules', 'dist', 'docs', 'contrib']);
const SOURCE = /\.(ts|mts|cts|js|mjs|cjs)$/;

export interface Violation {
  file: string;
  line: number;
  specifier: string;
  /** `file:line imports X (rule)` */
  message: string;
}

export interface LayerReport {
  violations: Violation[];
  /** Top-level folders with source files but no rule in LAYERS. */
  unruled: string[];
  files: number;
}

function walk(dir: string, out: string[]): string[] {
  for (const e of readdirSync(dir)) {
    if (e.startsWith('.') || e === 'node_modules') continue;
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (SOURCE.test(e) && !e.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function lineOf(text: string, pos: number): number {
  let line = 1;
  for (let i = 0; i < pos; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** The top-level folder of a path relative to root, or null for a file at the root. */
function topOf(rel: string): string | null {
  const parts = rel.split(sep);
  return parts.length > 1 ? parts[0]! : null;
}

function allowed(
  from: string,
  to: string,
  isTest: boolean,
  layers: Readonly<Record<string, Layer>>,
): boolean {
  if (from === to || (isTest && to === 'test')) return true;
  const rule = layers[from];
  if (!rule) return true; // reported as unruled instead
  return rule.mayImport === '*' || rule.mayImport.includes(to);
}

export function checkLayers(root: string, layers: Readonly<Record<string, Layer>> = LAYERS): LayerReport {
  root = resolve(root);
  const violations: Violation[] = [];
  const unruled = new Set<string>();
  let files = 0;
  for (const top of readdirSync(root)) {
    if (top.startsWith('.') || SKIP.has(top)) continue;
    const dir = join(root, top);
    if (!statSync(dir).isDirectory()) continue;
    for (const file of walk(dir, [])) {
      files++;
      if (!layers[top]) {
        unruled.add(top);
        continue;
      }
      const text = readFileSync(file, 'utf8');
      const { importedFiles } = ts.preProcessFile(text, true, true);
      for (const imp of importedFiles) {
        const spec = imp.fileName;
        if (!spec.startsWith('./') && !spec.startsWith('../')) continue;
        const target = relative(root, resolve(dirname(file), spec));
        if (target.startsWith('..')) continue;
        const to = topOf(target);
        if (to === null || allowed(top, to, /\.test\.[mc]?[tj]s$/.test(file), layers)) continue;
        const rel = relative(root, file).split(sep).join('/');
        const line = lineOf(text, imp.pos);
        const rule = layers[top]!;
        const may =
          rule.mayImport === '*' ? 'anything' : [top, ...rule.mayImport].map((f) => `${f}/`).join(', ');
        violations.push({
          file: rel,
          line,
          specifier: spec,
          message: `${rel}:${line} imports ${spec} (${top}/ may import only ${may}: ${rule.why})`,
        });
      }
    }
  }
  return { violations, unruled: [...unruled].sort(), files };
}

export function formatReport(r: LayerReport): string {
  const lines = r.violations.map((v) => v.message);
  for (const u of r.unruled)
    lines.push(
      `${u}/ has source files but no layering rule; add one to LAYERS in test/architecture/layers.ts`,
    );
  return lines.join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const r = checkLayers(process.argv[2] ?? '.');
  const text = formatReport(r);
  if (text) {
    process.stderr.write(`${text}\n`);
    process.exit(1);
  }
  process.stdout.write(`layers: ${r.files} files, no violations\n`);
}
