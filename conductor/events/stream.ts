// One client of the live event stream: Server-Sent Events written to a PassThrough that koa pipes
// to the socket. Stored events come from the events table (replayed from the client's
// Last-Event-ID, then followed by polling and whenever the bus says something was written), so
// rows another conductor wrote arrive too and a reconnect loses and repeats none. What is never
// stored (power and last_error changes, progress) comes from the bus and carries the id of the
// last stored event sent, so resuming from it skips nothing stored.
// The buffer is bounded: a replay waits for the client to read (and resets it if it stops for
// stallMs), and a client that falls behind by more than maxBufferBytes gets a final
// `event: reset` and is disconnected; it reconnects with Last-Event-ID and replays from the table.
import { PassThrough } from 'node:stream';
import type { Logger } from '../../shared/log.ts';
import type { EventRecord, Store } from '../store/store.ts';
import { type BusMessage, type EventBus, messagesForEvent } from './bus.ts';

export interface StreamOptions {
  /** How often the events table is read for rows no bus announced (another conductor's). */
  pollMs: number;
  /** How often a `: keepalive` comment is sent, so proxies keep an idle stream open. */
  keepaliveMs: number;
  /** Bytes a client may have waiting before it is reset. */
  maxBufferBytes: number;
  /** How long a replay may wait for a client to read what it was sent before the client is reset. */
  stallMs: number;
  /** How long a reset client has to read its last bytes before the socket is destroyed. */
  resetGraceMs: number;
  /** Rows read per query while replaying. */
  batch: number;
}

export const STREAM_DEFAULTS: StreamOptions = {
  pollMs: 500,
  keepaliveMs: 15_000,
  maxBufferBytes: 1024 * 1024,
  stallMs: 30_000,
  resetGraceMs: 10_000,
  batch: 500,
};

/** Bus messages waiting for a store read may not pile up either. */
const MAX_PENDING = 1000;

export interface StreamClientDeps {
  store: Store;
  bus: EventBus;
  log: Logger;
  /** Only this node's messages. */
  node?: string;
  /** The last stored event the client has: replay starts after it. */
  cursor: number;
  /** What the writer of a transition knew about its target state, by event id. */
  targetOf(eventId: number): string | null | undefined;
  options: StreamOptions;
  /** Drop the connection (a reset client that never read its last bytes). */
  abort(): void;
}

export class StreamClient {
  readonly body = new PassThrough();
  private cursor: number;
  private closed = false;
  private chain: Promise<void> = Promise.resolve();
  private pullQueued = false;
  private pending = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: StreamClientDeps) {
    this.cursor = deps.cursor;
    this.unsubscribe = deps.bus.subscribe((m) => this.onBus(m));
    this.body.on('close', () => this.stop());
    // Tell EventSource how soon to come back; this also sends the headers at once.
    this.write('retry: 2000\n\n');
    this.schedulePull();
    const { pollMs, keepaliveMs } = deps.options;
    this.timers.push(setInterval(() => this.schedulePull(), pollMs));
    this.timers.push(setInterval(() => this.write(': keepalive\n\n'), keepaliveMs));
    for (const t of this.timers) t.unref();
  }

  private onBus(m: BusMessage): void {
    if (this.closed || (this.deps.node && m.data.node !== this.deps.node)) return;
    // Stored: the table is the source (it has the other conductors' rows and the right order).
    if (m.eventId !== null) {
      this.schedulePull();
      return;
    }
    if (++this.pending > MAX_PENDING) {
      this.reset('too many messages waiting');
      return;
    }
    // First whatever was stored before it, so a state change reads before the progress after it.
    this.enqueue(async () => {
      try {
        await this.pull();
      } finally {
        this.pending--;
      }
      this.send(m.type, m.data);
    });
  }

  private enqueue(task: () => Promise<void>): void {
    this.chain = this.chain
      .then(() => (this.closed ? undefined : task()))
      .catch((e) => {
        this.deps.log.warn({ err: e }, 'event stream: reading new events failed; the next poll retries');
      });
  }

  private schedulePull(): void {
    if (this.pullQueued || this.closed) return;
    this.pullQueued = true;
    this.enqueue(async () => {
      this.pullQueued = false;
      await this.pull();
    });
  }

  /** Send every stored event after the cursor. */
  private async pull(): Promise<void> {
    const { store, node, options } = this.deps;
    for (;;) {
      if (this.closed) return;
      const rows = await store.events.listSince(this.cursor, {
        ...(node ? { node_uuid: node } : {}),
        limit: options.batch,
      });
      const names = await this.namesOf(rows);
      for (const ev of rows) {
        if (this.closed) return;
        this.cursor = ev.id;
        const n = names.get(ev.node_uuid);
        const target = this.deps.targetOf(ev.id) ?? (n && n.state === ev.to_state ? n.target : null);
        for (const m of messagesForEvent(ev, { name: n?.name ?? null, target })) this.send(m.type, m.data);
        // A replay goes at the client's pace, not into memory; a client that stops reading is reset.
        if (this.body.writableNeedDrain && !(await this.drained())) {
          this.reset(`not reading (nothing taken for ${options.stallMs} ms)`);
          return;
        }
      }
      if (rows.length < options.batch) return;
    }
  }

  /** True once the client has taken what is buffered; false if it did not within stallMs. */
  private drained(): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(t);
        this.body.off('drain', onDrain);
        this.body.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      const t = setTimeout(() => done(false), this.deps.options.stallMs);
      this.body.on('drain', onDrain);
      this.body.on('close', onClose);
    });
  }

  private async namesOf(
    rows: EventRecord[],
  ): Promise<Map<string, { name: string | null; state: string; target: string | null }>> {
    const out = new Map<string, { name: string | null; state: string; target: string | null }>();
    for (const uuid of new Set(rows.map((r) => r.node_uuid))) {
      const n = await this.deps.store.nodes.get(uuid);
      if (n) out.set(uuid, { name: n.name, state: n.provision_state, target: n.target_provision_state });
    }
    return out;
  }

  private send(type: string, data: unknown): void {
    this.write(`id: ${this.cursor}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private write(text: string): void {
    if (this.closed) return;
    this.body.write(text);
    const waiting = this.body.writableLength + this.body.readableLength;
    if (waiting > this.deps.options.maxBufferBytes)
      this.reset(`more than ${this.deps.options.maxBufferBytes} bytes behind`);
  }

  /** Give up on a client that cannot keep up: a last message saying so, then the end. */
  private reset(why: string): void {
    if (this.closed) return;
    const data = {
      reason: `this client is ${why}; reconnect with Last-Event-ID to resume`,
      last_id: this.cursor,
    };
    this.body.end(`id: ${this.cursor}\nevent: reset\ndata: ${JSON.stringify(data)}\n\n`);
    this.stop();
    this.deps.log.warn(
      { node: this.deps.node ?? null, last_id: this.cursor, why },
      'event stream client reset',
    );
    // A client that reads nothing at all would hold the socket (and what is queued on it) forever.
    const t = setTimeout(() => {
      this.body.destroy();
      this.deps.abort();
    }, this.deps.options.resetGraceMs);
    t.unref();
    this.body.once('close', () => clearTimeout(t));
  }

  /** Stop following: timers, the bus, pending reads. Idempotent. */
  stop(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.unsubscribe();
  }
}
