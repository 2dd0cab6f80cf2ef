// A node's BMC is named by one URL, as bmclib and Metal3 do:
//   ipmi://admin@10.0.0.5:623            redfish+https://10.0.0.6/redfish/v1/Systems/1
//   redfish+http://127.0.0.1:8000/redfish/v1/Systems/1        fake://anything
// The scheme picks the power driver. A password in the URL is accepted on input, moved out into
// the write-only secret, and never stored in (or echoed with) the address.
import { KilnError } from './errors.ts';

export const DRIVERS = ['ipmi', 'redfish', 'fake'] as const;
export type DriverName = (typeof DRIVERS)[number];

export interface BmcAddress {
  driver: DriverName;
  /** Normalised address without credentials; what the API shows. */
  address: string;
  host: string;
  port: number | null;
  username: string | null;
  /** Only set when the input URL carried one. */
  password: string | null;
  /** Redfish: http or https. */
  protocol: 'http' | 'https' | null;
  /** Redfish: path of the ComputerSystem, e.g. /redfish/v1/Systems/1. */
  path: string | null;
}

/** A bmc_address that can't be parsed; callers match on isKilnError(e) && e.code === 'VALIDATION_FAILED'. */
export class BmcAddressError extends KilnError {
  constructor(message: string) {
    super('VALIDATION_FAILED', message);
  }
}

export function parseBmcAddress(input: string): BmcAddress {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new BmcAddressError(
      `bmc_address "${input}" is not a URL; write it as ipmi://user@host[:port] or redfish+https://host/redfish/v1/Systems/ID`,
    );
  }
  const scheme = url.protocol.replace(/:$/, '');
  const username = url.username ? decodeURIComponent(url.username) : null;
  const password = url.password ? decodeURIComponent(url.password) : null;
  const port = url.port ? Number(url.port) : null;
  // WHATWG URLs keep an IPv6 literal's brackets in `hostname`; tools (ipmitool -H) and sockets
  // want the bare address, while the normalised address string keeps them.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const userPart = username ? `${encodeURIComponent(username)}@` : '';
  const hostPort = `${url.hostname}${port ? `:${port}` : ''}`;
  if (scheme === 'ipmi') {
    if (!url.hostname) throw new BmcAddressError(`bmc_address "${redact(input)}" has no host`);
    return {
      driver: 'ipmi',
      address: `ipmi://${userPart}${hostPort}`,
      host,
      port,
      username,
      password,
      protocol: null,
      path: null,
    };
  }
  if (scheme === 'redfish' || scheme === 'redfish+https' || scheme === 'redfish+http') {
    if (!url.hostname) throw new BmcAddressError(`bmc_address "${redact(input)}" has no host`);
    const protocol = scheme === 'redfish+http' ? 'http' : 'https';
    const path =
      url.pathname && url.pathname !== '/' ? url.pathname.replace(/\/$/, '') : '/redfish/v1/Systems/1';
    return {
      driver: 'redfish',
      address: `redfish+${protocol}://${userPart}${hostPort}${path}`,
      host,
      port,
      username,
      password,
      protocol,
      path,
    };
  }
  if (scheme === 'fake') {
    return {
      driver: 'fake',
      address: `fake://${userPart}${hostPort}${url.pathname === '/' ? '' : url.pathname}`,
      host,
      port,
      username,
      password,
      protocol: null,
      path: null,
    };
  }
  throw new BmcAddressError(
    `bmc_address scheme "${scheme}" is not supported; use one of ipmi://, redfish+https://, redfish+http://, fake://`,
  );
}

/** The address with any password replaced, safe for messages. */
export function redact(input: string): string {
  return input.replace(/(\/\/[^:/@]*):[^@/]*@/, '$1:******@');
}
