// Network namespaces and veth links for tests with real DHCP/TFTP peers. Everything a test makes
// is named with a per-process tag and removed by destroy(), which never throws, so an `after` hook
// can always call it. Interfaces are created directly inside their namespaces, so their names
// only need to be unique there.
import { type ChildProcess, execFile, type SpawnOptions, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const pexec = promisify(execFile);
let counter = 0;

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export class Netns {
  private readonly children = new Set<ChildProcess>();
  constructor(readonly name: string) {}

  /** Runs a command inside the namespace and waits for it; a non-zero exit is returned, not thrown. */
  async exec(
    cmd: string,
    args: string[],
    opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
  ): Promise<ExecResult> {
    try {
      const r = await pexec('ip', ['netns', 'exec', this.name, cmd, ...args], {
        timeout: opts.timeoutMs ?? 30_000,
        maxBuffer: 64 << 20,
        env: opts.env ?? process.env,
        killSignal: 'SIGKILL',
      });
      return { stdout: r.stdout, stderr: r.stderr, code: 0 };
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; code?: number | string };
      return {
        stdout: err.stdout ?? '',
        stderr: err.stderr ?? String(e),
        code: typeof err.code === 'number' ? err.code : -1,
      };
    }
  }

  /** Starts a long-running command inside the namespace; destroy() kills it if still running. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  async killChildren(): Promise<void> {
    await Promise.all(
      [...this.children].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 3000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
  }
}

async function ip(args: string[]): Promise<void> {
  await pexec('ip', args, { timeout: 15_000 });
}

/** Creates a namespace with loopback up. */
export async function createNetns(prefix = 'kt'): Promise<Netns> {
  const name = `${prefix}${process.pid}x${counter++}`;
  await ip(['netns', 'add', name]);
  await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  return new Netns(name);
}

export interface LinkEnd {
  ns: Netns;
  ifname: string;
  /** CIDR, e.g. 10.231.0.1/24; omit for an unnumbered end. */
  address?: string;
}

/** A veth pair between two namespaces, both ends up. */
export async function linkNetns(a: LinkEnd, b: LinkEnd): Promise<void> {
  await ip([
    'link',
    'add',
    a.ifname,
    'netns',
    a.ns.name,
    'type',
    'veth',
    'peer',
    'name',
    b.ifname,
    'netns',
    b.ns.name,
  ]);
  for (const end of [a, b]) {
    if (end.address) await ip(['-n', end.ns.name, 'addr', 'add', end.address, 'dev', end.ifname]);
    await ip(['-n', end.ns.name, 'link', 'set', end.ifname, 'up']);
  }
}

/** Kills what was spawned in the namespaces and deletes them (their veths go with them). Never throws. */
export async function destroy(...namespaces: Array<Netns | undefined>): Promise<void> {
  for (const ns of namespaces) {
    if (!ns) continue;
    await ns.killChildren().catch(() => {});
    // Anything still running inside (e.g. a daemonised client) would keep the namespace alive.
    const pids = await pexec('ip', ['netns', 'pids', ns.name]).then(
      (r) => r.stdout.split(/\s+/).filter(Boolean),
      () => [],
    );
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await ip(['netns', 'del', ns.name]).catch(() => {});
  }
}

/** Resolves with the first stdout line matching `pred` (JSON lines), or rejects on exit/timeout. */
export function waitForLine<T = Record<string, unknown>>(
  child: ChildProcess,
  pred: (msg: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let stderr = '';
    const onErr = (d: Buffer) => {
      stderr += String(d);
    };
    const onData = (d: Buffer) => {
      buf += String(d);
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
        let msg: T;
        try {
          msg = JSON.parse(line) as T;
        } catch {
          continue;
        }
        if (pred(msg)) {
          cleanup();
          resolve(msg);
          return;
        }
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`process exited (${code}) before the expected line; stderr: ${stderr.slice(-2000)}`));
    };
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for a line; stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(t);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.on('exit', onExit);
  });
}

/**
 * An L2 segment: a bridge inside `lan` with one veth per member namespace. Each member end gets
 * `ifname` and the optional address; the bridge ports are named <ifname>p inside `lan`.
 */
export async function bridgeNetns(lan: Netns, members: LinkEnd[]): Promise<void> {
  await ip(['-n', lan.name, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
  await ip(['-n', lan.name, 'link', 'set', 'br0', 'up']);
  for (const m of members) {
    const port = `${m.ifname}p`;
    await ip([
      'link',
      'add',
      port,
      'netns',
      lan.name,
      'type',
      'veth',
      'peer',
      'name',
      m.ifname,
      'netns',
      m.ns.name,
    ]);
    await ip(['-n', lan.name, 'link', 'set', port, 'master', 'br0']);
    await ip(['-n', lan.name, 'link', 'set', port, 'up']);
    if (m.address) await ip(['-n', m.ns.name, 'addr', 'add', m.address, 'dev', m.ifname]);
    await ip(['-n', m.ns.name, 'link', 'set', m.ifname, 'up']);
  }
}
