// Picks the power driver for a node by name ('ipmi' | 'redfish' | 'fake', the scheme of its
// bmc_address) and turns a stored node into the credentials a driver takes.
import { parseBmcAddress } from '../../shared/bmc.ts';
import { isKilnError, KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import type { NodeRecord } from '../store/store.ts';
import type { BmcCredentials, PowerDriver, PowerDriverRegistry } from './driver.ts';
import { FakePowerDriver, type FakePowerOptions } from './fake.ts';
import { type IpmiDriverOptions, IpmiPowerDriver } from './ipmi.ts';
import { type RedfishDriverOptions, RedfishPowerDriver } from './redfish.ts';

export interface PowerRegistryOptions {
  log?: Logger;
  ipmi?: Omit<IpmiDriverOptions, 'log'>;
  redfish?: Omit<RedfishDriverOptions, 'log'>;
  /** Options of the fake driver, or a ready instance a test wants to inspect. */
  fake?: FakePowerOptions | FakePowerDriver;
  /** Replace or add drivers by name (tests hand in recording or failing drivers here). */
  drivers?: Record<string, PowerDriver>;
}

export interface PowerRegistry extends PowerDriverRegistry {
  /** Driver names this registry serves. */
  names(): string[];
  /** Let go of what drivers hold open (Redfish sessions and connections). */
  close(): Promise<void>;
}

export function createPowerRegistry(opts: PowerRegistryOptions = {}): PowerRegistry {
  const log = opts.log ?? silentLogger();
  const redfish = new RedfishPowerDriver({ ...opts.redfish, log: log.child({ driver: 'redfish' }) });
  const drivers = new Map<string, PowerDriver>([
    ['ipmi', new IpmiPowerDriver({ ...opts.ipmi, log: log.child({ driver: 'ipmi' }) })],
    ['redfish', redfish],
    ['fake', opts.fake instanceof FakePowerDriver ? opts.fake : new FakePowerDriver(opts.fake)],
  ]);
  for (const [name, d] of Object.entries(opts.drivers ?? {})) drivers.set(name, d);
  return {
    get(name: string): PowerDriver {
      const d = drivers.get(name);
      if (!d) {
        throw new KilnError(
          'BMC_UNSUPPORTED',
          `power driver "${name}" is not supported; set bmc_address to an ipmi://, redfish+https://, redfish+http:// or fake:// URL`,
          { details: { driver: name, supported: [...drivers.keys()] } },
        );
      }
      return d;
    },
    names: () => [...drivers.keys()],
    close: () => redfish.close(),
  };
}

/**
 * The credentials for a node's BMC: its address parsed (the stored one carries no password),
 * its write-only password, and driver options from properties.bmc_options.
 */
export function credsForNode(
  node: Pick<NodeRecord, 'uuid' | 'bmc_address' | 'bmc_password' | 'properties'>,
): BmcCredentials {
  if (!node.bmc_address) {
    throw new KilnError(
      'BMC_UNSUPPORTED',
      `node ${node.uuid} has no bmc_address; set one (e.g. ipmi://admin@10.0.0.5) to manage its power`,
      { details: { node: node.uuid } },
    );
  }
  let bmc: ReturnType<typeof parseBmcAddress>;
  try {
    bmc = parseBmcAddress(node.bmc_address);
  } catch (e) {
    if (isKilnError(e) && e.code === 'VALIDATION_FAILED') {
      throw new KilnError('BMC_UNSUPPORTED', `node ${node.uuid}: ${e.message}`, {
        details: { node: node.uuid },
      });
    }
    throw e;
  }
  let raw = node.properties?.bmc_options;
  // `kiln node update --property bmc_options=…` stores the JSON text as a string.
  if (typeof raw === 'string' && raw.trim().startsWith('{')) {
    try {
      raw = JSON.parse(raw);
    } catch {
      // reported as not an object just below
    }
  }
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new KilnError(
      'VALIDATION_FAILED',
      `node ${node.uuid}: properties.bmc_options must be an object of driver options, e.g. {"cipher_suite": 17}`,
      { details: [{ path: 'properties.bmc_options', message: 'expected an object' }] },
    );
  }
  return {
    bmc: { ...bmc, password: null },
    password: node.bmc_password ?? bmc.password,
    options: raw as Record<string, unknown> | undefined,
  };
}
