// Security events on a node: something on the provisioning network did what only the node's own
// ramdisk (or an operator) may do. Each is recorded as an event (result 'error', event
// 'security') with last_error saying what happened and what to do; a node in the middle of work
// that trusts its ramdisk (inspection, cleaning, deployment) fails instead of carrying on with
// whichever agent answers, and forgets its agent, as the engine's failures do.
import { randomBytes } from 'node:crypto';
import { isKilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { findTransition, ProvisionState } from '../../shared/states.ts';
import { withoutAgent } from '../provision/engine.ts';
import type { NodeRecord, Store } from '../store/store.ts';
import { nodeLabel } from './service.ts';

const S = ProvisionState;

/** States whose work relies on the ramdisk being the node's own: a doubt fails them. */
export const RAMDISK_WORK_STATES: readonly string[] = [
  S.inspecting,
  S.inspectWait,
  S.cleaning,
  S.cleanWait,
  S.deploying,
  S.waitCallBack,
];

/** What the operator does after a security failure, per failed state. */
function nextAfter(state: string, node: NodeRecord): string {
  const n = node.name ?? node.uuid;
  switch (state) {
    case S.inspectFailed:
      return `retry with 'kiln node inspect ${n}'`;
    case S.cleanFailed:
      return `run 'kiln node manage ${n}' and then 'kiln node provide ${n}' to clean it again`;
    case S.deployFailed:
      return `retry with 'kiln node deploy ${n} --image …' or release it with 'kiln node undeploy ${n}'`;
    default:
      return `the next action on ${n} boots a fresh ramdisk`;
  }
}

export interface SecurityIncident {
  /** What happened, as a sentence fragment naming the source ("a second ramdisk lookup from 10.0.0.9 …"). */
  what: string;
  /** Who noticed (the event's actor): 'ramdisk-api', 'discovery'. */
  actor: string;
  /**
   * true (a doubted ramdisk): fail work in RAMDISK_WORK_STATES, else set last_error and forget
   * the agent. false (unauthenticated data refused): only the event; the node is not touched.
   */
  failWork: boolean;
}

export interface SecurityDeps {
  store: Store;
  log: Logger;
  /** Names this process in reservations. */
  holderBase: string;
  /** How long to keep trying when the node is locked by other work (ms). */
  lockWaitMs?: number;
}

/**
 * Record `incident` on `node`. The event is written at once; failing the node needs its
 * reservation, so while other work holds it this keeps trying (every 100 ms, up to lockWaitMs).
 * Resolves once the node has been handled (or given up on, which is logged).
 */
export async function recordSecurityIncident(
  deps: SecurityDeps,
  node: NodeRecord,
  incident: SecurityIncident,
): Promise<void> {
  const log = deps.log.child({ component: 'security', node: node.uuid });
  const when = new Date().toISOString();
  const fails = incident.failWork && RAMDISK_WORK_STATES.includes(node.provision_state);
  await deps.store.events.add({
    node_uuid: node.uuid,
    event: 'security',
    actor: incident.actor,
    result: 'error',
    from_state: node.provision_state,
    message: `${incident.what}${fails ? `; ${node.provision_state} stopped` : ''}`,
  });
  log.error({ what: incident.what, state: node.provision_state }, 'security event');
  if (!incident.failWork) return;
  const holder = `${deps.holderBase}-security-${randomBytes(4).toString('hex')}`;
  const deadline = Date.now() + (deps.lockWaitMs ?? 60_000);
  for (;;) {
    try {
      await deps.store.nodes.reserve(node.uuid, holder);
      break;
    } catch (e) {
      if (isKilnError(e) && e.code === 'NOT_FOUND') return;
      if (!(isKilnError(e) && e.code === 'NODE_LOCKED')) throw e;
      if (Date.now() > deadline) {
        log.error('node stayed locked; the security event is recorded but the node was not failed');
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    const fresh = await deps.store.nodes.get(node.uuid);
    if (!fresh) return;
    const check = `check the provisioning network for a machine using this node's MACs or posing as its ramdisk`;
    const t = findTransition(fresh.provision_state, 'fail');
    if (t && RAMDISK_WORK_STATES.includes(fresh.provision_state)) {
      const lastError = `security: ${incident.what} at ${when} on node ${nodeLabel(fresh)}; ${fresh.provision_state} stopped and the agent was forgotten rather than trusting whichever ramdisk answers. Next: ${check}, then ${nextAfter(t.to, fresh)}`;
      await deps.store.nodes.transition({
        uuid: fresh.uuid,
        from: fresh.provision_state,
        to: t.to,
        target: t.target ?? null,
        reservation: holder,
        patch: { last_error: lastError, driver_internal_info: withoutAgent(fresh.driver_internal_info) },
        event: {
          node_uuid: fresh.uuid,
          event: 'fail',
          actor: incident.actor,
          result: 'error',
          from_state: fresh.provision_state,
          to_state: t.to,
          message: 'security event: see the previous event',
        },
      });
      log.warn({ from: fresh.provision_state, to: t.to }, 'node failed after a security event');
      return;
    }
    // Nothing in flight: forget the live agent, so the next action boots a fresh ramdisk
    // instead of fast-tracking onto one whose identity is in doubt.
    const lastError = `security: ${incident.what} at ${when} on node ${nodeLabel(fresh)}; the live agent was forgotten. Next: ${check}; ${nextAfter(fresh.provision_state, fresh)}`;
    await deps.store.nodes.update(fresh.uuid, {
      last_error: lastError,
      driver_internal_info: withoutAgent(fresh.driver_internal_info),
    });
  } finally {
    await deps.store.nodes.release(node.uuid, holder).catch(() => {});
  }
}
