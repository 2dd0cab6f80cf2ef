// Hooks that run an external program, so a lab can make the emulated BMC drive a real machine
// (e.g. start and stop a QEMU VM) without writing TypeScript. The program is run through /bin/sh
// with these arguments, and a non-zero exit fails the Redfish request with HTTP 500:
//   <program> reset <system-id> <ResetType> <from On|Off> <to On|Off> <boot-target>
//   <program> boot <system-id> <BootSourceOverrideTarget> <BootSourceOverrideEnabled> <BootSourceOverrideMode>
//   <program> get-power <system-id>          (prints On or Off; prints nothing to keep the emulator's own state)
import { execFile } from 'node:child_process';
import type { RedfishBmcHooks } from './server.ts';

function runHook(program: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      '/bin/sh',
      ['-c', `${program} "$@"`, 'hook', ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new Error(
              `${args[0]} hook exited with ${err.code ?? err.signal}: ${String(stderr).trim().slice(-300)}`,
            ),
          );
        else resolve(String(stdout));
      },
    );
  });
}

export function commandHooks(program: string): RedfishBmcHooks {
  return {
    onReset: async (id, e) => {
      await runHook(program, ['reset', id, e.resetType, e.from, e.to, e.bootTarget]);
    },
    onBoot: async (id, b) => {
      await runHook(program, [
        'boot',
        id,
        b.BootSourceOverrideTarget,
        b.BootSourceOverrideEnabled,
        b.BootSourceOverrideMode,
      ]);
    },
    readPower: async (id) => {
      const out = (await runHook(program, ['get-power', id])).trim();
      return out === 'On' || out === 'Off' ? out : undefined;
    },
  };
}
