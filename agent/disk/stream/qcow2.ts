// Converts a qcow2 image to its raw guest view while it streams, without staging the file.
// The bytes arrive in file order; each host cluster is looked up as it completes:
//   header (cluster 0) → where the L1 table and refcount table are;
//   L1 table clusters → where each L2 table is;  L2 table → host data cluster → guest offset;
//   a data cluster whose L2 entry is known → written at its guest offset.
// qemu-img writes an L2 table before the data it maps, so the normal case needs no buffering.
// A cluster that arrives before its mapping is known is held (bounded) until the tables that
// remain unread say whether it is data; past the bound the image is refused with the reason.
// Guest ranges no cluster covered (unallocated or zero clusters) are returned for zeroing, so
// old disk contents never show through. Compressed clusters, backing files, encryption,
// external data files, extended L2 entries and internal snapshots are refused.
import { DeviceTooSmallError } from './block-writer.ts';
import { UnsupportedImageError } from './decompress.ts';

export interface GuestSink {
  writeAt(offset: number, data: Buffer): Promise<void>;
}

export interface Qcow2Options {
  /** Capacity of the target; a larger virtual size is refused before anything is written. */
  deviceBytes: number;
  device?: string;
  /** Bytes of early clusters held while waiting for their L2 table (default 32 MiB). */
  maxPendingBytes?: number;
  /** Called once the header has been read. */
  onHeader?: (virtualSize: number) => void;
}

export interface Qcow2Result {
  virtualSize: number;
  dataBytes: number;
  /** [offset, length] guest ranges with no data cluster: must read back as zeros. */
  zeroRanges: Array<[number, number]>;
}

type Meta =
  | { kind: 'l1'; index: number }
  | { kind: 'l2'; l1: number }
  | { kind: 'refcount-table' }
  | { kind: 'skip' };

const OFFSET_MASK = 0x00fffffffffffe00n;
const COMPRESSED = 1n << 62n;
const KNOWN_INCOMPAT = 0b11111n;

class CorruptImageError extends UnsupportedImageError {}

export class Qcow2Stream {
  private head: Buffer[] = [];
  private headLen = 0;
  private cs = 0;
  private asm: Buffer | null = null;
  private asmFill = 0;
  /** Host offset of the cluster being assembled. */
  private pos = 0;
  private version = 0;
  private size = 0;
  private l1Size = 0;
  private readonly meta = new Map<number, Meta>();
  private metaPending = 0;
  private readonly map = new Map<number, number>();
  private readonly pending = new Map<number, Buffer>();
  private pendingBytes = 0;
  private written: Uint8Array = new Uint8Array(0);
  private dataBytes = 0;

  constructor(
    private readonly sink: GuestSink,
    private readonly opts: Qcow2Options,
  ) {}

  async push(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (!this.asm) {
        // Until byte 24 we don't know the cluster size.
        const take = Math.min(24 - this.headLen, chunk.length - off);
        this.head.push(chunk.subarray(off, off + take));
        this.headLen += take;
        off += take;
        if (this.headLen === 24) this.startClusters(Buffer.concat(this.head));
        continue;
      }
      const cs = this.cs;
      if (this.asmFill === 0 && chunk.length - off >= cs) {
        await this.cluster(this.pos, chunk.subarray(off, off + cs));
        this.pos += cs;
        off += cs;
        continue;
      }
      const n = Math.min(cs - this.asmFill, chunk.length - off);
      chunk.copy(this.asm, this.asmFill, off, off + n);
      this.asmFill += n;
      off += n;
      if (this.asmFill === cs) {
        await this.cluster(this.pos, this.asm);
        this.pos += cs;
        this.asmFill = 0;
      }
    }
  }

  private startClusters(first24: Buffer): void {
    if (first24.readUInt32BE(0) !== 0x514649fb) throw new CorruptImageError('not a qcow2 image (bad magic)');
    const bits = first24.readUInt32BE(20);
    if (bits < 9 || bits > 21) throw new CorruptImageError(`qcow2 cluster_bits ${bits} is out of range`);
    this.cs = 1 << bits;
    this.asm = Buffer.allocUnsafe(this.cs);
    first24.copy(this.asm, 0);
    this.asmFill = 24;
  }

  private parseHeader(h: Buffer): void {
    this.version = h.readUInt32BE(4);
    if (this.version !== 2 && this.version !== 3) {
      throw new UnsupportedImageError(`qcow2 version ${this.version} is not supported (2 and 3 are)`);
    }
    if (h.readBigUInt64BE(8) !== 0n) {
      throw new UnsupportedImageError(
        'qcow2 image has a backing file; flatten it first (qemu-img convert -O qcow2 in.qcow2 out.qcow2)',
      );
    }
    this.size = Number(h.readBigUInt64BE(24));
    if (h.readUInt32BE(32) !== 0)
      throw new UnsupportedImageError('qcow2 image is encrypted; encrypted images are not supported');
    this.l1Size = h.readUInt32BE(36);
    const l1Offset = Number(h.readBigUInt64BE(40));
    const rtOffset = Number(h.readBigUInt64BE(48));
    const rtClusters = h.readUInt32BE(56);
    if (h.readUInt32BE(60) !== 0) {
      throw new UnsupportedImageError(
        'qcow2 image has internal snapshots; convert it to a plain image first (qemu-img convert)',
      );
    }
    if (this.version === 3) {
      const incompat = h.readBigUInt64BE(72);
      if (incompat & 1n)
        throw new UnsupportedImageError('qcow2 image is marked dirty; run `qemu-img check -r all` on it');
      if (incompat & 2n) throw new UnsupportedImageError('qcow2 image is marked corrupt');
      if (incompat & 4n)
        throw new UnsupportedImageError('qcow2 image uses an external data file; not supported');
      if (incompat & 16n)
        throw new UnsupportedImageError('qcow2 image uses extended L2 entries (subclusters); not supported');
      if (incompat & ~KNOWN_INCOMPAT)
        throw new UnsupportedImageError(
          `qcow2 image has unknown incompatible features 0x${incompat.toString(16)}`,
        );
    }
    if (this.size > this.opts.deviceBytes) {
      throw new DeviceTooSmallError(this.opts.device ?? 'the target disk', this.size, this.opts.deviceBytes);
    }
    const cs = this.cs;
    if (l1Offset % cs !== 0 || rtOffset % cs !== 0)
      throw new CorruptImageError('qcow2 table offsets are not cluster-aligned');
    const l1Clusters = Math.ceil((this.l1Size * 8) / cs);
    for (let i = 0; i < l1Clusters; i++) this.expectMeta(l1Offset + i * cs, { kind: 'l1', index: i });
    for (let i = 0; i < rtClusters; i++) this.meta.set(rtOffset + i * cs, { kind: 'refcount-table' });
    this.written = new Uint8Array(Math.ceil(Math.ceil(this.size / cs) / 8));
    this.opts.onHeader?.(this.size);
  }

  /** Register a table cluster we must see before the stream can end. */
  private expectMeta(hostOffset: number, m: Meta): void {
    if (hostOffset < this.pos) {
      const held = this.pending.get(hostOffset);
      if (!held)
        throw new UnsupportedImageError(
          `qcow2 table at host offset ${hostOffset} appears before its parent table, and was not kept`,
        );
    }
    if (this.meta.has(hostOffset) || this.map.has(hostOffset)) {
      throw new CorruptImageError(`qcow2 host cluster ${hostOffset} is referenced twice`);
    }
    this.meta.set(hostOffset, m);
    this.metaPending++;
  }

  private async cluster(host: number, buf: Buffer): Promise<void> {
    if (host === 0) {
      this.parseHeader(buf);
      return;
    }
    const m = this.meta.get(host);
    if (m) {
      this.meta.delete(host);
      await this.table(m, buf);
      return;
    }
    const guest = this.map.get(host);
    if (guest !== undefined) {
      this.map.delete(host);
      await this.data(guest, buf);
      return;
    }
    // Unknown so far. Once every L2 table has been read, nothing can map it: skip (refcount
    // blocks, leaked clusters). Before that it may be data whose L2 table comes later.
    if (this.metaPending === 0) return;
    const limit = this.opts.maxPendingBytes ?? 32 * 1024 * 1024;
    if (this.pendingBytes + buf.length > limit) {
      throw new UnsupportedImageError(
        `qcow2 data at host offset ${host} arrives before the table that maps it, beyond the ${limit >> 20} MiB that can be held; ` +
          'rewrite the image with `qemu-img convert -O qcow2` (tables first) or serve it raw',
      );
    }
    this.pending.set(host, Buffer.from(buf));
    this.pendingBytes += buf.length;
  }

  private async table(m: Meta, buf: Buffer): Promise<void> {
    const per = this.cs / 8;
    if (m.kind === 'l1' || m.kind === 'l2') this.metaPending--;
    if (m.kind === 'l1') {
      for (let e = 0; e < per; e++) {
        const idx = m.index * per + e;
        if (idx >= this.l1Size) break;
        const off = Number(buf.readBigUInt64BE(e * 8) & OFFSET_MASK);
        if (off === 0) continue;
        if (off % this.cs !== 0)
          throw new CorruptImageError(`qcow2 L2 table offset ${off} is not cluster-aligned`);
        this.expectMeta(off, { kind: 'l2', l1: idx });
      }
    } else if (m.kind === 'l2') {
      for (let j = 0; j < per; j++) {
        const guest = (m.l1 * per + j) * this.cs;
        if (guest >= this.size) break;
        const v = buf.readBigUInt64BE(j * 8);
        if (v & COMPRESSED) {
          throw new UnsupportedImageError(
            'qcow2 image has compressed clusters; convert without -c (qemu-img convert -O qcow2) or use a gzip/xz/zstd-compressed raw image',
          );
        }
        const off = Number(v & OFFSET_MASK);
        if (off === 0 || (this.version === 3 && (v & 1n) === 1n)) continue; // unallocated or zero: zeroed at the end
        if (off % this.cs !== 0)
          throw new CorruptImageError(`qcow2 data cluster offset ${off} is not cluster-aligned`);
        if (off < this.pos && !this.pending.has(off)) {
          throw new CorruptImageError(
            `qcow2 data cluster at host offset ${off} was passed before its L2 table and not kept`,
          );
        }
        if (this.map.has(off) || this.meta.has(off))
          throw new CorruptImageError(`qcow2 host cluster ${off} is referenced twice`);
        this.map.set(off, guest);
      }
    } else if (m.kind === 'refcount-table') {
      for (let e = 0; e < per; e++) {
        const off = Number(buf.readBigUInt64BE(e * 8) & OFFSET_MASK);
        if (off === 0) continue;
        if (off > this.pos && !this.meta.has(off)) this.meta.set(off, { kind: 'skip' });
        const held = this.pending.get(off);
        if (held) {
          this.pending.delete(off);
          this.pendingBytes -= held.length;
        }
      }
    }
    await this.resolvePending();
  }

  private async resolvePending(): Promise<void> {
    let changed = true;
    while (changed && this.pending.size > 0) {
      changed = false;
      for (const [host, buf] of this.pending) {
        if (this.map.has(host) || this.meta.has(host)) {
          this.pending.delete(host);
          this.pendingBytes -= buf.length;
          await this.cluster(host, buf);
          changed = true;
        }
      }
    }
  }

  private async data(guest: number, buf: Buffer): Promise<void> {
    const len = Math.min(buf.length, this.size - guest);
    await this.sink.writeAt(guest, len === buf.length ? buf : buf.subarray(0, len));
    const c = guest / this.cs;
    this.written[c >> 3]! |= 1 << (c & 7);
    this.dataBytes += len;
  }

  async end(): Promise<Qcow2Result> {
    if (!this.asm || this.pos === 0) throw new UnsupportedImageError('qcow2 image ends inside its header');
    if (this.metaPending > 0) {
      throw new UnsupportedImageError(
        `qcow2 image is truncated: ${this.metaPending} table cluster(s) never arrived`,
      );
    }
    if (this.map.size > 0) {
      throw new UnsupportedImageError(
        `qcow2 image is truncated: ${this.map.size} data cluster(s) never arrived`,
      );
    }
    const zeroRanges: Array<[number, number]> = [];
    const clusters = Math.ceil(this.size / this.cs);
    let runStart = -1;
    for (let c = 0; c <= clusters; c++) {
      const isWritten = c < clusters && ((this.written[c >> 3] ?? 0) & (1 << (c & 7))) !== 0;
      if (c < clusters && !isWritten) {
        if (runStart < 0) runStart = c;
      } else if (runStart >= 0) {
        const start = runStart * this.cs;
        zeroRanges.push([start, Math.min(c * this.cs, this.size) - start]);
        runStart = -1;
      }
    }
    return { virtualSize: this.size, dataBytes: this.dataBytes, zeroRanges };
  }
}
