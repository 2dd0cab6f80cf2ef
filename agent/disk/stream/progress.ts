// Turns byte counts into the progress the agent reports: rate over a sliding window (so a stall
// shows as a falling rate, not an average over the whole run) and the time left at that rate.
import type { Progress } from '../../commands/types.ts';

export type ProgressSink = (p: Progress) => void;

export class ProgressMeter {
  private samples: Array<[number, number]> = [];
  private lastEmit = 0;
  total: number | null = null;

  constructor(
    private readonly phase: string,
    private readonly sink: ProgressSink | undefined,
    private readonly windowMs = 5000,
    private readonly everyMs = 500,
    private readonly now: () => number = () => performance.now(),
  ) {}

  update(bytes: number, force = false): void {
    if (!this.sink) return;
    const t = this.now();
    this.samples.push([t, bytes]);
    while (this.samples.length > 2 && t - this.samples[0]![0] > this.windowMs) this.samples.shift();
    if (!force && t - this.lastEmit < this.everyMs) return;
    this.lastEmit = t;
    const [t0, b0] = this.samples[0]!;
    const rate = t > t0 ? ((bytes - b0) * 1000) / (t - t0) : null;
    const eta = rate && this.total !== null && rate > 0 ? Math.max(0, (this.total - bytes) / rate) : null;
    this.sink({
      phase: this.phase,
      bytes_done: bytes,
      bytes_total: this.total,
      rate_bps: rate === null ? null : Math.round(rate),
      eta_s: eta === null ? null : Math.round(eta),
    });
  }
}
