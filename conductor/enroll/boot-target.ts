// What a PXE-booting MAC gets, decided from the store on every request:
// - a known node that has work for the ramdisk (inspect, clean, deploy, or a live fast-track
//   agent between actions) boots the ramdisk;
// - an active node boots its local disk;
// - an unknown machine boots the ramdisk with the inspection call-back (first-boot enrollment),
//   if the enrollment policy admits it; otherwise it is ignored.

import { normaliseMac } from '../../shared/mac.ts';
import { ProvisionState } from '../../shared/states.ts';
import type { BootScriptInput } from '../boot/ipxe/script.ts';
import type { NodeRecord, Store } from '../store/store.ts';
import { type EnrollmentSettings, macAllowed } from './discovery.ts';

export interface BootUrls {
  kernel: string;
  initrd: string;
  /** The conductor API as ramdisks reach it (ipa-api-url). */
  api: string;
}

export interface BootTargetDeps {
  store: Store;
  urls: BootUrls;
  enrollment: EnrollmentSettings;
  /** Kernel arguments for every ramdisk boot (console=ttyS0, …). */
  extraArgs?: string[];
}

const S = ProvisionState;

/** States in which a PXE boot should reach the ramdisk. */
const RAMDISK_STATES: readonly string[] = [
  S.enroll,
  S.manageable,
  S.available,
  S.inspecting,
  S.inspectWait,
  S.cleaning,
  S.cleanWait,
  S.deploying,
  S.waitCallBack,
  S.inspectFailed,
  S.cleanFailed,
  S.deployFailed,
  S.deleting,
  S.error,
];

export async function nodeForMac(store: Store, mac: string): Promise<NodeRecord | undefined> {
  const address = normaliseMac(mac);
  const port = address ? await store.ports.getByAddress(address) : undefined;
  return port ? store.nodes.get(port.node_uuid) : undefined;
}

export function createBootTargets(deps: BootTargetDeps) {
  const ramdisk = (mac: string, extra: string[]): BootScriptInput => ({
    action: 'ramdisk',
    mac,
    kernelUrl: deps.urls.kernel,
    initrdUrl: deps.urls.initrd,
    apiUrl: deps.urls.api,
    extraArgs: [...(deps.extraArgs ?? []), ...extra],
  });

  return {
    /** The iPXE script input for a MAC (conductor/boot/http.ts renders it). */
    async lookup(mac: string): Promise<BootScriptInput> {
      const node = await nodeForMac(deps.store, mac);
      if (!node) {
        if (!macAllowed(deps.enrollment, mac))
          return {
            action: 'ignore',
            mac,
            reason: 'unknown machine; the enrollment policy does not admit it',
          };
        return ramdisk(mac, [`ipa-inspection-callback-url=${deps.urls.api}/v1/continue`]);
      }
      if (node.provision_state === S.active) {
        return {
          action: 'local',
          mac,
          firmware:
            node.properties.boot_mode === 'uefi'
              ? 'uefi'
              : node.properties.boot_mode === 'bios'
                ? 'bios'
                : 'auto',
        };
      }
      if (node.maintenance)
        return { action: 'ignore', mac, reason: `node ${node.name ?? node.uuid} is in maintenance` };
      if (RAMDISK_STATES.includes(node.provision_state)) return ramdisk(mac, [`ipa-node-uuid=${node.uuid}`]);
      return { action: 'ignore', mac, reason: `node is ${node.provision_state}` };
    },
    /** The DHCP boot policy: answer known machines, and unknown ones the policy admits. */
    async policy(mac: string): Promise<'boot' | 'ignore'> {
      const node = await nodeForMac(deps.store, mac);
      if (node) return 'boot';
      return macAllowed(deps.enrollment, mac) ? 'boot' : 'ignore';
    },
  };
}
