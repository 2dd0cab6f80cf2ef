// Real `kiln` processes for tests: the bundled CLI from dist/ (npm test builds it first). A
// conductor started here runs as in production (TLS with a self-signed certificate, tokens on):
// its admin token is made first with `kiln token create --db`, and `kiln()` calls aimed at it
// carry that token and pin its certificate, through the environment as an operator would.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, buildConnector, request } from 'undici';

export const KILN = join(import.meta.dirname, '..', '..', 'dist', 'kiln.mjs');

function ensureBuilt(): void {
  if (!existsSync(KILN)) throw new Error(`${KILN} is missing: run 'npm run build' before the tests`);
}

export interface ConductorProcess {
  url: string;
  /** KILN_TOKEN and KILN_CA_FINGERPRINT for this conductor. */
  env: Record<string, string>;
  /** An authenticated request to the operator API (certificate pinned). */
  request(
    path: string,
    init?: { method?: string; body?: unknown },
  ): Promise<{ status: number; body: unknown }>;
  proc: ChildProcess;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** What `kiln()` adds for a conductor started here, by its URL. */
const credentials = new Map<string, Record<string, string>>();
/** Each database's working directory (TLS files, secrets key): a restart finds its key again. */
const stateDirs = new Map<string, string>();

/**
 * Start `kiln conductor` (its TLS files and secrets key in a fresh directory) and wait until it
 * says where it listens. `args` must name the database with --db: the admin token is made there.
 */
export async function startConductorProcess(
  args: string[],
  env: Record<string, string> = {},
): Promise<ConductorProcess> {
  ensureBuilt();
  const db = args[args.indexOf('--db') + 1];
  if (!args.includes('--db') || !db) throw new Error('startConductorProcess needs --db URL');
  const made = kiln([
    '--json',
    'token',
    'create',
    '--db',
    db,
    '--role',
    'admin',
    '--name',
    `test-admin-${randomBytes(3).toString('hex')}`,
  ]);
  if (made.status !== 0) throw new Error(`kiln token create --db ${db} failed: ${made.stderr}`);
  const token = made.json().token as string;
  const proc = spawn(process.execPath, [KILN, 'conductor', '--host', '127.0.0.1', '--port', '0', ...args], {
    cwd: stateDir(db),
    env: {
      ...process.env,
      KILN_POWER_SYNC_INTERVAL_S: '0',
      KILN_PROVISIONING_HOST: '127.0.0.1',
      KILN_PROVISIONING_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  proc.stdout!.on('data', (d) => {
    out += d;
  });
  const [url, fingerprint] = await new Promise<[string, string | undefined]>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`conductor did not start in 15 s:\n${err}\n${out}`)), 15_000);
    proc.stderr!.on('data', (d) => {
      err += d;
      const m = /operator API (https?:\/\/\S+)(?: \(certificate ([0-9A-F:]+)\))?/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve([m[1]!, m[2]]);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`conductor exited with ${code}:\n${err}\n${out}`));
    });
  });
  const cred: Record<string, string> = { KILN_TOKEN: token };
  if (fingerprint) cred.KILN_CA_FINGERPRINT = fingerprint;
  credentials.set(url, cred);
  const pinned = fingerprint ? pinnedAgent(fingerprint) : undefined;
  return {
    url,
    env: cred,
    async request(path, init = {}) {
      const res = await request(`${url}${path}`, {
        method: (init.method ?? 'GET') as 'GET',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        dispatcher: pinned,
      });
      const text = await res.body.text();
      return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
    },
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

function stateDir(db: string): string {
  let dir = stateDirs.get(db);
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'kiln-conductor-'));
    stateDirs.set(db, dir);
  }
  return dir;
}

/** Trust exactly the certificate with this fingerprint (a conductor's self-signed one). */
function pinnedAgent(fingerprint: string): Agent {
  const base = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 });
  return new Agent({
    connect: (o, cb) =>
      base(o, (e, socket) => {
        if (e) return cb(e, null);
        const got = (socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
        if (got !== fingerprint) {
          socket.destroy();
          return cb(new Error(`certificate ${got} is not the pinned ${fingerprint}`), null);
        }
        cb(null, socket);
      }),
  });
}

export function kiln(
  args: string[],
  opts: { api?: string; input?: string; env?: Record<string, string> } = {},
): CliResult {
  ensureBuilt();
  const target = opts.api ?? opts.env?.KILN_API;
  const cred = [...credentials].find(([url]) => target?.startsWith(url))?.[1] ?? {};
  const r = spawnSync(process.execPath, [KILN, ...(opts.api ? ['--api', opts.api] : []), ...args], {
    input: opts.input,
    encoding: 'utf8',
    env: { ...process.env, ...cred, ...opts.env },
    timeout: 60_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) };
}
