// The agent's command seam, in IPA's terms: commands are addressed as "<extension>.<command>"
// (e.g. "standby.prepare_image"); sync commands finish inside the POST, async ones return a
// RUNNING record that the conductor polls. Extensions are plain objects registered by name.
import type { Logger } from '../../shared/log.ts';

/** Live progress of a running command (Kiln extension; never shown to a stock Ironic). */
export interface Progress {
  phase: string;
  bytes_done?: number;
  bytes_total?: number | null;
  rate_bps?: number | null;
  eta_s?: number | null;
  message?: string;
}

export interface CommandContext {
  log: Logger;
  signal: AbortSignal;
  /** Report progress; cheap to call often (the agent throttles what it sends). */
  progress(p: Progress): void;
}

export interface CommandDefinition {
  /** Sync commands run to completion before the POST answers. */
  async: boolean;
  /** Throw KilnError VALIDATION_FAILED for bad params (→ 400 "Invalid command parameters"). */
  validate?(params: Record<string, unknown>): void;
  run(params: Record<string, unknown>, ctx: CommandContext): Promise<unknown>;
}

export interface CommandExtension {
  /** IPA extension name: standby, clean, deploy, image, log, system, poll. */
  name: string;
  commands: Record<string, CommandDefinition>;
}
