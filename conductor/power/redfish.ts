// The Redfish power driver: reads PowerState from the node's ComputerSystem, powers it through
// the ComputerSystem.Reset action and sets the boot override with a PATCH of its Boot object.
// TLS is verified unless the node's options say otherwise (ca_file for a private CA, insecure for labs).
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import type {
  BmcCredentials,
  BmcPowerAction,
  BootDevice,
  BootDeviceOptions,
  PowerDriver,
  PowerStateValue,
} from './driver.ts';
import { parseDriverOptions, RedfishOptions } from './options.ts';
import { isRedfishFailure, type RedfishFailure, RedfishHttp, type RedfishResponse } from './redfish-http.ts';
import { lastFailure, withRetries } from './retry.ts';
import { waitForPower } from './wait.ts';

export interface RedfishDriverOptions {
  log?: Logger;
}

interface ComputerSystem {
  PowerState?: string | null;
  Actions?: Record<string, { target?: string; 'ResetType@Redfish.AllowableValues'?: string[] } | undefined>;
}

const BOOT_TARGET: Record<BootDevice, string> = { pxe: 'Pxe', disk: 'Hdd', cdrom: 'Cd' };

export class RedfishPowerDriver implements PowerDriver {
  readonly name = 'redfish';
  private readonly http = new RedfishHttp();
  private readonly log: Logger;

  constructor(opts: RedfishDriverOptions = {}) {
    this.log = opts.log ?? silentLogger();
  }

  async validate(creds: BmcCredentials, signal?: AbortSignal): Promise<void> {
    await this.getPower(creds, signal);
  }

  async getPower(creds: BmcCredentials, signal?: AbortSignal): Promise<PowerStateValue> {
    return powerOf(creds, await this.system(creds, signal));
  }

  async setPower(creds: BmcCredentials, action: BmcPowerAction, signal?: AbortSignal): Promise<void> {
    const o = this.options(creds);
    const system = await this.system(creds, signal);
    const current = powerOf(creds, system);
    if (action === 'on' || action === 'off') {
      if (current === action) return;
      await this.reset(creds, system, action === 'on' ? 'On' : 'ForceOff', true, signal);
      await waitForPower(() => this.getPower(creds, signal), action, o.power_wait_s, label(creds), signal);
      return;
    }
    if (action === 'soft') {
      if (current === 'off') return;
      await this.reset(creds, system, 'GracefulShutdown', false, signal);
      return;
    }
    if (current === 'off') {
      await this.reset(creds, system, 'On', true, signal);
      await waitForPower(() => this.getPower(creds, signal), 'on', o.power_wait_s, label(creds), signal);
      return;
    }
    await this.reset(creds, system, o.reboot_method, false, signal);
  }

  async setBootDevice(
    creds: BmcCredentials,
    device: BootDevice,
    opts: BootDeviceOptions = {},
    signal?: AbortSignal,
  ): Promise<void> {
    const boot: Record<string, string> = {
      BootSourceOverrideTarget: BOOT_TARGET[device],
      BootSourceOverrideEnabled: opts.persistent ? 'Continuous' : 'Once',
    };
    if (opts.mode) boot.BootSourceOverrideMode = opts.mode === 'uefi' ? 'UEFI' : 'Legacy';
    await this.call(creds, 'PATCH', creds.bmc.path!, { Boot: boot }, true, signal);
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private options(creds: BmcCredentials): RedfishOptions {
    return parseDriverOptions(RedfishOptions, creds.options, 'redfish', creds.bmc.address);
  }

  private async system(creds: BmcCredentials, signal?: AbortSignal): Promise<ComputerSystem> {
    const r = await this.call(creds, 'GET', creds.bmc.path!, undefined, true, signal);
    return (r.body ?? {}) as ComputerSystem;
  }

  private async reset(
    creds: BmcCredentials,
    system: ComputerSystem,
    resetType: string,
    idempotent: boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const action = system.Actions?.['#ComputerSystem.Reset'];
    const allowed = action?.['ResetType@Redfish.AllowableValues'];
    if (Array.isArray(allowed) && allowed.length && !allowed.includes(resetType)) {
      throw new KilnError(
        'BMC_ERROR',
        `BMC ${label(creds)} does not offer reset type ${resetType} (it offers ${allowed.join(', ')}); for reboots, set bmc_options.reboot_method to one of those`,
        { details: { bmc: creds.bmc.address, resetType, allowed } },
      );
    }
    const target = action?.target ?? `${creds.bmc.path}/Actions/ComputerSystem.Reset`;
    await this.call(creds, 'POST', target, { ResetType: resetType }, idempotent, signal);
  }

  /**
   * One Redfish request with retries. Idempotent requests are resent after any transient failure;
   * others (a restart) only when the request surely never reached the BMC, so a slow answer can't
   * turn into two reboots.
   */
  private async call(
    creds: BmcCredentials,
    method: 'GET' | 'POST' | 'PATCH',
    path: string,
    body: unknown,
    idempotent: boolean,
    signal?: AbortSignal,
  ): Promise<RedfishResponse> {
    const o = this.options(creds);
    const what = `${method} ${path}`;
    try {
      return await withRetries(
        { tries: o.tries, backoffMs: o.backoff_ms },
        (e) => isRedfishFailure(e) && transient(e) && (idempotent || e.notSent),
        async (attempt) => {
          const started = Date.now();
          try {
            const r = await this.http.call(creds, o, method, path, body, signal);
            this.log.debug(
              { bmc: creds.bmc.address, request: what, attempt, ms: Date.now() - started },
              'redfish ok',
            );
            return r;
          } catch (e) {
            if (isRedfishFailure(e)) {
              this.log.warn(
                {
                  bmc: creds.bmc.address,
                  request: what,
                  attempt,
                  kind: e.kind,
                  ms: Date.now() - started,
                  err: e.message,
                },
                'redfish request failed',
              );
            }
            throw e;
          }
        },
        signal,
      );
    } catch (e) {
      throw toKilnError(creds, o, what, e);
    }
  }
}

function transient(e: RedfishFailure): boolean {
  return (
    e.kind === 'timeout' ||
    e.kind === 'connection-refused' ||
    e.kind === 'connection-reset' ||
    e.kind === 'server-error'
  );
}

function powerOf(creds: BmcCredentials, system: ComputerSystem): PowerStateValue {
  const s = system.PowerState;
  if (s === 'On' || s === 'PoweringOn') return 'on';
  if (s === 'Off' || s === 'PoweringOff') return 'off';
  throw new KilnError(
    'BMC_ERROR',
    `BMC ${label(creds)} reports PowerState ${JSON.stringify(s ?? null)} for ${creds.bmc.path}; check that the path in bmc_address names a ComputerSystem`,
    { details: { bmc: creds.bmc.address, power_state: s ?? null } },
  );
}

function label(creds: BmcCredentials): string {
  const { host, port, protocol } = creds.bmc;
  return `${host}:${port ?? (protocol === 'http' ? 80 : 443)}`;
}

function toKilnError(creds: BmcCredentials, o: RedfishOptions, what: string, e: unknown): unknown {
  const { exhausted, failure: f } = lastFailure(e);
  if (!isRedfishFailure(f)) return e;
  const bmc = label(creds);
  const tries = exhausted ? o.tries : 1;
  const user = creds.bmc.username ?? '';
  const details = { bmc: creds.bmc.address, request: what, kind: f.kind, status: f.httpStatus, tries };
  const msg = ((): string => {
    switch (f.kind) {
      case 'credentials':
        return `BMC ${bmc} rejected the credentials for user "${user}"; check the username in bmc_address and bmc_password`;
      case 'privilege':
        return `BMC ${bmc} refused ${what} for user "${user}" (${f.message}); give the user a role that may change power and boot settings`;
      case 'not-found':
        return `BMC ${bmc} has no ${what.split(' ')[1]} (HTTP 404); check the system path in bmc_address (GET /redfish/v1/Systems lists them)`;
      case 'refused-request':
        return `BMC ${bmc} refused ${what}: ${f.message}`;
      case 'server-error':
        return `BMC ${bmc} failed ${what} after ${tries} tries: ${f.message}; check the BMC's health, or reset the BMC`;
      case 'timeout':
        return `BMC ${bmc} timed out after ${tries} tries; check that the BMC is reachable from the conductor and that its Redfish service is enabled`;
      case 'connection-refused':
        return `BMC ${bmc} refused the connection after ${tries} tries; check the port in bmc_address and that the Redfish service is enabled`;
      case 'connection-reset':
        return `BMC ${bmc}: connection failed after ${tries} tries (${f.message}); check the network path to the BMC`;
      case 'dns':
        return `BMC host ${creds.bmc.host} could not be resolved; check the host in bmc_address and the conductor's DNS`;
      case 'tls-untrusted':
        return `BMC ${bmc} presented a TLS certificate the conductor does not trust (${f.message.split(':')[0]}); set bmc_options.ca_file to the CA that signed it, or bmc_options.insecure to true to skip verification`;
      case 'tls-handshake':
        return `BMC ${bmc}: TLS handshake failed (${f.message}); if the BMC serves plain HTTP, use redfish+http:// in bmc_address`;
      case 'ca-file':
        return `BMC ${bmc}: bmc_options.ca_file is unusable: ${f.message}`;
    }
  })();
  return new KilnError('BMC_ERROR', msg, { details, cause: f });
}
