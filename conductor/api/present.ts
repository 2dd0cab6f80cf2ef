// Database records → API views. The only place secrets are dropped: the BMC password is shown
// as "******" when set (as Ironic masks it) and driver_internal_info (agent token) never leaves.
// Image URLs are shown with their credentials masked (user:password, token/signature/key query
// parameters): pre-signed origin links are secrets too.

import type { EventView, ImageView, NodeView, PortView } from '../../shared/wire/api.ts';
import { maskUrl } from '../images/url-policy.ts';
import type { EventRecord, ImageRecord, NodeRecord, PortRecord } from '../store/store.ts';

const MASK = '******';

/** instance_info may carry a config drive with user data; show that it's there, not what it holds. */
function safeInstanceInfo(info: Record<string, unknown>): Record<string, unknown> {
  const out = { ...info };
  if (out.configdrive !== undefined) out.configdrive = MASK;
  for (const k of ['image_source', 'image_url']) {
    if (typeof out[k] === 'string' && /^[a-z][a-z0-9+.-]*:/i.test(out[k] as string))
      out[k] = maskUrl(out[k] as string);
  }
  return out;
}

export function presentNode(n: NodeRecord, ports: PortRecord[] = []): NodeView {
  return {
    uuid: n.uuid,
    name: n.name,
    driver: n.driver,
    bmc_address: n.bmc_address,
    bmc_password: n.bmc_password ? MASK : null,
    provision_state: n.provision_state,
    target_provision_state: n.target_provision_state,
    power_state: n.power_state,
    last_error: n.last_error,
    maintenance: n.maintenance,
    maintenance_reason: n.maintenance_reason,
    reservation: n.reservation,
    properties: n.properties,
    extra: n.extra,
    instance_info: safeInstanceInfo(n.instance_info),
    inventory: n.inventory,
    progress: (n.driver_internal_info.agent_progress as Record<string, unknown> | undefined) ?? null,
    ports: ports.map((p) => p.address),
    created_at: n.created_at,
    updated_at: n.updated_at,
    provision_updated_at: n.provision_updated_at,
  };
}

/** The short form used by list, like Ironic's node list. */
export function presentNodeSummary(n: NodeRecord) {
  return {
    uuid: n.uuid,
    name: n.name,
    driver: n.driver,
    provision_state: n.provision_state,
    target_provision_state: n.target_provision_state,
    power_state: n.power_state,
    maintenance: n.maintenance,
    last_error: n.last_error,
  };
}

export function presentPort(p: PortRecord): PortView {
  return {
    uuid: p.uuid,
    address: p.address,
    node_uuid: p.node_uuid,
    pxe_enabled: p.pxe_enabled,
    extra: p.extra,
    created_at: p.created_at,
  };
}

export function presentImage(i: ImageRecord): ImageView {
  return { ...i, url: maskUrl(i.url) };
}

export function presentEvent(e: EventRecord): EventView {
  return { ...e };
}
