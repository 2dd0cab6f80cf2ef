// Shared bits of the lab tests: a per-process lab index (so parallel runs don't share a bridge),
// real ipmitool calls, and checks that nothing the lab made is left behind.
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const pexec = promisify(execFile);

/** A lab index in 200–249 derived from the pid: bridge kiln-lab2xx, subnet 172.30.2xx.0/24. */
export function testLabIndex(offset = 0): number {
  return 200 + ((process.pid + offset) % 50);
}

export interface Bmc {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** Run real ipmitool (RMCP+, cipher suite 3) against a vBMC; the password goes through the env. */
export async function ipmitool(bmc: Bmc, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await pexec(
    'ipmitool',
    ['-I', 'lanplus', '-C', '3', '-H', bmc.host, '-p', String(bmc.port), '-U', bmc.user, '-E', ...args],
    { env: { ...process.env, IPMI_PASSWORD: bmc.password }, timeout: 30_000 },
  );
  return { stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

export function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0;
}

/** Links whose name starts with prefix. */
export function linksStartingWith(prefix: string): string[] {
  const out = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '';
  return out
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => Boolean(n?.startsWith(prefix)));
}

/** Pids of live (non-zombie) processes whose command line contains needle. */
export function processesWith(needle: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(needle)) pids.push(Number(e));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
