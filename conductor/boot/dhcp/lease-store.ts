// Where full-mode leases live between restarts. The pool keeps its own in-memory index and calls
// the store synchronously on every change, so a store must be cheap per call: the file store
// appends one JSON line per change (like Kea's memfile) and compacts on open and when the log
// has grown well past the live set.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';

export interface Lease {
  ip: string;
  /** Hardware address, lower-case colon form. */
  mac: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  hostname?: string;
}

export interface LeaseStore {
  /** Every stored lease, expired ones included (the pool decides what is live). */
  load(): Lease[];
  upsert(lease: Lease): void;
  remove(ip: string): void;
  close(): void;
}

export class MemoryLeaseStore implements LeaseStore {
  private readonly byIp = new Map<string, Lease>();
  load(): Lease[] {
    return [...this.byIp.values()];
  }
  upsert(lease: Lease): void {
    this.byIp.set(lease.ip, { ...lease });
  }
  remove(ip: string): void {
    this.byIp.delete(ip);
  }
  close(): void {}
}

type LeaseLogEntry = { op: 'put'; lease: Lease } | { op: 'del'; ip: string };

export interface FileLeaseStoreOptions {
  /** fsync after every change. Off by default: a lost lease after a crash costs a client one re-DORA. */
  fsync?: boolean;
}

export class FileLeaseStore implements LeaseStore {
  private fd: number | null = null;
  private readonly live = new Map<string, Lease>();
  private appended = 0;

  constructor(
    readonly path: string,
    private readonly opts: FileLeaseStoreOptions = {},
  ) {}

  load(): Lease[] {
    this.live.clear();
    if (existsSync(this.path)) {
      const text = readFileSync(this.path, 'utf8');
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        let rec: LeaseLogEntry;
        try {
          rec = JSON.parse(line) as LeaseLogEntry;
        } catch {
          continue; // a torn last line after a crash; everything before it is intact
        }
        if (rec.op === 'put' && rec.lease && typeof rec.lease.ip === 'string')
          this.live.set(rec.lease.ip, rec.lease);
        else if (rec.op === 'del' && typeof rec.ip === 'string') this.live.delete(rec.ip);
      }
    }
    this.compact();
    return [...this.live.values()];
  }

  upsert(lease: Lease): void {
    this.live.set(lease.ip, lease);
    this.append({ op: 'put', lease });
  }

  remove(ip: string): void {
    if (!this.live.delete(ip)) return;
    this.append({ op: 'del', ip });
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private append(rec: LeaseLogEntry): void {
    if (this.fd === null) this.compact();
    writeSync(this.fd!, `${JSON.stringify(rec)}\n`);
    if (this.opts.fsync) fsyncSync(this.fd!);
    if (++this.appended > 4 * this.live.size + 10_000) this.compact();
  }

  /** Rewrites the file with only the live leases (write to a temp file, then rename over). */
  private compact(): void {
    if (this.fd !== null) closeSync(this.fd);
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o640);
    let chunk = '';
    for (const lease of this.live.values()) {
      chunk += `${JSON.stringify({ op: 'put', lease })}\n`;
      if (chunk.length > 1 << 16) {
        writeSync(fd, chunk);
        chunk = '';
      }
    }
    if (chunk) writeSync(fd, chunk);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.path);
    this.fd = openSync(this.path, 'a', 0o640);
    this.appended = 0;
  }
}
