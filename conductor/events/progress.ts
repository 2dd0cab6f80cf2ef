// Agent progress as the stream shows it. The agent reports what it knows in each heartbeat
// (shared/wire/ipa.ts KilnProgress: phase, bytes, often its own rate and ETA); where it leaves the
// rate out, it is worked out here from the previous snapshot of the same phase, and "step N of M"
// comes from the progress itself or from the clean/deploy step list the conductor is working through.
import type { NodeProgressData } from './bus.ts';

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Step N (1-based) of M: the progress's own, else the conductor's clean or deploy step index. */
function stepOf(
  progress: Record<string, unknown>,
  info: Record<string, unknown>,
): { step?: number; steps?: number } {
  const step = num(progress.step);
  const steps = num(progress.steps);
  if (step !== undefined) return { step, ...(steps !== undefined ? { steps } : {}) };
  for (const kind of ['clean', 'deploy']) {
    const list = info[`${kind}_step_list`] ?? info[`${kind}_steps`];
    const index = num(info[`${kind}_step_index`]);
    if (Array.isArray(list) && index !== undefined) return { step: index + 1, steps: list.length };
  }
  return {};
}

export class ProgressTracker {
  /** The last (phase, bytes, time) per node, for a rate when the agent sends none. */
  private readonly last = new Map<string, { phase: string; bytes: number; t: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The node's progress stopped being reported (command over, node deleted). */
  forget(uuid: string): void {
    this.last.delete(uuid);
  }

  /** The stream's view of one progress snapshot, or null when `progress` is not one. */
  snapshot(
    ref: { node: string; name: string | null; at: string },
    progress: unknown,
    info: Record<string, unknown>,
  ): NodeProgressData | null {
    if (typeof progress !== 'object' || progress === null || Array.isArray(progress)) return null;
    const p = progress as Record<string, unknown>;
    const phase = typeof p.phase === 'string' ? p.phase : undefined;
    const done = num(p.bytes_done);
    const total = num(p.bytes_total);
    const t = this.now();
    let rate = num(p.rate_bps);
    const prev = this.last.get(ref.node);
    if (rate === undefined && done !== undefined && prev && prev.phase === (phase ?? '') && t > prev.t) {
      if (done >= prev.bytes) rate = Math.round(((done - prev.bytes) * 1000) / (t - prev.t));
    }
    if (done !== undefined) this.last.set(ref.node, { phase: phase ?? '', bytes: done, t });
    let eta = num(p.eta_s);
    if (eta === undefined && rate && rate > 0 && done !== undefined && total !== undefined)
      eta = Math.max(0, Math.round((total - done) / rate));
    const out: NodeProgressData = { ...ref, ...stepOf(p, info) };
    if (phase !== undefined) out.phase = phase;
    if (done !== undefined) out.bytes_done = done;
    if (total !== undefined) out.bytes_total = total;
    if (rate !== undefined) out.rate_bps = rate;
    if (eta !== undefined) out.eta_s = eta;
    if (typeof p.message === 'string') out.message = p.message;
    return out;
  }
}
