// log.collect_system_logs: what an operator needs after a failed deploy, as a base64 tar.gz
// (Ironic stores it under its deploy logs). Each source is optional: a missing tool becomes a
// line in errors.txt instead of a failed command.
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import type { Runner } from '../../shared/exec.ts';
import { tar } from '../tar.ts';
import type { CommandExtension } from './types.ts';

export interface LogDeps {
  run: Runner;
  /** The agent's own log lines. */
  agentLog: () => string | Promise<string>;
}

const COMMANDS: [string, string, string[]][] = [
  ['dmesg', 'dmesg', []],
  ['journal', 'journalctl', ['--boot', '--no-pager', '-o', 'short-precise']],
  ['lsblk', 'lsblk', ['--all', '-o', '+UUID,PARTUUID,FSTYPE,MODEL,SERIAL,WWN']],
  ['ip_addr', 'ip', ['addr']],
  ['ip_route', 'ip', ['route']],
  ['ps', 'ps', ['aux']],
  ['df', 'df', ['-a']],
  ['mount', 'mount', []],
  ['lshw', 'lshw', ['-quiet', '-json']],
  ['mdstat', 'cat', ['/proc/mdstat']],
  ['parted', 'parted', ['-l', '-s']],
];

const FILES: [string, string][] = [
  ['cmdline', '/proc/cmdline'],
  ['meminfo', '/proc/meminfo'],
  ['cpuinfo', '/proc/cpuinfo'],
];

export async function collectSystemLogs(deps: LogDeps): Promise<{ files: string[]; archive: Buffer }> {
  const errors: string[] = [];
  const files: { name: string; data: string }[] = [{ name: 'kiln-agent.log', data: await deps.agentLog() }];
  await Promise.all(
    COMMANDS.map(async ([name, cmd, args]) => {
      try {
        const r = await deps.run(cmd, args, { timeoutMs: 30_000 });
        files.push({ name, data: r.stdout });
      } catch (e) {
        errors.push(`${name}: ${(e as Error).message}`);
      }
    }),
  );
  for (const [name, path] of FILES) {
    try {
      files.push({ name, data: await readFile(path, 'utf8') });
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message}`);
    }
  }
  if (errors.length) files.push({ name: 'errors.txt', data: `${errors.join('\n')}\n` });
  files.sort((a, b) => a.name.localeCompare(b.name));
  return { files: files.map((f) => f.name), archive: gzipSync(tar(files)) };
}

export function logExtension(deps: LogDeps): CommandExtension {
  return {
    name: 'log',
    commands: {
      collect_system_logs: {
        async: false,
        run: async () => ({ system_logs: (await collectSystemLogs(deps)).archive.toString('base64') }),
      },
    },
  };
}
