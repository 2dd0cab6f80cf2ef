// Boot services entry point for the conductor: DHCP (per mode) and TFTP, stopped together.
// The HTTP side (scripts, kernels, loaders) is a router the conductor mounts: see http.ts.
import { existsSync } from 'node:fs';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { FileLeaseStore, type LeaseStore } from './dhcp/lease-store.ts';
import { DEFAULT_LOADERS, type NetbootUrls } from './dhcp/netboot.ts';
import type { BootPolicy } from './dhcp/policy.ts';
import { type DhcpConfig, type DhcpServer, interfaceAddress, startDhcpServer } from './dhcp/server.ts';
import { prepareLoaders } from './loaders.ts';
import { startTftpServer, type TftpConfig, type TftpServer } from './tftp/server.ts';

export { DEFAULT_DHCP_RATE_LIMIT, type DhcpRateLimit } from './dhcp/flood.ts';
export { httpBootUrls, type NetbootUrls } from './dhcp/netboot.ts';
export { allowMacPrefixes, type BootPolicy, bootAll, ignoreAll } from './dhcp/policy.ts';
export { createBootRouter } from './http.ts';
export { type BootScriptInput, renderBootScript } from './ipxe/script.ts';
export { prepareLoaders } from './loaders.ts';

export interface BootServicesConfig {
  /** dhcp.rateLimit is boot.dhcp.rate_limit (flood limits; defaults in dhcp/flood.ts). */
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
  urls: NetbootUrls;
  /** Overrides leaseFile (tests, or a database-backed store). */
  leaseStore?: LeaseStore;
}

export interface BootServices {
  dhcp: DhcpServer;
  tftp: TftpServer | null;
  stop(): Promise<void>;
}

/** The IPv4 address of a boot interface; the error names the config key to fix. */
export async function bootInterfaceAddress(name: string): Promise<string> {
  try {
    return await interfaceAddress(name);
  } catch (err) {
    const exists = !name.includes('/') && existsSync(`/sys/class/net/${name}`);
    throw new KilnError(
      'CONFIG_INVALID',
      exists
        ? `boot interface ${name} has no IPv4 address; add one (ip addr add …) or drop it from boot.interfaces`
        : `boot interface ${name} does not exist; check boot.interfaces (ip -br link)`,
      { cause: err },
    );
  }
}

export async function startBootServices(
  config: BootServicesConfig,
  deps: BootServicesDeps,
): Promise<BootServices> {
  // Every interface first, so a wrong name fails before any socket is bound.
  const ifaceAddresses = await Promise.all(config.dhcp.interfaces.map(bootInterfaceAddress));
  const leaseStore =
    deps.leaseStore ??
    (config.dhcp.mode === 'full' && config.dhcp.leaseFile
      ? new FileLeaseStore(config.dhcp.leaseFile)
      : undefined);
  // Offer only loaders that are really in the TFTP root (when Kiln serves TFTP itself).
  const prepared =
    config.tftp.enabled === false
      ? null
      : await prepareLoaders(config.dhcp.loaders ?? DEFAULT_LOADERS, config.tftp.root, deps.log);
  const dhcpConfig = prepared ? { ...config.dhcp, loaders: prepared.loaders } : config.dhcp;
  let dhcp: DhcpServer;
  try {
    dhcp = await startDhcpServer(dhcpConfig, {
      log: deps.log.child({ component: 'dhcp' }),
      policy: deps.policy,
      urls: deps.urls,
      leaseStore,
    });
  } catch (err) {
    prepared?.release();
    throw err;
  }
  let tftp: TftpServer | null = null;
  if (config.tftp.enabled !== false) {
    try {
      const addresses = config.tftp.addresses ?? ifaceAddresses;
      if (addresses.length === 0) {
        throw new KilnError(
          'CONFIG_INVALID',
          'TFTP has no address to listen on: set boot.tftp.addresses or boot.interfaces',
        );
      }
      tftp = await startTftpServer(
        { ...config.tftp, addresses },
        { log: deps.log.child({ component: 'tftp' }) },
      );
    } catch (err) {
      await dhcp.stop();
      prepared?.release();
      throw err;
    }
  }
  return {
    dhcp,
    tftp,
    stop: async () => {
      await Promise.all([dhcp.stop(), tftp?.stop()]);
      prepared?.release();
    },
  };
}
