// Processes the lab starts outlive the call that started them (QEMU is launched by a power
// script, possibly from ipmi_sim), so they are tracked by pid files. A pid is only trusted when
// /proc/<pid>/cmdline still contains a marker unique to the lab object that wrote it: a pid file
// left by a crashed run must never make us signal an unrelated process that reused the number.
import { readdirSync, readFileSync, rmSync } from 'node:fs';

/** Sleep without the event loop, for teardown steps that must be synchronous. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function readPidFile(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/** True when pid runs (not a zombie) and its command line contains marker. */
export function pidRunning(pid: number, marker: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name, which may itself contain spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    return cmdline.includes(marker);
  } catch {
    return false;
  }
}

/**
 * Stop the process named by pidFile if it is still ours: SIGTERM, then SIGKILL after graceMs.
 * Removes the pid file. Returns true when a process was signalled.
 */
export function stopPidFile(pidFile: string, marker: string, graceMs = 5000): boolean {
  const pid = readPidFile(pidFile);
  let signalled = false;
  if (pid !== null && pidRunning(pid, marker)) {
    signalled = true;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const deadline = Date.now() + graceMs;
    while (pidRunning(pid, marker) && Date.now() < deadline) sleepSync(50);
    if (pidRunning(pid, marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      const hard = Date.now() + 2000;
      while (pidRunning(pid, marker) && Date.now() < hard) sleepSync(20);
    }
  }
  rmSync(pidFile, { force: true });
  return signalled;
}

/** Pids of running processes whose command line contains every one of markers. */
export function findProcesses(...markers: string[]): number[] {
  const found: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const pid = Number(e);
    if (markers.every((m) => pidRunning(pid, m))) found.push(pid);
  }
  return found;
}

/** SIGTERM, then SIGKILL after graceMs, every pid that still carries marker. */
export function stopPids(pids: number[], marker: string, graceMs = 3000): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (pids.some((p) => pidRunning(p, marker)) && Date.now() < deadline) sleepSync(50);
  for (const pid of pids.filter((p) => pidRunning(p, marker))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
