// Writes image bytes to a block device at given offsets. Contiguous writes are gathered into a
// large buffer and written with one positional write, several buffers deep so the network and
// the disk work at the same time. When the device accepts O_DIRECT the buffers are block-aligned
// (see alignedBuffer) and the page cache is bypassed; otherwise writes are buffered and
// fdatasync makes them durable. Either way nothing counts as written before flush() returns.
import { constants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { TargetGuard } from '../guard.ts';

export interface BlockWriterOptions {
  /** Size of each gathered write (default 2 MiB). */
  chunkBytes?: number;
  /**
   * Buffers (default 4): one filling while the others are written. Measured on loopback
   * (1 GiB raw): 4 MiB × 2 took 2.3–2.9 s, 2 MiB × 4 took 1.8–1.9 s; same memory.
   */
  depth?: number;
  /** Try O_DIRECT first (default true). */
  direct?: boolean;
  /** Device size; writes past it fail with DEVICE_TOO_SMALL. */
  deviceBytes: number;
}

export class DeviceTooSmallError extends Error {
  readonly code = 'DEVICE_TOO_SMALL';
  constructor(
    readonly device: string,
    readonly needed: number,
    readonly available: number,
  ) {
    super(
      `image needs ${needed} bytes but ${device} holds only ${available}; choose a larger disk with root-device hints`,
    );
    this.name = 'DeviceTooSmallError';
  }
}

interface Slot {
  buf: Buffer;
  pending: Promise<void> | null;
}

const PROBE = 4096;

/**
 * Node gives no way to ask for an aligned allocation. A large Buffer comes from malloc/mmap and
 * is only 16-byte aligned, so we over-allocate by one page and find the sub-array whose address
 * the device accepts by asking the kernel: an O_DIRECT read into a misaligned buffer fails with
 * EINVAL. Reading (never writing) keeps the probe harmless.
 */
async function alignedBuffer(fh: FileHandle, bytes: number): Promise<Buffer | null> {
  const raw = Buffer.allocUnsafeSlow(bytes + PROBE);
  for (let off = 0; off < PROBE; off += 16) {
    try {
      await fh.read(raw, off, PROBE, 0);
      return raw.subarray(off, off + bytes);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
    }
  }
  return null;
}

export class BlockWriter {
  private slots: Slot[] = [];
  private current = 0;
  /** Device offset of the first byte in the current slot, and bytes gathered there. */
  private start = 0;
  private filled = 0;
  private highWater = 0;
  private constructor(
    readonly device: string,
    private readonly fh: FileHandle,
    /** A second, buffered handle for writes O_DIRECT can't take (unaligned head/tail). */
    private readonly buffered: FileHandle,
    readonly direct: boolean,
    private readonly blockBytes: number,
    private readonly deviceBytes: number,
  ) {}

  static async open(device: string, guard: TargetGuard, opts: BlockWriterOptions): Promise<BlockWriter> {
    guard.assertWritable(device);
    const chunk = opts.chunkBytes ?? 2 * 1024 * 1024;
    const depth = Math.max(2, opts.depth ?? 4);
    const buffered = await fsp.open(device, constants.O_WRONLY);
    let fh: FileHandle | null = null;
    let bufs: Buffer[] = [];
    if (opts.direct !== false) {
      try {
        fh = await fsp.open(device, constants.O_RDWR | constants.O_DIRECT);
        for (let i = 0; i < depth; i++) {
          const b = await alignedBuffer(fh, chunk);
          if (!b) break;
          bufs.push(b);
        }
        if (bufs.length < depth) {
          bufs = [];
          await fh.close();
          fh = null;
        }
      } catch {
        await fh?.close();
        fh = null;
      }
    }
    const direct = fh !== null;
    if (!direct) bufs = Array.from({ length: depth }, () => Buffer.allocUnsafeSlow(chunk));
    const w = new BlockWriter(device, fh ?? buffered, buffered, direct, 512, opts.deviceBytes);
    w.slots = bufs.map((buf) => ({ buf, pending: null }));
    return w;
  }

  /** Bytes up to which the device has been written (highest end offset seen). */
  get extent(): number {
    return Math.max(this.highWater, this.start + this.filled);
  }

  /** Queue `data` for device offset `offset`. Resolves when the caller may reuse `data`. */
  async writeAt(offset: number, data: Buffer): Promise<void> {
    if (offset + data.length > this.deviceBytes) {
      throw new DeviceTooSmallError(this.device, offset + data.length, this.deviceBytes);
    }
    if (this.filled > 0 && offset !== this.start + this.filled) await this.submit();
    if (this.filled === 0) this.start = offset;
    let pos = 0;
    while (pos < data.length) {
      const slot = this.slots[this.current]!;
      const n = Math.min(data.length - pos, slot.buf.length - this.filled);
      data.copy(slot.buf, this.filled, pos, pos + n);
      this.filled += n;
      pos += n;
      if (this.filled === slot.buf.length) await this.submit();
    }
  }

  /** Start writing the current slot and move to the other one (waiting if it is still busy). */
  private async submit(): Promise<void> {
    if (this.filled === 0) return;
    const slot = this.slots[this.current]!;
    const len = this.filled;
    const at = this.start;
    this.highWater = Math.max(this.highWater, at + len);
    slot.pending = this.writeOut(slot.buf.subarray(0, len), at);
    // A failed write surfaces when the slot is awaited; don't let it count as unhandled first.
    slot.pending.catch(() => {});
    this.current = (this.current + 1) % this.slots.length;
    this.start = at + len;
    this.filled = 0;
    const next = this.slots[this.current]!;
    if (next.pending) {
      const p = next.pending;
      next.pending = null;
      await p;
    }
  }

  private async writeOut(buf: Buffer, at: number): Promise<void> {
    const bs = this.blockBytes;
    if (!this.direct || at % bs !== 0) return this.writeAll(this.buffered, buf, at);
    const aligned = buf.length - (buf.length % bs);
    if (aligned > 0) await this.writeAll(this.fh, buf.subarray(0, aligned), at);
    if (aligned < buf.length) await this.writeAll(this.buffered, buf.subarray(aligned), at + aligned);
  }

  private async writeAll(fh: FileHandle, buf: Buffer, at: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, at + done);
      if (bytesWritten <= 0) throw new Error(`short write to ${this.device} at offset ${at + done}`);
      done += bytesWritten;
    }
  }

  /** Write out everything gathered, wait for it, and make it durable (fdatasync on both handles). */
  async flush(): Promise<void> {
    await this.submit();
    for (const s of this.slots) {
      if (s.pending) {
        const p = s.pending;
        s.pending = null;
        await p;
      }
    }
    await this.buffered.datasync();
    if (this.direct) await this.fh.datasync();
  }

  /** Close without flushing (after a failure, once pending writes have settled). */
  async close(): Promise<void> {
    await Promise.allSettled(this.slots.map((s) => s.pending));
    if (this.direct) await this.fh.close().catch(() => {});
    await this.buffered.close().catch(() => {});
  }
}
