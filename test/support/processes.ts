// Real `kiln` processes for tests: the bundled CLI from dist/ (npm test builds it first).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const KILN = join(import.meta.dirname, '..', '..', 'dist', 'kiln.mjs');

function ensureBuilt(): void {
  if (!existsSync(KILN)) throw new Error(`${KILN} is missing: run 'npm run build' before the tests`);
}

export interface ConductorProcess {
  url: string;
  proc: ChildProcess;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Start `kiln conductor` and wait until it says where it listens. */
export async function startConductorProcess(
  args: string[],
  env: Record<string, string> = {},
): Promise<ConductorProcess> {
  ensureBuilt();
  const proc = spawn(process.execPath, [KILN, 'conductor', '--host', '127.0.0.1', '--port', '0', ...args], {
    env: { ...process.env, KILN_POWER_SYNC_INTERVAL_S: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  proc.stdout!.on('data', (d) => {
    out += d;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`conductor did not start in 15 s:\n${err}\n${out}`)), 15_000);
    proc.stderr!.on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`conductor exited with ${code}:\n${err}\n${out}`));
    });
  });
  return {
    url,
    proc,
    stderr: () => err + out,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the CLI printed
  json: () => any;
}

export function kiln(
  args: string[],
  opts: { api?: string; input?: string; env?: Record<string, string> } = {},
): CliResult {
  ensureBuilt();
  const r = spawnSync(process.execPath, [KILN, ...(opts.api ? ['--api', opts.api] : []), ...args], {
    input: opts.input,
    encoding: 'utf8',
    env: { ...process.env, ...opts.env },
    timeout: 60_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) };
}
