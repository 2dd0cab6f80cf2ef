// Boot services entry point for the conductor: DHCP (per mode) and TFTP, stopped together.
// The HTTP side (scripts, kernels, loaders) is a router the conductor mounts: see http.ts.
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { FileLeaseStore, type LeaseStore } from './dhcp/lease-store.ts';
import { type BootUrls, DEFAULT_LOADERS } from './dhcp/netboot.ts';
import type { BootPolicy } from './dhcp/policy.ts';
import { type DhcpConfig, type DhcpServer, interfaceAddress, startDhcpServer } from './dhcp/server.ts';
import { presentLoaders } from './loaders.ts';
import { startTftpServer, type TftpConfig, type TftpServer } from './tftp/server.ts';

export { type BootUrls, httpBootUrls } from './dhcp/netboot.ts';
export { allowMacPrefixes, type BootPolicy, bootAll, ignoreAll } from './dhcp/policy.ts';
export { createBootRouter } from './http.ts';
export { type BootScriptInput, renderBootScript } from './ipxe/script.ts';

export interface BootServicesConfig {
  dhcp: DhcpConfig & {
    /** Full mode: lease file (append-only JSON lines). In memory when absent. */
    leaseFile?: string;
  };
  tftp: Omit<TftpConfig, 'addresses'> & {
    enabled?: boolean;
    /** Defaults to the addresses of the DHCP interfaces. */
    addresses?: string[];
  };
}

export interface BootServicesDeps {
  log: Logger;
  /** Which netboot clients get a boot file (the conductor's enroll/ignore/allow-list decision). */
  policy: BootPolicy;
  /** Builders for the iPXE script URL and the HTTP loader URL. */
  urls: BootUrls;
  /** Overrides leaseFile (tests, or a database-backed store). */
  leaseStore?: LeaseStore;
}

export interface BootServices {
  dhcp: DhcpServer;
  tftp: TftpServer | null;
  stop(): Promise<void>;
}

export async function startBootServices(
  config: BootServicesConfig,
  deps: BootServicesDeps,
): Promise<BootServices> {
  const leaseStore =
    deps.leaseStore ??
    (config.dhcp.mode === 'full' && config.dhcp.leaseFile
      ? new FileLeaseStore(config.dhcp.leaseFile)
      : undefined);
  // Offer only loaders that are really in the TFTP root (when Kiln serves TFTP itself).
  const dhcpConfig =
    config.tftp.enabled === false
      ? config.dhcp
      : {
          ...config.dhcp,
          loaders: await presentLoaders(config.dhcp.loaders ?? DEFAULT_LOADERS, config.tftp.root, deps.log),
        };
  const dhcp = await startDhcpServer(dhcpConfig, {
    log: deps.log.child({ component: 'dhcp' }),
    policy: deps.policy,
    urls: deps.urls,
    leaseStore,
  });
  let tftp: TftpServer | null = null;
  if (config.tftp.enabled !== false) {
    try {
      const addresses =
        config.tftp.addresses ?? (await Promise.all(config.dhcp.interfaces.map(interfaceAddress)));
      if (addresses.length === 0) {
        throw new KilnError(
          'CONFIG_INVALID',
          'TFTP has no address to listen on: set boot.tftp.addresses or boot.dhcp.interfaces',
        );
      }
      tftp = await startTftpServer(
        { ...config.tftp, addresses },
        { log: deps.log.child({ component: 'tftp' }) },
      );
    } catch (err) {
      await dhcp.stop();
      throw err;
    }
  }
  return {
    dhcp,
    tftp,
    stop: async () => {
      await Promise.all([dhcp.stop(), tftp?.stop()]);
    },
  };
}
