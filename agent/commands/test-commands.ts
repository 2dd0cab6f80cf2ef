// kiln_test.*: commands for exercising the protocol without touching disks (enabled only with
// --test-commands / KILN_AGENT_TEST_COMMANDS=1, never on a ramdisk's cmdline). `wait` is an
// async command that runs for `seconds`, reports progress, and fails if asked to.

import type { StepTables } from '../run.ts';
import { commandExecutionError } from './errors.ts';
import type { CommandExtension } from './types.ts';

export const testExtension: CommandExtension = {
  name: 'kiln_test',
  commands: {
    wait: {
      async: true,
      run: async (params, ctx) => {
        const seconds = Number(params.seconds ?? 1);
        const total = Math.max(1, Math.round(seconds * 10));
        for (let i = 1; i <= total; i++) {
          if (ctx.signal.aborted) break;
          await new Promise((r) => setTimeout(r, 100));
          ctx.progress({
            phase: 'waiting',
            bytes_done: i,
            bytes_total: total,
            message: `tick ${i}/${total}`,
          });
        }
        if (params.fail) throw commandExecutionError(String(params.fail));
        return `waited ${seconds} s`;
      },
    },
  },
};

/** A clean step a conductor can run for real: waits args.seconds (default 1) with progress. */
export function implementTestSteps(tables: StepTables): void {
  tables.clean.implement(
    'kiln_test_wait',
    async (args, ctx) => {
      const seconds = Number(args.seconds ?? 1);
      const ticks = Math.max(1, Math.round(seconds * 10));
      for (let i = 1; i <= ticks; i++) {
        await new Promise((r) => setTimeout(r, 100));
        ctx.progress({ phase: 'waiting', bytes_done: i, bytes_total: ticks });
      }
      return { waited_s: seconds, node: ctx.node.uuid ?? null };
    },
    {
      interface: 'deploy',
      priority: 0,
      reboot_requested: false,
      abortable: true,
      // Ironic refuses step args that argsinfo does not declare.
      argsinfo: { seconds: { description: 'How long to wait, in seconds.', required: false } },
    },
  );
}
