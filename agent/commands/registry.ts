// Commands by name. Extensions with the same name merge (the disk module adds standby.prepare_image
// beside the base standby.power_off); two definitions of one command are a programming error.

import { extensionNotFound, invalidCommand } from './errors.ts';
import type { CommandDefinition, CommandExtension } from './types.ts';

export interface ResolvedCommand {
  extension: string;
  command: string;
  definition: CommandDefinition;
}

export class CommandRegistry {
  private readonly extensions = new Map<string, Map<string, CommandDefinition>>();

  constructor(extensions: readonly CommandExtension[] = []) {
    for (const e of extensions) this.add(e);
  }

  add(ext: CommandExtension): this {
    let cmds = this.extensions.get(ext.name);
    if (!cmds) {
      cmds = new Map();
      this.extensions.set(ext.name, cmds);
    }
    for (const [name, def] of Object.entries(ext.commands)) {
      if (cmds.has(name)) throw new Error(`agent command ${ext.name}.${name} is defined twice`);
      cmds.set(name, def);
    }
    return this;
  }

  /** "<extension>.<command>" → definition, or the IPA error for the request. */
  resolve(fullName: string): ResolvedCommand {
    const dot = fullName.indexOf('.');
    if (dot <= 0 || dot === fullName.length - 1) {
      throw invalidCommand('Command name must be of the form <extension>.<name>');
    }
    const extension = fullName.slice(0, dot);
    const command = fullName.slice(dot + 1);
    const cmds = this.extensions.get(extension);
    if (!cmds) throw extensionNotFound(extension);
    const definition = cmds.get(command);
    if (!definition) throw invalidCommand(`Unknown command: ${command}`);
    return { extension, command, definition };
  }

  names(): string[] {
    return [...this.extensions].flatMap(([e, cmds]) => [...cmds.keys()].map((c) => `${e}.${c}`)).sort();
  }
}
