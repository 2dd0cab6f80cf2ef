// poll.get_hardware_info: the inventory, on demand (IPA's standalone mode; Kiln's inspection).
import type { Inventory } from '../../shared/wire/ipa.ts';
import type { CommandExtension } from './types.ts';

export function pollExtension(collect: () => Promise<Inventory>): CommandExtension {
  return {
    name: 'poll',
    commands: {
      get_hardware_info: { async: false, run: async () => collect() },
    },
  };
}
