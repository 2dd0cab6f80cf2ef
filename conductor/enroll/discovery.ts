// First-boot enrollment. An unknown machine that PXE-boots gets the ramdisk with an inspection
// call-back URL; its agent posts the inventory here (ironic-inspector's POST /v1/continue, so a
// stock ironic-python-agent works too) and Kiln creates the node with its ports and inventory.
// The call-back is unauthenticated: anyone on the provisioning network can post an inventory
// naming any MAC. So a machine seen before is updated only while it waits for exactly this
// inspection (inspect wait, the inventory holding every one of its registered MACs); any other
// inventory for a known machine is refused and recorded on that node as a security event. A new
// node records the BMC address its inventory reports but gets no credentials: the configured
// enrollment credentials go to that address only once an operator approves it (approve.ts).
import Router from '@koa/router';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { macPrefixMatcher } from '../../shared/mac.ts';
import { checkWire, Inventory } from '../../shared/wire/ipa.ts';
import { bodyOf } from '../api/http.ts';
import { addInventoryPorts, portsFromInventory, propertiesFromInventory } from '../nodes/from-inventory.ts';
import { recordSecurityIncident } from '../nodes/security.ts';
import type { NodeService } from '../nodes/service.ts';
import type { ProvisionEngine } from '../provision/engine.ts';
import type { NodeRecord, Store } from '../store/store.ts';
import { REPORTED_BMC_KEY } from './approve.ts';
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

/** The BMC address an inventory reports, if it names one (an IP; 0.0.0.0 means none). */
function reportedBmc(inv: Partial<Inventory>): string | null {
  const ip = inv.bmc_address || inv.bmc_v6address;
  if (!ip || ip === '0.0.0.0' || ip === '::/0' || ip === '::') return null;
  return ip;
}

/**
 * Whether an inventory may update `node`: the node waits for an inspection (inspect wait), has
 * registered ports, and the inventory lists every one of them and boots from one of them. New
 * NICs the inventory adds become ports, as inspection does.
 */
async function awaitedInspection(
  store: Store,
  node: NodeRecord,
  macs: readonly string[],
  bootMac: string,
): Promise<{ ok: true } | { ok: false; why: string }> {
  if (node.provision_state !== 'inspect wait')
    return { ok: false, why: `the node is ${node.provision_state}, not waiting for an inspection` };
  const registered = (await store.ports.list({ node_uuid: node.uuid })).map((p) => p.address);
  if (registered.length === 0) return { ok: false, why: 'the node has no registered ports to match' };
  const missing = registered.filter((m) => !macs.includes(m));
  if (missing.length) return { ok: false, why: `the inventory lacks its port(s) ${missing.join(', ')}` };
  if (!registered.includes(bootMac))
    return { ok: false, why: `it booted from ${bootMac}, which is not one of the node's ports` };
  return { ok: true };
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
    const check = await awaitedInspection(deps.store, node, fp.macs, pxeMac);
    if (!check.ok) {
      await recordSecurityIncident({ store: deps.store, log: deps.log, holderBase: 'discovery' }, node, {
        what: `inspection data for this node (matched by ${by}; boot MAC ${pxeMac}) refused: ${check.why}; nothing was changed`,
        actor: 'discovery',
        failWork: false,
      });
      // The answer names neither the node nor its state: the caller is unauthenticated.
      throw new KilnError(
        'FORBIDDEN',
        'inspection data refused: the machine is already enrolled and is not waiting for this inspection; the attempt was recorded on the node. An operator starts an inspection with kiln node inspect',
      );
    }
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
    deps.log.info({ node: node.uuid, by, added }, 'node waiting for inspection reported its inventory');
    return { node: (await deps.store.nodes.get(node.uuid))!, created: false, matchedBy: by };
  }

  if (!macAllowed(deps.settings, pxeMac)) {
    throw new KilnError(
      'NOT_FOUND',
      `machine ${pxeMac} is unknown and the enrollment policy (${deps.settings.policy}) does not admit it`,
      { status: 403 },
    );
  }
  const bmc = reportedBmc(inv);
  // No credentials: a BMC address from an unauthenticated inventory is only a report.
  const node = await deps.nodes.create(
    { name: `node-${pxeMac.replace(/:/g, '')}`, properties: props, ports: [] },
    'discovery',
  );
  await addInventoryPorts(deps.store, node.uuid, ports);
  await deps.store.nodes.update(node.uuid, {
    inventory: inv as unknown as Record<string, unknown>,
    ...(bmc ? { driver_internal_info: { ...node.driver_internal_info, [REPORTED_BMC_KEY]: bmc } } : {}),
  });
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
      ? `enrolled on first PXE boot from ${pxeMac}; its inventory reports BMC ${bmc}, which gets no credentials until an operator approves it: 'kiln node approve-bmc ${node.name}' (or '--address HOST' for another address)`
      : `enrolled on first PXE boot from ${pxeMac}; no BMC known yet: set one with 'kiln node update ${node.name} --bmc-address …' and run 'kiln node manage ${node.name}'`,
  });
  deps.log.info({ node: node.uuid, mac: pxeMac, bmc }, 'enrolled a new machine');
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
