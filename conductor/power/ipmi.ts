// The IPMI power driver: runs ipmitool over LAN (RMCP+ by default) for every call, as Ironic's
// ipmitool driver does. Each ipmitool run is bounded by its own -N/-R and by a process timeout;
// transient failures are retried with backoff, refusals (bad password, cipher, privilege) are not.
import { type ErrorCode, hasErrorCode, isKilnError, KilnError } from '../../shared/errors.ts';
import {
  run as defaultRun,
  type ExecError,
  type Runner,
  type RunOptions,
  type RunResult,
} from '../../shared/exec.ts';
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
import {
  bootdevRefusal,
  classifyIpmiFailure,
  type IpmiFailureKind,
  ipmitoolArgs,
  isTransient,
  parsePowerStatus,
  stderrSummary,
} from './ipmi-command.ts';
import { IpmiOptions, parseDriverOptions } from './options.ts';
import { lastFailure, withRetries } from './retry.ts';
import { waitForPower } from './wait.ts';

export interface IpmiDriverOptions {
  run?: Runner;
  log?: Logger;
  /** The ipmitool binary; a path lets tests wrap it. */
  ipmitool?: string;
}

const IPMI_CODE: Record<IpmiFailureKind, ErrorCode> = {
  credentials: 'BMC_AUTH',
  privilege: 'BMC_AUTH',
  cipher: 'BMC_ERROR',
  dns: 'BMC_UNREACHABLE',
  'no-response': 'BMC_UNREACHABLE',
  missing: 'EXEC_FAILED',
  other: 'BMC_ERROR',
};

/** One failed ipmitool run, classified; toKilnError turns it into the BMC_ERROR callers see. */
class IpmiFailure extends KilnError {
  constructor(
    readonly kind: IpmiFailureKind,
    readonly summary: string,
  ) {
    super(IPMI_CODE[kind], summary, { details: { kind } });
  }
}

function isIpmiFailure(e: unknown): e is IpmiFailure {
  return (
    isKilnError(e) &&
    Object.values(IPMI_CODE).includes(e.code) &&
    typeof (e as { kind?: unknown }).kind === 'string' &&
    typeof (e as { summary?: unknown }).summary === 'string'
  );
}

const BOOTDEV: Record<BootDevice, string> = { pxe: 'pxe', disk: 'disk', cdrom: 'cdrom' };

export class IpmiPowerDriver implements PowerDriver {
  readonly name = 'ipmi';
  private readonly run: Runner;
  private readonly log: Logger;
  private readonly ipmitool: string;

  constructor(opts: IpmiDriverOptions = {}) {
    this.run = opts.run ?? defaultRun;
    this.log = opts.log ?? silentLogger();
    this.ipmitool = opts.ipmitool ?? 'ipmitool';
  }

  async validate(creds: BmcCredentials, signal?: AbortSignal): Promise<void> {
    await this.getPower(creds, signal);
  }

  async getPower(creds: BmcCredentials, signal?: AbortSignal): Promise<PowerStateValue> {
    const r = await this.ipmitoolCall(creds, ['chassis', 'power', 'status'], signal);
    const state = parsePowerStatus(r.stdout);
    if (!state) {
      throw new KilnError(
        'BMC_ERROR',
        `BMC ${label(creds)} answered "chassis power status" with "${r.stdout.trim().slice(0, 200)}", which is not a power state; check that it is an IPMI 2.0 BMC`,
        { details: { bmc: creds.bmc.address } },
      );
    }
    return state;
  }

  async setPower(creds: BmcCredentials, action: BmcPowerAction, signal?: AbortSignal): Promise<void> {
    const o = this.options(creds);
    const current = await this.getPower(creds, signal);
    if (action === 'on' || action === 'off') {
      if (current === action) return;
      await this.ipmitoolCall(creds, ['chassis', 'power', action], signal);
      await waitForPower(() => this.getPower(creds, signal), action, o.power_wait_s, label(creds), signal);
      return;
    }
    if (action === 'soft') {
      if (current === 'off') return;
      await this.ipmitoolCall(creds, ['chassis', 'power', 'soft'], signal);
      return;
    }
    if (current === 'off') {
      await this.ipmitoolCall(creds, ['chassis', 'power', 'on'], signal);
      await waitForPower(() => this.getPower(creds, signal), 'on', o.power_wait_s, label(creds), signal);
      return;
    }
    await this.ipmitoolCall(creds, ['chassis', 'power', o.reboot_method], signal);
    if (o.reboot_method === 'cycle') {
      await waitForPower(() => this.getPower(creds, signal), 'on', o.power_wait_s, label(creds), signal);
    }
  }

  async setBootDevice(
    creds: BmcCredentials,
    device: BootDevice,
    opts: BootDeviceOptions = {},
    signal?: AbortSignal,
  ): Promise<void> {
    const flags: string[] = [];
    if (opts.persistent) flags.push('persistent');
    if (opts.mode === 'uefi') flags.push('efiboot');
    const command = ['chassis', 'bootdev', BOOTDEV[device]];
    if (flags.length) command.push(`options=${flags.join(',')}`);
    const r = await this.ipmitoolCall(creds, command, signal);
    const refusal = bootdevRefusal(r.stderr);
    if (refusal) {
      throw new KilnError(
        'BMC_ERROR',
        `BMC ${label(creds)} refused boot device ${device}: ${refusal}; check that the BMC supports boot overrides over IPMI, or set the boot order in the firmware`,
        { details: { bmc: creds.bmc.address, device } },
      );
    }
  }

  private options(creds: BmcCredentials): IpmiOptions {
    return parseDriverOptions(IpmiOptions, creds.options, 'ipmi', creds.bmc.address);
  }

  private async ipmitoolCall(
    creds: BmcCredentials,
    command: string[],
    signal?: AbortSignal,
  ): Promise<RunResult> {
    const o = this.options(creds);
    const args = ipmitoolArgs(creds.bmc, o, command);
    // ipmitool bounds itself with -N/-R per message, but a session needs several messages; the
    // process timeout is the backstop for a BMC that answers just often enough to keep it waiting.
    // `signal` lets a runner that supports it kill ipmitool on abort; `abortable` below covers one that doesn't.
    const runOpts: RunOptions & { signal?: AbortSignal } = {
      timeoutMs: Math.ceil((o.timeout_s * (o.retries + 1) * 6 + 5) * 1000),
      secretEnv: { IPMI_PASSWORD: creds.password ?? '' },
      signal,
    };
    const what = command.join(' ');
    try {
      return await withRetries(
        { tries: o.tries, backoffMs: o.backoff_ms },
        (e) => isIpmiFailure(e) && isTransient(e.kind),
        async (attempt) => {
          const started = Date.now();
          try {
            const r = await abortable(this.run(this.ipmitool, args, runOpts), signal);
            this.log.debug(
              { bmc: creds.bmc.address, command: what, attempt, ms: Date.now() - started },
              'ipmitool ok',
            );
            return r;
          } catch (e) {
            if (!hasErrorCode(e, 'EXEC_FAILED')) throw e;
            const x = e as ExecError;
            const kind = classifyIpmiFailure(x.stderrTail, x.timedOut, x.missing);
            const failure = new IpmiFailure(kind, stderrSummary(x.stderrTail) || x.message);
            this.log.warn(
              {
                bmc: creds.bmc.address,
                command: what,
                attempt,
                kind,
                ms: Date.now() - started,
                err: failure.summary,
              },
              'ipmitool failed',
            );
            throw failure;
          }
        },
        signal,
      );
    } catch (e) {
      throw this.toKilnError(creds, o, what, e);
    }
  }

  private toKilnError(creds: BmcCredentials, o: IpmiOptions, what: string, e: unknown): unknown {
    const { exhausted, failure } = lastFailure(e);
    if (!isIpmiFailure(failure)) return e;
    const bmc = label(creds);
    const user = creds.bmc.username ?? '';
    const details = {
      bmc: creds.bmc.address,
      command: what,
      kind: failure.kind,
      tries: exhausted ? o.tries : 1,
    };
    const msg = ((): string => {
      switch (failure.kind) {
        case 'credentials':
          return `BMC ${bmc} rejected the credentials for user "${user}"; check the username in bmc_address and bmc_password`;
        case 'cipher':
          return `BMC ${bmc} does not accept IPMI cipher suite ${o.cipher_suite}; set bmc_options.cipher_suite to one it supports (3 and 17 are the usual ones)`;
        case 'privilege':
          return `BMC ${bmc} refused "${what}" at privilege level ${o.privilege_level} for user "${user}"; give the user OPERATOR or ADMINISTRATOR rights, or set bmc_options.privilege_level`;
        case 'dns':
          return `BMC host ${creds.bmc.host} could not be resolved; check the host in bmc_address and the conductor's DNS`;
        case 'missing':
          return `ipmitool is not installed on the conductor; install the Debian package ipmitool`;
        case 'no-response':
          return `BMC ${bmc} timed out after ${details.tries} tries; check that the BMC is reachable from the conductor and that IPMI-over-LAN is enabled`;
        default:
          return `BMC ${bmc}: "ipmitool ${what}" failed after ${details.tries} tries: ${failure.summary}`;
      }
    })();
    return new KilnError('BMC_ERROR', msg, { details, cause: failure });
  }
}

function label(creds: BmcCredentials): string {
  return `${creds.bmc.host}:${creds.bmc.port ?? (creds.options?.port as number | undefined) ?? 623}`;
}

// The shared runner takes no signal; an ipmitool run is short and bounded by its own timeout, so
// on abort we stop waiting for it and let it finish on its own.
function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
