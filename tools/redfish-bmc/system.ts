// What a ComputerSystem does when reset or patched: power transitions per ResetType, the boot
// override (spent by the boot that used it when it is "Once"), and the hooks that let a lab make
// those changes real.
import { randomUUID } from 'node:crypto';
import {
  BOOT_ENABLED,
  BOOT_MODES,
  BOOT_TARGETS,
  type BootOverride,
  RESET_TYPES,
  type ResetType,
  redfishError,
  type SystemState,
} from './resources.ts';

export interface ResetEvent {
  resetType: string;
  from: 'On' | 'Off';
  to: 'On' | 'Off';
  /** True when the machine (re)boots: off→on, or a restart of a running machine. */
  boots: boolean;
  /** The boot override target that boot will use ("None" = the firmware's order). */
  bootTarget: string;
}

export interface RedfishBmcHooks {
  /** Called before a Reset takes effect; a rejection fails the action with HTTP 500. */
  onReset?(systemId: string, event: ResetEvent): Promise<void> | void;
  /** Called after the boot override changed. */
  onBoot?(systemId: string, boot: BootOverride): Promise<void> | void;
  /** The real power state, for a machine that can turn itself off (a VM that shut down). */
  readPower?(systemId: string): Promise<'On' | 'Off' | undefined> | 'On' | 'Off' | undefined;
}

/** A request the BMC answers with an error status and a Redfish error body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: object,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
  }
}

export function newSystem(id: string, power: 'On' | 'Off'): SystemState {
  return {
    id,
    uuid: randomUUID(),
    power,
    boot: {
      BootSourceOverrideTarget: 'None',
      BootSourceOverrideEnabled: 'Disabled',
      BootSourceOverrideMode: 'UEFI',
    },
    lastBootTarget: null,
    resets: [],
  };
}

export async function refreshPower(s: SystemState, hooks: RedfishBmcHooks): Promise<void> {
  const p = await hooks.readPower?.(s.id);
  if (p === 'On' || p === 'Off') s.power = p;
}

export async function resetSystem(s: SystemState, resetType: unknown, hooks: RedfishBmcHooks): Promise<void> {
  if (typeof resetType !== 'string' || !(RESET_TYPES as readonly string[]).includes(resetType)) {
    throw new HttpError(
      400,
      redfishError(
        'ActionParameterValueNotInList',
        `The value ${JSON.stringify(resetType)} for the parameter ResetType is not in the list of acceptable values`,
      ),
    );
  }
  await refreshPower(s, hooks);
  const from = s.power;
  const t = resetType as ResetType;
  let to: 'On' | 'Off' = from;
  let boots = false;
  if (t === 'On' || t === 'ForceOn') {
    to = 'On';
    boots = from === 'Off';
  } else if (t === 'ForceOff' || t === 'GracefulShutdown') {
    to = 'Off';
  } else if (t === 'PushPowerButton') {
    to = from === 'On' ? 'Off' : 'On';
    boots = to === 'On';
  } else if (t === 'ForceRestart' || t === 'GracefulRestart' || t === 'PowerCycle') {
    to = 'On';
    boots = true;
  }
  const bootTarget =
    s.boot.BootSourceOverrideEnabled === 'Disabled' ? 'None' : s.boot.BootSourceOverrideTarget;
  try {
    await hooks.onReset?.(s.id, { resetType: t, from, to, boots, bootTarget });
  } catch (e) {
    throw new HttpError(500, redfishError('InternalError', `reset hook failed: ${(e as Error).message}`));
  }
  s.resets.push(t);
  s.power = to;
  if (boots) {
    s.lastBootTarget = bootTarget;
    // A one-time override is spent by the boot that used it, as on real BMCs.
    if (s.boot.BootSourceOverrideEnabled === 'Once') {
      s.boot = { ...s.boot, BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'None' };
    }
  }
}

export async function patchSystem(
  s: SystemState,
  body: Record<string, unknown>,
  hooks: RedfishBmcHooks,
): Promise<void> {
  for (const k of Object.keys(body)) {
    if (k !== 'Boot') {
      throw new HttpError(
        400,
        redfishError(
          'PropertyNotWritable',
          `The property ${k} is a read only property and cannot be assigned a value`,
        ),
      );
    }
  }
  const boot = body.Boot as Record<string, unknown> | undefined;
  if (!boot || typeof boot !== 'object') return;
  const next = { ...s.boot };
  const check = (prop: keyof BootOverride, allowed: readonly string[]) => {
    const v = boot[prop];
    if (v === undefined) return;
    if (typeof v !== 'string' || !allowed.includes(v)) {
      throw new HttpError(
        400,
        redfishError(
          'PropertyValueNotInList',
          `The value ${JSON.stringify(v)} for the property ${prop} is not in the list of acceptable values`,
        ),
      );
    }
    (next as Record<string, string>)[prop] = v;
  };
  for (const k of Object.keys(boot)) {
    if (!['BootSourceOverrideTarget', 'BootSourceOverrideEnabled', 'BootSourceOverrideMode'].includes(k)) {
      throw new HttpError(
        400,
        redfishError(
          'PropertyUnknown',
          `The property Boot/${k} is not in the list of valid properties for the resource`,
        ),
      );
    }
  }
  check('BootSourceOverrideTarget', BOOT_TARGETS);
  check('BootSourceOverrideEnabled', BOOT_ENABLED);
  check('BootSourceOverrideMode', BOOT_MODES);
  s.boot = next;
  await hooks.onBoot?.(s.id, { ...s.boot });
}
