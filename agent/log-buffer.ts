// The agent's log goes to stdout (the ramdisk's console/journal) and into a bounded in-memory
// buffer, so log.collect_system_logs can hand it to the conductor without a writable disk.
import { Writable } from 'node:stream';

export class LogBuffer extends Writable {
  private chunks: string[] = [];
  private size = 0;

  constructor(
    private readonly echo: NodeJS.WritableStream | null,
    private readonly maxBytes = 4 * 1024 * 1024,
  ) {
    super();
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const s = chunk.toString();
    this.echo?.write(s);
    this.chunks.push(s);
    this.size += s.length;
    while (this.size > this.maxBytes && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
    cb();
  }

  text(): string {
    return this.chunks.join('');
  }
}
