// Builds the inventory from independent collectors, each behind the Collector seam. Collectors
// run concurrently; one that throws leaves its part at a neutral default and is named in
// kiln_collector_failures, and the agent carries on.
import os from 'node:os';
import type { Runner } from '../../shared/exec.ts';
import type { Logger } from '../../shared/log.ts';
import type { CollectorFailure, KilnInventory } from '../../shared/wire/ipa.ts';
import { run as defaultRun } from '../exec.ts';
import { bmcCollector } from './bmc.ts';
import { cpuCollector } from './cpu.ts';
import { disksCollector } from './disks.ts';
import { interfacesCollector, nodeFs } from './interfaces.ts';
import { memoryCollector } from './memory.ts';
import { systemCollector } from './system.ts';
import type { Collector, CollectorContext } from './types.ts';

export const bootCollector: Collector = {
  name: 'boot',
  async collect(ctx) {
    return {
      boot: {
        current_boot_mode: (await ctx.exists('/sys/firmware/efi')) ? 'uefi' : 'bios',
        pxe_interface: ctx.settings.bootif,
      },
    };
  },
};

export const hostnameCollector: Collector = {
  name: 'hostname',
  collect: async () => ({ hostname: os.hostname() }),
};

export const DEFAULT_COLLECTORS: readonly Collector[] = [
  cpuCollector,
  memoryCollector,
  disksCollector,
  interfacesCollector,
  systemCollector,
  bootCollector,
  bmcCollector,
  hostnameCollector,
];

export interface InventoryOptions {
  log: Logger;
  settings: CollectorContext['settings'];
  run?: Runner;
  collectors?: readonly Collector[];
  fs?: Pick<CollectorContext, 'readFile' | 'readdir' | 'readlink' | 'exists'>;
}

function empty(): KilnInventory {
  return {
    interfaces: [],
    cpu: {
      model_name: null,
      frequency: null,
      count: 0,
      architecture: os.machine(),
      flags: [],
      socket_count: null,
    },
    disks: [],
    memory: { total: 0, physical_mb: null },
    bmc_address: null,
    bmc_v6address: null,
    bmc_mac: null,
    system_vendor: {
      product_name: null,
      serial_number: null,
      manufacturer: null,
      firmware: { vendor: null, version: null, build_date: null },
      system_uuid: null,
    },
    boot: { current_boot_mode: 'bios', pxe_interface: null },
    hostname: os.hostname(),
    kiln_collector_failures: [],
  };
}

export async function collectInventory(opts: InventoryOptions): Promise<KilnInventory> {
  const inv = empty();
  const failures: CollectorFailure[] = [];
  const fs = opts.fs ?? nodeFs;
  const parts = await Promise.all(
    (opts.collectors ?? DEFAULT_COLLECTORS).map(async (c) => {
      const ctx: CollectorContext = {
        ...fs,
        run: opts.run ?? defaultRun,
        log: opts.log.child({ collector: c.name }),
        settings: opts.settings,
        fail: (message) => failures.push({ collector: c.name, message }),
      };
      try {
        return await c.collect(ctx);
      } catch (e) {
        const message = (e as Error).message ?? String(e);
        failures.push({ collector: c.name, message });
        opts.log.warn({ collector: c.name, err: message }, 'inventory collector failed');
        return {};
      }
    }),
  );
  for (const p of parts) Object.assign(inv, p);
  inv.kiln_collector_failures = failures;
  return inv;
}
