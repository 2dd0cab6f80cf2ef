// standby.power_off and standby.sync. The disk module adds the image commands to the same
// extension name (prepare_image, get_partition_uuids); the registry merges them.
import type { Runner } from '../../shared/exec.ts';
import type { CommandExtension } from './types.ts';

export interface StandbyDeps {
  run: Runner;
  /** Switches the machine off; injected so tests and development runs don't power off the host. */
  powerOff: () => Promise<void>;
}

export function standbyExtension(deps: StandbyDeps): CommandExtension {
  return {
    name: 'standby',
    commands: {
      sync: {
        async: false,
        run: async () => {
          await deps.run('sync', []);
          return null;
        },
      },
      power_off: {
        async: true,
        run: async (_params, ctx) => {
          // Flush page cache first: the image was written through buffered I/O.
          await deps.run('sync', [], { timeoutMs: 300_000 });
          ctx.log.info({}, 'disks synced; powering off');
          // Answer the conductor's next poll before going away.
          setTimeout(() => void deps.powerOff(), 500).unref?.();
          return null;
        },
      },
    },
  };
}
