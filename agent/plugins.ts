// What the bundled agent runs besides its built-in commands: each plugin adds command extensions
// (merged by name with the built-in ones, e.g. standby.prepare_image beside standby.power_off)
// and/or implements clean/deploy steps in the step tables (erase_devices, write_image, ...).
// Plugins are loaded after lookup, before the command API opens: the disk engine's module graph
// (an HTTP client, decompressors) is not needed to find the node, and start-up stays short.
import type { DiskCommandsOptions } from './commands/disk-steps.ts';
import type { CommandExtension } from './commands/types.ts';
import { type DeviceAccess, refusalMessage } from './device-access.ts';
import type { StepTables } from './run.ts';

export interface AgentPlugin {
  name: string;
  extensions?: readonly CommandExtension[];
  configureSteps?(tables: StepTables): void;
}

/** What the agent tells its plugins. */
export interface PluginContext {
  /** What destructive steps may write (agent/device-access.ts). */
  access: DeviceAccess;
}

/** The disk engine's limits for a device-access decision. */
export function diskAccessOptions(access: DeviceAccess): DiskCommandsOptions {
  return {
    nvram: access.inRamdisk,
    ...(access.allowed
      ? { allowOnly: access.allowed, refusal: (devices) => refusalMessage(access, devices) }
      : {}),
  };
}

/** The plugins of the agent; `disk` adds disk-engine options (tests: seams). */
export async function loadPlugins(
  ctx: PluginContext,
  disk: DiskCommandsOptions = {},
): Promise<AgentPlugin[]> {
  const [{ createDiskCommands }, { run }] = await Promise.all([
    import('./commands/disk-steps.ts'),
    import('./exec.ts'),
  ]);
  const cmds = createDiskCommands({ run, ...diskAccessOptions(ctx.access), ...disk });
  return [
    { name: 'disk', extensions: cmds.extensions, configureSteps: (t) => cmds.register(t.clean, t.deploy) },
  ];
}
