// An operator's approval of a discovered node's BMC. First-boot enrollment learns a BMC address
// from an unauthenticated inventory, so the configured enrollment credentials (one password for
// the whole site) are not sent to it on the inventory's word: anyone on the provisioning network
// could post an inventory naming their own "BMC" and collect that password. The address is kept
// as reported (driver_internal_info.reported_bmc_address) and the operator approves it, or gives
// the right one, here.
import { isIP } from 'node:net';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { NodeService } from '../nodes/service.ts';
import { nodeLabel, resolveNode } from '../nodes/service.ts';
import type { ProvisionEngine } from '../provision/engine.ts';
import type { NodeRecord, Store } from '../store/store.ts';
import type { EnrollmentSettings } from './discovery.ts';

/** Where a discovered node keeps the BMC address its inventory reported (never used unapproved). */
export const REPORTED_BMC_KEY = 'reported_bmc_address';

export interface ApproveDeps {
  store: Store;
  nodes: NodeService;
  engine: ProvisionEngine;
  log: Logger;
  settings: EnrollmentSettings | undefined;
}

/** A host an IPMI URL can name: an IP address or a DNS name, nothing that could smuggle a path or user. */
function checkHost(address: string): string {
  const host = address.trim().replace(/^\[(.*)\]$/, '$1');
  const dnsName = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
  if (!isIP(host) && !dnsName.test(host)) {
    throw new KilnError(
      'VALIDATION_FAILED',
      `BMC address "${address}" is not an IP address or host name; give the BMC's address, e.g. --address 10.0.0.5`,
      { details: [{ path: 'address', message: 'an IP address or host name' }] },
    );
  }
  return isIP(host) === 6 ? `[${host}]` : host;
}

/**
 * Apply the configured enrollment credentials to the node's reported BMC address (or to
 * `address`), record it, and, for a node still in enroll, verify the BMC (manage) so that power
 * works from now on.
 */
export async function approveBmc(
  deps: ApproveDeps,
  ident: string,
  address: string | undefined,
  actor: string,
): Promise<NodeRecord> {
  const node = await resolveNode(deps.store, ident);
  const s = deps.settings;
  if (!s?.bmcUsername || !s.bmcPassword) {
    throw new KilnError(
      'VALIDATION_FAILED',
      `this conductor has no enrollment BMC credentials (enrollment.bmc_username and enrollment.bmc_password); set node ${nodeLabel(node)}'s BMC with 'kiln node update ${node.name ?? node.uuid} --bmc-address ipmi://USER@HOST --bmc-password …' instead`,
    );
  }
  const reported = node.driver_internal_info[REPORTED_BMC_KEY];
  const chosen = address ?? (typeof reported === 'string' ? reported : undefined);
  if (!chosen) {
    throw new KilnError(
      'VALIDATION_FAILED',
      `node ${nodeLabel(node)} reported no BMC address; give one with 'kiln node approve-bmc ${node.name ?? node.uuid} --address HOST'`,
      { details: [{ path: 'address', message: 'required: the node reported none' }] },
    );
  }
  const host = checkHost(chosen);
  const url = `ipmi://${encodeURIComponent(s.bmcUsername)}@${host}${s.bmcPort ? `:${s.bmcPort}` : ''}`;
  const updated = await deps.nodes.update(
    node.uuid,
    { bmc_address: url, bmc_password: s.bmcPassword },
    actor,
  );
  await deps.store.events.add({
    node_uuid: node.uuid,
    event: 'bmc_approved',
    actor,
    result: 'ok',
    message: `BMC ${host} approved${address ? ' (address given by the operator)' : ' (as the inventory reported it)'}; the enrollment credentials of user ${s.bmcUsername} now apply to it`,
  });
  deps.log.info({ node: node.uuid, bmc: url, actor }, 'BMC approved');
  if (updated.provision_state !== 'enroll') return updated;
  // Verify the BMC now, as enrollment used to do on its own, so the node lands in manageable.
  return deps.engine.act(node.uuid, { target: 'manage' }, actor);
}
