// The heartbeater, with IPA's cadence: first beat as soon as the API listens, then every
// heartbeat_timeout × U(0.3, 0.6); after a failure the time of the last good beat is not moved,
// so it retries after 5–10 s (never later than the normal interval). When an async command ends,
// a beat is forced so the conductor learns at once, but no more often than every 5 s.
import type { Logger } from '../shared/log.ts';
import type { KilnProgress } from '../shared/wire/ipa.ts';
import { type IronicApiClient, ironicErrorMessage } from './ironic-api.ts';

export interface HeartbeaterOptions {
  api: Pick<IronicApiClient, 'heartbeat'>;
  nodeUuid: string;
  callbackUrl: string;
  token: () => string | null;
  /** PEM of the certificate the agent's HTTPS API presents (auto-TLS); null when it serves HTTP. */
  verifyCa?: string | null;
  heartbeatTimeoutS: number;
  log: Logger;
  /** Progress of the running command, if any (sent only when the conductor supports it). */
  progress?: () => KilnProgress | null;
  random?: () => number;
  /** Smallest gap between a forced beat and the previous good one. */
  forcedGapMs?: number;
  /**
   * Kiln extension: while a command reports progress to a conductor that asked for it, beat this
   * often so operators watch bytes move instead of waiting minutes for the next IPA-paced beat.
   */
  progressIntervalMs?: number;
  /** True when the conductor negotiated the progress extension. */
  progressNegotiated?: () => boolean;
}

export class Heartbeater {
  private timer: NodeJS.Timeout | null = null;
  private progressTimer: NodeJS.Timeout | null = null;
  private dueAt = 0;
  private lastOk = 0;
  private forcedAt = 0;
  private inFlight = false;
  private stopped = true;
  /** Beats accepted by the conductor (for tests and logs). */
  okCount = 0;
  failCount = 0;

  constructor(private readonly opts: HeartbeaterOptions) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
    const every = this.opts.progressIntervalMs;
    if (every) {
      // A command that starts reporting progress mid-interval should not wait for a beat that
      // was scheduled minutes ago at IPA's pace: bring it forward.
      this.progressTimer = setInterval(() => {
        if (this.stopped || this.inFlight || !this.opts.progressNegotiated?.() || !this.opts.progress?.())
          return;
        const wanted = Math.max(Date.now(), this.lastOk + every);
        if (wanted < this.dueAt) this.schedule(wanted - Date.now());
      }, every);
      this.progressTimer.unref?.();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.progressTimer) clearInterval(this.progressTimer);
    this.timer = null;
    this.progressTimer = null;
  }

  /** Ask for a beat soon (an async command just finished). */
  force(): void {
    this.forcedAt = Date.now();
    if (this.stopped || this.inFlight) return; // the in-flight beat's completion reschedules
    const at = Math.max(Date.now(), this.lastOk + (this.opts.forcedGapMs ?? 5000));
    if (at < this.dueAt) this.schedule(at - Date.now());
  }

  private interval(): number {
    const r = (this.opts.random ?? Math.random)();
    return this.opts.heartbeatTimeoutS * (0.3 + 0.3 * r) * 1000;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = Date.now() + delayMs;
    this.timer = setTimeout(() => void this.beat(), Math.max(0, delayMs));
  }

  private async beat(): Promise<void> {
    this.timer = null;
    this.inFlight = true;
    const startedAt = Date.now();
    let ok = false;
    try {
      const res = await this.opts.api.heartbeat({
        nodeUuid: this.opts.nodeUuid,
        callbackUrl: this.opts.callbackUrl,
        agentToken: this.opts.token(),
        verifyCa: this.opts.verifyCa ?? null,
        progress: this.opts.progress?.() ?? null,
      });
      if (res.status === 202) {
        ok = true;
        this.okCount++;
        this.opts.log.debug({ node: this.opts.nodeUuid }, 'heartbeat accepted');
      } else if (res.status === 409) {
        this.failCount++;
        this.opts.log.warn(
          { node: this.opts.nodeUuid, error: ironicErrorMessage(res.text) },
          'heartbeat conflict',
        );
      } else {
        this.failCount++;
        this.opts.log.error(
          { node: this.opts.nodeUuid, status: res.status, error: ironicErrorMessage(res.text) },
          'heartbeat refused',
        );
      }
    } catch (err) {
      this.failCount++;
      this.opts.log.error(
        { node: this.opts.nodeUuid, err: String((err as Error).message ?? err) },
        'heartbeat failed',
      );
    }
    this.inFlight = false;
    let normal = this.interval();
    if (this.opts.progressIntervalMs && this.opts.progressNegotiated?.() && this.opts.progress?.()) {
      normal = Math.min(normal, this.opts.progressIntervalMs);
    }
    if (ok) {
      this.lastOk = Date.now();
      // A command that finished while this beat was in flight still needs its own beat.
      if (this.forcedAt > startedAt) this.schedule(Math.min(normal, this.opts.forcedGapMs ?? 5000));
      else this.schedule(normal);
    } else {
      const retry = (5 + 5 * (this.opts.random ?? Math.random)()) * 1000;
      this.schedule(Math.min(retry, normal));
    }
  }
}
