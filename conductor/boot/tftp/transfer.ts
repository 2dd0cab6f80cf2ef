// One read transfer: sends a file in blocks, lock-step or in windows (RFC 7440), over its own
// socket connected to the client's address and port, so the kernel drops packets from any other
// TID. Block numbers wrap to 0 after 65535 (the common rollover that tftp-hpa and iPXE accept).
import type { Socket } from 'node:dgram';
import { dataHeader, ErrorCode, errorPacket, type Negotiated, Op, oackPacket } from './protocol.ts';

/** Reads `length` bytes at `offset`; shorter only at the end of the file. */
export type BlockSource = (offset: number, length: number) => Buffer | Promise<Buffer>;

export interface TransferOptions {
  socket: Socket;
  size: number;
  source: BlockSource;
  negotiated: Negotiated;
  retries: number;
  onDone(result: { ok: true } | { ok: false; reason: string }): void;
}

export class Transfer {
  private readonly total: number;
  /** Absolute index of the first block the client has not acknowledged (1-based). */
  private base = 1;
  /** Absolute index of the last block sent. */
  private sentUpTo = 0;
  private awaitingOack: boolean;
  private retriesLeft: number;
  private timer: NodeJS.Timeout | null = null;
  private deadline = 0;
  private generation = 0;
  private finished = false;
  private lastSend: () => void = () => {};

  constructor(private readonly o: TransferOptions) {
    this.total = Math.floor(o.size / o.negotiated.blksize) + 1;
    this.awaitingOack = o.negotiated.oack.length > 0;
    this.retriesLeft = o.retries;
    o.socket.on('message', (msg) => this.onMessage(msg));
    o.socket.on('error', (err) => this.finish({ ok: false, reason: `socket error: ${err.message}` }));
  }

  start(): void {
    if (this.awaitingOack) {
      const oack = oackPacket(this.o.negotiated.oack);
      this.lastSend = () => this.send(oack);
      this.lastSend();
      this.arm();
    } else {
      this.sendWindow();
    }
  }

  abort(reason: string): void {
    this.send(errorPacket(ErrorCode.NOT_DEFINED, reason));
    this.finish({ ok: false, reason });
  }

  private onMessage(msg: Buffer): void {
    if (this.finished || msg.length < 4) return;
    const op = msg.readUInt16BE(0);
    if (op === Op.ERROR) {
      this.finish({
        ok: false,
        reason: `client sent error ${msg.readUInt16BE(2)}: ${msg.subarray(4).toString('latin1').replace(/\0.*$/s, '')}`,
      });
      return;
    }
    if (op !== Op.ACK) return;
    const n = msg.readUInt16BE(2);
    if (this.awaitingOack) {
      if (n !== 0) return;
      this.awaitingOack = false;
      this.retriesLeft = this.o.retries;
      this.sendWindow();
      return;
    }
    // Map the 16-bit number onto the blocks in flight; anything else is stale or a duplicate of
    // the previous window's ACK. Ignoring duplicates avoids the Sorcerer's Apprentice bug: only
    // our own timer retransmits.
    let abs = -1;
    for (let a = this.sentUpTo; a >= this.base; a--) {
      if ((a & 0xffff) === n) {
        abs = a;
        break;
      }
    }
    if (abs < 0) return;
    this.base = abs + 1;
    this.retriesLeft = this.o.retries;
    if (this.base > this.total) {
      this.finish({ ok: true });
      return;
    }
    // A mid-window ACK means the client lost what followed: RFC 7440 says resend from there.
    this.sendWindow();
  }

  private sendWindow(): void {
    const gen = ++this.generation;
    const { blksize, windowsize } = this.o.negotiated;
    const first = this.base;
    const last = Math.min(first + windowsize - 1, this.total);
    const fail = (err: unknown) => this.abort(`read failed: ${(err as Error).message}`);
    let data: Buffer | Promise<Buffer>;
    try {
      data = this.o.source((first - 1) * blksize, (last - first + 1) * blksize);
    } catch (err) {
      fail(err);
      return;
    }
    // Cached blocks come back synchronously: lock-step throughput is one round trip per block,
    // so a promise hop per block would show.
    if (data instanceof Promise) data.then((d) => this.emitWindow(gen, first, last, d), fail);
    else this.emitWindow(gen, first, last, data);
  }

  private emitWindow(gen: number, first: number, last: number, data: Buffer): void {
    if (gen !== this.generation || this.finished) return;
    const { blksize } = this.o.negotiated;
    // Header and payload go out as a two-buffer list: no copy of the block.
    const packets: Buffer[][] = [];
    for (let b = first; b <= last; b++) {
      const off = (b - first) * blksize;
      packets.push([dataHeader(b), data.subarray(off, Math.min(off + blksize, data.length))]);
    }
    this.sentUpTo = last;
    this.lastSend = () => {
      for (const p of packets) this.send(p);
    };
    this.lastSend();
    this.arm();
  }

  /** Pushes the retransmission deadline out; one timer per transfer, re-armed only when it fires early. */
  private arm(): void {
    this.deadline = performance.now() + this.o.negotiated.timeoutMs;
    if (!this.timer) this.schedule(this.o.negotiated.timeoutMs);
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.finished) return;
      const left = this.deadline - performance.now();
      if (left > 1) return this.schedule(left);
      if (--this.retriesLeft < 0) {
        this.finish({ ok: false, reason: `client stopped acknowledging at block ${this.base}` });
        return;
      }
      this.lastSend();
      this.arm();
    }, ms);
  }

  private send(b: Buffer | Buffer[]): void {
    try {
      this.o.socket.send(b);
    } catch {
      // socket already closed
    }
  }

  private finish(result: { ok: true } | { ok: false; reason: string }): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.generation++;
    this.o.onDone(result);
  }
}
