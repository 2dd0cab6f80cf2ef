// The power seam. One driver per BMC protocol (ipmi, redfish, fake), chosen per node from the
// scheme of its bmc_address. The contract, which every driver's tests check:
// - setPower('on') on a node that is already on succeeds (and 'off' on one already off);
// - 'soft' asks the OS for an ACPI shutdown and returns once the BMC accepted the request;
// - 'reboot' ends powered on, whether the node was on or off before;
// - errors are KilnError BMC_ERROR whose message names the BMC and what to check next.
import type { BmcAddress } from '../../shared/bmc.ts';

export type PowerStateValue = 'on' | 'off';
export type BmcPowerAction = 'on' | 'off' | 'soft' | 'reboot';
export type BootDevice = 'pxe' | 'disk' | 'cdrom';

export interface BootDeviceOptions {
  /** Keep the override for every boot (true) or only the next one (false, the default). */
  persistent?: boolean;
  /** Firmware mode for the override; BMCs that can't choose ignore it. */
  mode?: 'uefi' | 'bios';
}

export interface BmcCredentials {
  bmc: BmcAddress;
  password: string | null;
  /** Driver-specific knobs from node properties (e.g. ipmi cipher suite, redfish CA). */
  options?: Record<string, unknown>;
}

export interface PowerDriver {
  readonly name: string;
  /** Check that the BMC answers with these credentials; used when enrolling (enroll → manageable). */
  validate(creds: BmcCredentials, signal?: AbortSignal): Promise<void>;
  getPower(creds: BmcCredentials, signal?: AbortSignal): Promise<PowerStateValue>;
  setPower(creds: BmcCredentials, action: BmcPowerAction, signal?: AbortSignal): Promise<void>;
  setBootDevice(
    creds: BmcCredentials,
    device: BootDevice,
    opts?: BootDeviceOptions,
    signal?: AbortSignal,
  ): Promise<void>;
}

export interface PowerDriverRegistry {
  get(driver: string): PowerDriver;
}
