// First-boot enrollment. An unknown machine that PXE-boots gets the ramdisk with an inspection
// call-back URL; its agent posts the inventory here (ironic-inspector's POST /v1/continue, so a
// stock ironic-python-agent works too) and Kiln creates the node with its ports and inventory.
// A machine seen before is matched by hardware and updated instead. With a BMC address in the
// inventory and default BMC credentials configured, the node is then managed (BMC verified);
// without, it waits in enroll for an operator to set its BMC.
import Router from '@koa/router';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { macPrefixMatcher } from '../../shared/mac.ts';
import { checkWire, Inventory } from '../../shared/wire/ipa.ts';
import { bodyOf } from '../api/http.ts';
import { addInventoryPorts, portsFromInventory, propertiesFromInventory } from '../nodes/from-inventory.ts';
import type { NodeService } from '../nodes/service.ts';
import type { ProvisionEngine } from '../provision/engine.ts';
import type { NodeRecord, Store } from '../store/store.ts';
import { type Fingerprint, fingerprint, identify } from './match.ts';

export interface EnrollmentSettings {
  /** enroll: create unknown machines; ignore: refuse them; allow: only MACs with these prefixes. */
  policy: 'enroll' | 'ignore' | 'allow';
  allowMacPrefixes: string[];
  /** Credentials for BMCs learned from inventories (like MAAS setting up the BMC user). */
  bmcUsername?: string;
  bmcPassword?: string;
  /** Port for learned IPMI BMCs; null means the IPMI default (623). */
  bmcPort?: number | null;
}

export interface DiscoveryDeps {
  store: Store;
  nodes: NodeService;
  engine: ProvisionEngine;
  log: Logger;
  settings: EnrollmentSettings;
}

const matchers = new WeakMap<readonly string[], (mac: string) => boolean>();

/**
 * Whether the enrollment policy admits a MAC. Under "allow", a prefix list holding an empty or
 * malformed prefix (see shared/mac.ts) admits nobody: it must never widen to every machine.
 */
export function macAllowed(settings: EnrollmentSettings, mac: string): boolean {
  if (settings.policy === 'enroll') return true;
  if (settings.policy === 'ignore') return false;
  let allowed = matchers.get(settings.allowMacPrefixes);
  if (!allowed) {
    try {
      allowed = macPrefixMatcher(settings.allowMacPrefixes);
    } catch {
      allowed = () => false;
    }
    matchers.set(settings.allowMacPrefixes, allowed);
  }
  return allowed(mac);
}

function learnedBmc(inv: Partial<Inventory>, s: EnrollmentSettings): string | null {
  const ip = inv.bmc_address;
  if (!ip || ip === '0.0.0.0' || !s.bmcUsername) return null;
  return `ipmi://${encodeURIComponent(s.bmcUsername)}@${ip}${s.bmcPort ? `:${s.bmcPort}` : ''}`;
}

export interface DiscoveryResult {
  node: NodeRecord;
  created: boolean;
  matchedBy?: string;
}

export async function processInspection(
  deps: DiscoveryDeps,
  body: { inventory?: unknown; boot_interface?: unknown },
): Promise<DiscoveryResult> {
  const raw = body.inventory as { interfaces?: unknown } | null | undefined;
  if (!raw || typeof raw !== 'object' || !Array.isArray(raw.interfaces)) {
    throw new KilnError(
      'VALIDATION_FAILED',
      'inspection data has no inventory with interfaces; is the ramdisk an ironic-python-agent compatible one?',
    );
  }
  const checked = checkWire(Inventory, raw, 'inventory');
  if (!checked.ok) {
    throw new KilnError(
      'VALIDATION_FAILED',
      `malformed inventory in the inspection data: ${checked.message}`,
      {
        details: checked.issues,
      },
    );
  }
  const inv: Inventory = checked.data;
  const fp: Fingerprint = fingerprint(inv);
  if (fp.macs.length === 0) throw new KilnError('VALIDATION_FAILED', 'inventory lists no valid MAC address');
  const { ports, bootMac } = portsFromInventory(inv, body.boot_interface);
  const pxeMac = bootMac!;
  const { match: found, suspects } = await identify(deps.store, fp);
  const props = propertiesFromInventory(inv);

  if (found) {
    const { node, by } = found;
    await deps.store.nodes.update(node.uuid, {
      inventory: inv as unknown as Record<string, unknown>,
      properties: { ...node.properties, ...props },
    });
    const added = await addInventoryPorts(deps.store, node.uuid, ports);
    await deps.store.events.add({
      node_uuid: node.uuid,
      event: 'inspection_data',
      actor: 'ramdisk',
      result: 'ok',
      message: `inventory received; matched by ${by}${added.length ? `; new ports ${added.join(', ')}` : ''}`,
    });
    deps.log.info({ node: node.uuid, by, added }, 'known machine reported its inventory');
    return { node: (await deps.store.nodes.get(node.uuid))!, created: false, matchedBy: by };
  }

  if (!macAllowed(deps.settings, pxeMac)) {
    throw new KilnError(
      'NOT_FOUND',
      `machine ${pxeMac} is unknown and the enrollment policy (${deps.settings.policy}) does not admit it`,
      { status: 403 },
    );
  }
  const bmc = learnedBmc(inv, deps.settings);
  const node = await deps.nodes.create(
    {
      name: `node-${pxeMac.replace(/:/g, '')}`,
      bmc_address: bmc ?? undefined,
      bmc_password: bmc ? deps.settings.bmcPassword : undefined,
      properties: props,
      ports: [],
    },
    'discovery',
  );
  await addInventoryPorts(deps.store, node.uuid, ports);
  await deps.store.nodes.update(node.uuid, { inventory: inv as unknown as Record<string, unknown> });
  for (const s of suspects) {
    const what = s.by === 'system_uuid' ? `system UUID ${fp.systemUuid}` : `serial ${fp.serial}`;
    await deps.store.events.add({
      node_uuid: node.uuid,
      event: 'possible_duplicate',
      actor: 'ramdisk',
      result: 'info',
      message: `possible duplicate of ${s.node.name ?? s.node.uuid}: same ${what} but none of its MACs; enrolled as a separate node. If it is the same machine with new NICs, delete one node ('kiln node delete ${node.name}') and add the MACs to the other`,
    });
    deps.log.warn(
      { node: node.uuid, duplicateOf: s.node.uuid, by: s.by },
      'possible duplicate enrolled separately',
    );
  }
  await deps.store.events.add({
    node_uuid: node.uuid,
    event: 'discovered',
    actor: 'ramdisk',
    result: 'ok',
    message: bmc
      ? `enrolled on first PXE boot from ${pxeMac}; BMC ${inv.bmc_address} learned from the inventory`
      : `enrolled on first PXE boot from ${pxeMac}; no BMC known yet: set one with 'kiln node update ${node.name} --bmc-address …' and run 'kiln node manage ${node.name}'`,
  });
  deps.log.info({ node: node.uuid, mac: pxeMac, bmc: inv.bmc_address ?? null }, 'enrolled a new machine');
  if (bmc) {
    // Verify the learned BMC now, so the node lands in manageable without an operator.
    await deps.engine
      .act(node.uuid, { target: 'manage' }, 'discovery')
      .catch((e) =>
        deps.log.warn(
          { node: node.uuid, err: (e as Error).message },
          'could not start managing a discovered node',
        ),
      );
  }
  return { node: (await deps.store.nodes.get(node.uuid))!, created: true };
}

/** POST /v1/continue: the inspection call-back, answered the way ironic-inspector does. */
export function discoveryRouter(deps: DiscoveryDeps): Router {
  const r = new Router();
  r.post('/v1/continue', async (ctx) => {
    const result = await processInspection(
      deps,
      (bodyOf(ctx) ?? {}) as { inventory?: unknown; boot_interface?: unknown },
    );
    ctx.status = 200;
    ctx.body = { uuid: result.node.uuid };
  });
  return r;
}
