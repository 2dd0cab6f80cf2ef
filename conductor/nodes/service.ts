// Node and port bookkeeping behind the API: create, update, delete, and resolving "uuid or name".
// Provision and power actions live in conductor/provision/.
import { randomUUID } from 'node:crypto';
import { parseBmcAddress } from '../../shared/bmc.ts';
import { isKilnError, KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { normaliseMac } from '../../shared/mac.ts';
import { BUSY_STATES, ProvisionState } from '../../shared/states.ts';
import type { NodeCreate, NodeUpdate, PortCreate } from '../../shared/wire/api.ts';
import type { NodePatch, NodeRecord, PortRecord, Store } from '../store/store.ts';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A label for messages: the node's name when it has one, else its UUID. */
export function nodeLabel(node: Pick<NodeRecord, 'name' | 'uuid'>): string {
  return node.name ? `${node.name} (${node.uuid})` : node.uuid;
}

export async function resolveNode(store: Store, ident: string): Promise<NodeRecord> {
  const node = UUID_RE.test(ident)
    ? await store.nodes.get(ident.toLowerCase())
    : await store.nodes.getByName(ident);
  if (!node) {
    throw new KilnError('NOT_FOUND', `node ${ident} not found; list nodes with 'kiln node list'`, {
      details: { node: ident },
    });
  }
  return node;
}

/** Parse a BMC URL into the driver name, the credential-free address and a password if it held one. */
function bmcFields(address: string | null | undefined, password: string | null | undefined) {
  if (address === null) return { driver: 'none', bmc_address: null, bmc_password: password ?? null };
  if (address === undefined) return undefined;
  try {
    const bmc = parseBmcAddress(address);
    return { driver: bmc.driver, bmc_address: bmc.address, bmc_password: bmc.password ?? password ?? null };
  } catch (e) {
    if (isKilnError(e) && e.code === 'VALIDATION_FAILED') {
      throw new KilnError('VALIDATION_FAILED', e.message, {
        details: [{ path: 'bmc_address', message: e.message }],
      });
    }
    throw e;
  }
}

export class NodeService {
  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  async create(input: NodeCreate, actor: string): Promise<NodeRecord> {
    const bmc = bmcFields(input.bmc_address, input.bmc_password) ?? {
      driver: 'none',
      bmc_address: null,
      bmc_password: input.bmc_password ?? null,
    };
    // Check every MAC before writing anything, so a conflict leaves no half-created node behind.
    const macs = [...new Set(input.ports ?? [])];
    for (const mac of macs) {
      const existing = await this.store.ports.getByAddress(mac);
      if (existing) {
        throw new KilnError('CONFLICT', `MAC ${mac} already belongs to node ${existing.node_uuid}`, {
          details: { address: mac, node: existing.node_uuid },
        });
      }
    }
    if (input.name && (await this.store.nodes.getByName(input.name))) {
      throw new KilnError('CONFLICT', `a node named ${input.name} already exists; pick another name`);
    }
    const node = await this.store.nodes.create({
      uuid: input.uuid ?? randomUUID(),
      name: input.name ?? null,
      ...bmc,
      properties: input.properties ?? {},
      extra: input.extra ?? {},
      provision_state: ProvisionState.enroll,
    });
    try {
      for (const mac of macs) {
        await this.store.ports.create({ uuid: randomUUID(), address: mac, node_uuid: node.uuid });
      }
    } catch (e) {
      await this.store.nodes.delete(node.uuid);
      throw e;
    }
    await this.store.events.add({
      node_uuid: node.uuid,
      event: 'create',
      actor,
      result: 'ok',
      to_state: node.provision_state,
      message: `enrolled with driver ${node.driver}${macs.length ? ` and ports ${macs.join(', ')}` : ''}`,
    });
    this.log.info({ node: node.uuid, name: node.name, driver: node.driver }, 'node created');
    return node;
  }

  async update(ident: string, input: NodeUpdate, actor: string): Promise<NodeRecord> {
    const node = await resolveNode(this.store, ident);
    const patch: NodePatch = {};
    if (input.name !== undefined) {
      if (input.name && input.name !== node.name && (await this.store.nodes.getByName(input.name))) {
        throw new KilnError('CONFLICT', `a node named ${input.name} already exists; pick another name`);
      }
      patch.name = input.name;
    }
    const bmc = bmcFields(input.bmc_address, input.bmc_password);
    if (bmc) {
      if (
        node.provision_state !== ProvisionState.enroll &&
        node.provision_state !== ProvisionState.manageable &&
        bmc.driver !== node.driver
      ) {
        throw new KilnError(
          'INVALID_STATE',
          `node ${nodeLabel(node)} is ${node.provision_state}; its BMC driver can only change in enroll or manageable`,
        );
      }
      Object.assign(patch, bmc);
    } else if (input.bmc_password !== undefined) {
      patch.bmc_password = input.bmc_password;
    }
    if (input.properties) patch.properties = { ...node.properties, ...input.properties };
    if (input.extra) patch.extra = { ...node.extra, ...input.extra };
    if (input.instance_info) patch.instance_info = { ...node.instance_info, ...input.instance_info };
    const updated = await this.store.nodes.update(node.uuid, patch);
    const changed = Object.keys(patch).map((k) => (k === 'bmc_password' ? 'bmc_password (secret)' : k));
    await this.store.events.add({
      node_uuid: node.uuid,
      event: 'update',
      actor,
      result: 'ok',
      message: `changed ${changed.join(', ') || 'nothing'}`,
    });
    return updated;
  }

  async delete(ident: string, actor: string): Promise<void> {
    const node = await resolveNode(this.store, ident);
    const deletable: string[] = [
      ProvisionState.enroll,
      ProvisionState.manageable,
      ProvisionState.available,
      ProvisionState.inspectFailed,
      ProvisionState.cleanFailed,
    ];
    if (!deletable.includes(node.provision_state)) {
      throw new KilnError(
        'INVALID_STATE',
        `node ${nodeLabel(node)} is ${node.provision_state} and can't be deleted; ${
          node.provision_state === ProvisionState.active
            ? 'undeploy it first'
            : `deletion is allowed in ${deletable.join(', ')}`
        }`,
        { details: { provision_state: node.provision_state, allowed_states: deletable } },
      );
    }
    if (node.reservation) {
      throw new KilnError(
        'NODE_LOCKED',
        `node ${nodeLabel(node)} is locked by ${node.reservation}; retry when its action finishes`,
      );
    }
    if (BUSY_STATES.includes(node.provision_state))
      throw new KilnError('INVALID_STATE', `node ${nodeLabel(node)} is busy`);
    await this.store.nodes.delete(node.uuid);
    this.log.info({ node: node.uuid, actor }, 'node deleted');
  }

  async addPort(input: PortCreate, actor: string): Promise<PortRecord> {
    const node = await resolveNode(this.store, input.node);
    const existing = await this.store.ports.getByAddress(input.address);
    if (existing) {
      throw new KilnError('CONFLICT', `MAC ${input.address} already belongs to node ${existing.node_uuid}`, {
        details: { address: input.address, node: existing.node_uuid },
      });
    }
    const port = await this.store.ports.create({
      uuid: randomUUID(),
      address: input.address,
      node_uuid: node.uuid,
      pxe_enabled: input.pxe_enabled ?? true,
      extra: input.extra ?? {},
    });
    await this.store.events.add({
      node_uuid: node.uuid,
      event: 'port_add',
      actor,
      result: 'ok',
      message: `port ${port.address}`,
    });
    return port;
  }

  async deletePort(uuidOrMac: string, actor: string): Promise<void> {
    const port = UUID_RE.test(uuidOrMac)
      ? await this.store.ports.get(uuidOrMac.toLowerCase())
      : await this.store.ports.getByAddress(normaliseMac(uuidOrMac) ?? uuidOrMac);
    if (!port)
      throw new KilnError('NOT_FOUND', `port ${uuidOrMac} not found; list ports with 'kiln port list'`);
    await this.store.ports.delete(port.uuid);
    await this.store.events.add({
      node_uuid: port.node_uuid,
      event: 'port_delete',
      actor,
      result: 'ok',
      message: `port ${port.address}`,
    });
  }
}
