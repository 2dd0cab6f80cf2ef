// What an inventory (IPA's get_hardware_info / inspection data) says about a node: its
// scheduling properties, its ports and which of them it booted from. First-boot enrollment
// (conductor/enroll/discovery.ts) and in-band inspection (conductor/provision/agent-workflow.ts)
// both take a node's fields from here, so a machine gets the same fields whichever way it came.
import { randomUUID } from 'node:crypto';
import { nicMac, parseBootif } from '../../shared/mac.ts';
import { defaultRootDisk, GIB } from '../../shared/root-disk.ts';
import type { Inventory } from '../../shared/wire/ipa.ts';
import type { Store } from '../store/store.ts';

export type InventoryProperties = {
  cpu_arch?: string;
  cpus?: number;
  memory_mb?: number;
  local_gb?: number;
  boot_mode?: string;
};

/**
 * local_gb as Ironic's inspection computes it: the root disk's size in whole GiB minus 1 (the
 * partitioning spacing), never below 0. Undefined when there is no disk that can be the root.
 */
export function localGb(disks: Inventory['disks'] | undefined): number | undefined {
  const root = defaultRootDisk(disks ?? []);
  return root ? Math.max(0, Math.floor(root.size / GIB) - 1) : undefined;
}

/** cpu_arch, cpus, memory_mb, local_gb and boot_mode; a value the inventory does not give is left out. */
export function propertiesFromInventory(inv: Partial<Inventory>): InventoryProperties {
  const props: InventoryProperties = {
    cpu_arch: inv.cpu?.architecture,
    cpus: inv.cpu?.count,
    memory_mb:
      inv.memory?.physical_mb ?? (inv.memory?.total ? Math.round(inv.memory.total / 1048576) : undefined),
    local_gb: localGb(inv.disks),
    boot_mode: inv.boot?.current_boot_mode,
  };
  return Object.fromEntries(Object.entries(props).filter(([, v]) => v !== undefined && v !== null));
}

/** The MACs of the inventory's NICs, normalised, once each, without all-zero or broadcast ones. */
export function inventoryMacs(inv: Partial<Inventory>): string[] {
  return [...new Set((inv.interfaces ?? []).map((i) => nicMac(i.mac_address)).filter((m) => m !== null))];
}

export interface InventoryPort {
  address: string;
  pxe_enabled: boolean;
}

/**
 * The ports an inventory describes. Only the boot interface is pxe_enabled (Ironic's inspection
 * with update_pxe_enabled): BOOTIF as the ramdisk was booted (the inspection body's
 * boot_interface, else the inventory's boot.pxe_interface), else the first NIC.
 */
export function portsFromInventory(
  inv: Partial<Inventory>,
  bootInterface?: unknown,
): { ports: InventoryPort[]; bootMac: string | null } {
  const macs = inventoryMacs(inv);
  const bootMac = parseBootif(bootInterface ?? inv.boot?.pxe_interface) ?? macs[0] ?? null;
  return { ports: macs.map((address) => ({ address, pxe_enabled: address === bootMac })), bootMac };
}

/**
 * Create the ports no node has yet (a MAC already registered, to this node or another, is left
 * as it is); returns the addresses added.
 */
export async function addInventoryPorts(
  store: Store,
  nodeUuid: string,
  ports: readonly InventoryPort[],
): Promise<string[]> {
  const added: string[] = [];
  for (const p of ports) {
    if (await store.ports.getByAddress(p.address)) continue;
    await store.ports.create({ uuid: randomUUID(), node_uuid: nodeUuid, ...p });
    added.push(p.address);
  }
  return added;
}
