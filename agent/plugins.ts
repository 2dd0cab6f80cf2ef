// What the bundled agent runs besides its built-in commands: each plugin adds command extensions
// (merged by name with the built-in ones, e.g. standby.prepare_image beside standby.power_off)
// and/or implements clean/deploy steps in the step tables (erase_devices, write_image, ...).
// The disk engine registers itself here with one import and one entry in PLUGINS.
import type { CommandExtension } from './commands/types.ts';
import type { StepTables } from './run.ts';

export interface AgentPlugin {
  name: string;
  extensions?: readonly CommandExtension[];
  configureSteps?(tables: StepTables): void;
}

export const PLUGINS: readonly AgentPlugin[] = [];

/** The runAgent options that install a list of plugins. */
export function pluginOptions(plugins: readonly AgentPlugin[]): {
  extensions: CommandExtension[];
  configureSteps: (tables: StepTables) => void;
} {
  return {
    extensions: plugins.flatMap((p) => p.extensions ?? []),
    configureSteps: (tables) => {
      for (const p of plugins) p.configureSteps?.(tables);
    },
  };
}
