// Real processes for the agent protocol tests: the bundled agent (dist/agent.mjs) and the
// conductor-side harness, both on loopback. Every process and temp dir is tracked and removed.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { waitFor } from '../support/wait.ts';

export { waitFor };

export const ROOT = resolve(import.meta.dirname, '../..');
export const AGENT_BUNDLE = join(ROOT, 'dist/agent.mjs');

/** Bundle the agent exactly as scripts/build.mjs does (the CLI bundle is not needed here). */
export async function buildAgent(outfile = AGENT_BUNDLE): Promise<string> {
  const requireShim =
    "import{createRequire as __kilnCreateRequire}from'node:module';const require=__kilnCreateRequire(import.meta.url);";
  await build({
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: false,
    logLevel: 'warning',
    legalComments: 'none',
    entryPoints: [join(ROOT, 'agent/main.ts')],
    outfile,
    minify: true,
    banner: { js: `#!/usr/bin/env node\n${requireShim}` },
  });
  return outfile;
}

export class Procs {
  private readonly procs = new Set<ChildProcess>();
  private readonly dirs: string[] = [];

  tempDir(prefix = 'kiln-agent-test-'): string {
    const d = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }

  track(p: ChildProcess): ChildProcess {
    this.procs.add(p);
    p.once('exit', () => this.procs.delete(p));
    return p;
  }

  async cleanup(): Promise<void> {
    await Promise.all([...this.procs].map((p) => stop(p, 'SIGKILL')));
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

export function stop(p: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((r) => {
    p.once('exit', (code) => r(code));
    p.kill(signal);
  });
}

export interface ConductorProc {
  proc: ChildProcess;
  port: number;
  url: string;
  createNode(n: { uuid: string; name?: string; provision_state: string; macs: string[] }): Promise<unknown>;
  node(uuid: string): Promise<{ driver_internal_info: Record<string, unknown>; provision_state: string }>;
  wipe(uuid: string): Promise<void>;
  seen(): Promise<{
    seen: {
      at: number;
      method: string;
      path: string;
      query: string;
      version: string | null;
      body: unknown;
      status: number;
    }[];
    heartbeats_handled: string[];
  }>;
}

export async function startConductor(
  procs: Procs,
  opts: { db: string; port?: number; heartbeatTimeoutS?: number; stock?: boolean },
): Promise<ConductorProc> {
  const args = ['--import', 'tsx', join(ROOT, 'test/agent/harness/conductor.ts'), '--db', opts.db];
  args.push('--port', String(opts.port ?? 0), '--heartbeat-timeout', String(opts.heartbeatTimeoutS ?? 2));
  if (opts.stock) args.push('--stock');
  const proc = procs.track(
    spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  const port = await new Promise<number>((res, rej) => {
    let buf = '';
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const line = buf.split('\n')[0];
      if (buf.includes('\n') && line) res((JSON.parse(line) as { port: number }).port);
    });
    proc.once('exit', (code) => rej(new Error(`conductor harness exited with ${code} before listening`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const json = async (path: string, init?: RequestInit) => {
    const r = await fetch(`${url}${path}`, init);
    return r.json();
  };
  return {
    proc,
    port,
    url,
    createNode: (n) =>
      json('/test/nodes', {
        method: 'POST',
        body: JSON.stringify(n),
        headers: { 'content-type': 'application/json' },
      }),
    node: (uuid) => json(`/test/nodes/${uuid}`) as never,
    wipe: async (uuid) => {
      await json(`/test/nodes/${uuid}/wipe`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
    },
    seen: () => json('/test/seen') as never,
  };
}

export interface AgentProc {
  proc: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: () => string;
  /** Resolves with the first log line whose msg matches. */
  waitForLog(msg: RegExp, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** An agent on loopback for a test conductor at `api`: listens on a free port, never powers anything off. */
export function loopbackAgentArgs(api: string, mac: string): string[] {
  return [
    '--api-url',
    api,
    '--mac',
    mac,
    '--listen-host',
    '127.0.0.1',
    '--listen-port',
    '0',
    '--advertise-host',
    '127.0.0.1',
    '--power-action',
    'none',
  ];
}

export function startAgent(
  procs: Procs,
  opts: { bundle?: string; cwd?: string; args: string[]; env?: Record<string, string> },
): AgentProc {
  const proc = procs.track(
    spawn(process.execPath, [opts.bundle ?? AGENT_BUNDLE, '--cmdline-file', '/dev/null', ...opts.args], {
      cwd: opts.cwd ?? ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const lines: Record<string, unknown>[] = [];
  let err = '';
  let buf = '';
  proc.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
      i = buf.indexOf('\n');
    }
  });
  proc.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    proc,
    lines,
    stderr: () => err,
    exited,
    waitForLog: (msg, timeoutMs = 15_000) =>
      waitFor(
        `agent log /${msg.source}/ (stderr: ${err.slice(-300)})`,
        () => lines.find((l) => msg.test(String(l.msg))),
        timeoutMs,
      ),
  };
}

/** A locally administered MAC, unique per test index. */
export function testMac(i: number): string {
  return `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
}
