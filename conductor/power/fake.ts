// An in-memory power driver (Ironic's FakePower): power and boot device kept per BMC address, so
// development setups and unit tests of the conductor can run without a BMC. Latency and failures
// can be injected to exercise callers' timeout and error paths.
import { KilnError } from '../../shared/errors.ts';
import type {
  BmcCredentials,
  BmcPowerAction,
  BootDevice,
  BootDeviceOptions,
  PowerDriver,
  PowerStateValue,
} from './driver.ts';
import { sleep } from './retry.ts';

export interface FakeBmcState {
  power: PowerStateValue;
  bootDevice: BootDevice | null;
  bootPersistent: boolean;
  bootMode: 'uefi' | 'bios' | null;
  /** The override in force at the last power on or reboot (null: the machine's own boot order). */
  lastBootDevice: BootDevice | null;
  /** Every accepted call, oldest first, e.g. "setPower reboot". */
  calls: string[];
}

export type FakeOperation = 'validate' | 'getPower' | 'setPower' | 'setBootDevice';

export interface FakePowerOptions {
  /** Power state of a BMC address seen for the first time. */
  initialPower?: PowerStateValue;
  /** Delay before each call answers, in milliseconds. */
  latencyMs?: number;
  /**
   * Return an error message to make a call fail with BMC_ERROR, or null to let it through.
   * Decided per call, so a test can fail one node, one operation or the n-th attempt.
   */
  fail?: (address: string, op: FakeOperation) => string | null;
  /** Password every BMC expects; a mismatch is rejected like a real BMC would. */
  password?: string;
}

export class FakePowerDriver implements PowerDriver {
  readonly name = 'fake';
  private readonly bmcs = new Map<string, FakeBmcState>();

  constructor(private readonly opts: FakePowerOptions = {}) {}

  /** The state behind one address (created on first use), for tests to read or change. */
  state(address: string): FakeBmcState {
    let s = this.bmcs.get(address);
    if (!s) {
      s = {
        power: this.opts.initialPower ?? 'off',
        bootDevice: null,
        bootPersistent: false,
        bootMode: null,
        lastBootDevice: null,
        calls: [],
      };
      this.bmcs.set(address, s);
    }
    return s;
  }

  private async enter(creds: BmcCredentials, op: FakeOperation, signal?: AbortSignal): Promise<FakeBmcState> {
    if (this.opts.latencyMs) await sleep(this.opts.latencyMs, signal);
    signal?.throwIfAborted();
    const address = creds.bmc.address;
    const failure = this.opts.fail?.(address, op);
    if (failure)
      throw new KilnError('BMC_ERROR', `BMC ${address}: ${failure}`, { details: { bmc: address, op } });
    if (this.opts.password !== undefined && creds.password !== this.opts.password) {
      throw new KilnError(
        'BMC_ERROR',
        `BMC ${address} rejected the credentials; check the username in bmc_address and bmc_password`,
        { details: { bmc: address, op } },
      );
    }
    return this.state(address);
  }

  async validate(creds: BmcCredentials, signal?: AbortSignal): Promise<void> {
    const s = await this.enter(creds, 'validate', signal);
    s.calls.push('validate');
  }

  async getPower(creds: BmcCredentials, signal?: AbortSignal): Promise<PowerStateValue> {
    const s = await this.enter(creds, 'getPower', signal);
    s.calls.push('getPower');
    return s.power;
  }

  async setPower(creds: BmcCredentials, action: BmcPowerAction, signal?: AbortSignal): Promise<void> {
    const s = await this.enter(creds, 'setPower', signal);
    s.calls.push(`setPower ${action}`);
    // A fake machine has no OS to refuse a soft shutdown, so soft behaves as off.
    const wasOn = s.power === 'on';
    s.power = action === 'soft' ? 'off' : action === 'reboot' ? 'on' : action;
    if (action === 'reboot' || (action === 'on' && !wasOn)) this.consumeOneTimeBoot(s);
  }

  async setBootDevice(
    creds: BmcCredentials,
    device: BootDevice,
    opts: BootDeviceOptions = {},
    signal?: AbortSignal,
  ): Promise<void> {
    const s = await this.enter(creds, 'setBootDevice', signal);
    s.calls.push(
      `setBootDevice ${device}${opts.persistent ? ' persistent' : ''}${opts.mode ? ` ${opts.mode}` : ''}`,
    );
    s.bootDevice = device;
    s.bootPersistent = Boolean(opts.persistent);
    s.bootMode = opts.mode ?? null;
  }

  // Real BMCs drop a one-time override once the machine has booted with it.
  private consumeOneTimeBoot(s: FakeBmcState): void {
    s.lastBootDevice = s.bootDevice;
    if (s.bootDevice && !s.bootPersistent) s.bootDevice = null;
  }
}
