// Clean and deploy steps, as the conductor sees them: execute_*_step dispatches by step name to
// the handler registered for it, and get_*_steps advertises exactly the steps that have one, with
// IPA's GenericHardwareManager priorities and argsinfo. The disk engine registers its handlers
// (erase_devices, write_image, ...) with `table.implement(...)`; IPA steps nobody implements
// (burn-in, RAID, inject_files) are never offered, so a conductor can't pick a step that would
// only fail. Asked for one anyway, the agent answers as IPA does for a method no hardware
// manager has (HardwareManagerMethodNotFound).
import type { StepToRun } from '../../shared/wire/ipa.ts';
import type { CommandContext } from './types.ts';

export type StepKind = 'clean' | 'deploy';

export interface StepContext extends CommandContext {
  /** The node as the conductor sent it (secrets masked). */
  node: Record<string, unknown>;
  ports: unknown[];
  /** The step as received, including `args`. */
  step: StepToRun;
}

export type StepHandler = (args: Record<string, unknown>, ctx: StepContext) => Promise<unknown>;

export interface StepInfo {
  step: string;
  interface: string;
  priority: number;
  reboot_requested: boolean;
  abortable: boolean;
  argsinfo?: Record<string, unknown> | null;
}

/** The hardware manager name and version IPA reports; Ironic round-trips the version. */
export const HARDWARE_MANAGER = 'GenericHardwareManager';
export const HARDWARE_MANAGER_VERSION = { generic_hardware_manager: '1.1' } as const;

const s = (step: string, iface: string, priority: number, extra: Partial<StepInfo> = {}): StepInfo => ({
  step,
  interface: iface,
  priority,
  reboot_requested: false,
  abortable: true,
  ...extra,
});

/**
 * IPA 9.4.3 GenericHardwareManager.get_clean_steps: the metadata a step gets when it is
 * implemented. Only implemented steps are advertised.
 */
export function genericCleanSteps(): StepInfo[] {
  return [
    s('erase_devices', 'deploy', 10),
    s('erase_devices_metadata', 'deploy', 99),
    s('erase_devices_express', 'deploy', 0),
    s('erase_pstore', 'deploy', 0),
    s('delete_configuration', 'raid', 0),
    s('create_configuration', 'raid', 0),
    s('burnin_cpu', 'deploy', 0),
    s('burnin_disk', 'deploy', 0),
    s('burnin_memory', 'deploy', 0),
    s('burnin_network', 'deploy', 0),
  ];
}

/** IPA 9.4.3 GenericHardwareManager.get_deploy_steps (metadata for the ones implemented). */
export function genericDeploySteps(injectFilesPriority = 0): StepInfo[] {
  return [
    s('erase_devices_metadata', 'deploy', 0, { abortable: false }),
    s('apply_configuration', 'raid', 0, {
      abortable: false,
      argsinfo: {
        raid_config: { description: 'The RAID configuration to apply.', required: true },
        delete_existing: {
          description:
            "Setting this to 'True' indicates to delete existing RAID configuration prior to creating the new configuration.",
          required: false,
        },
      },
    }),
    s('write_image', 'deploy', 0, { abortable: false }),
    s('inject_files', 'deploy', injectFilesPriority, {
      abortable: false,
      argsinfo: {
        files: { description: 'Files to inject, a list of file structures.', required: false },
        verify_ca: { description: 'Whether to verify TLS certificates.', required: false },
      },
    }),
  ];
}

export class StepTable {
  /** IPA's metadata first (in IPA's order), then steps only this agent has. */
  private readonly steps: StepInfo[];
  private readonly handlers = new Map<string, StepHandler>();

  constructor(
    readonly kind: StepKind,
    /** Metadata (interface, priority, argsinfo) for steps that may be implemented. */
    catalog: StepInfo[] = kind === 'clean' ? genericCleanSteps() : genericDeploySteps(),
  ) {
    this.steps = [...catalog];
  }

  /**
   * Register the handler for a step name, which advertises it: with `info`, else IPA's
   * metadata for that name, else as a priority-0 deploy-interface step.
   */
  implement(name: string, handler: StepHandler, info?: Omit<StepInfo, 'step'>): this {
    if (this.handlers.has(name)) throw new Error(`${this.kind} step ${name} is implemented twice`);
    this.handlers.set(name, handler);
    const existing = this.steps.findIndex((x) => x.step === name);
    if (info) {
      if (existing >= 0) this.steps[existing] = { step: name, ...info };
      else this.steps.push({ step: name, ...info });
    } else if (existing < 0) {
      this.steps.push(s(name, 'deploy', 0));
    }
    return this;
  }

  /** What get_*_steps advertises: the steps with a handler, and only those. */
  list(): StepInfo[] {
    return this.steps.filter((x) => this.handlers.has(x.step)).map((x) => ({ ...x }));
  }

  handler(name: string): StepHandler | undefined {
    return this.handlers.get(name);
  }
}
