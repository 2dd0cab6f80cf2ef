// What `kiln node watch` and `--wait` show while a node works: on a terminal one line rewritten
// in place (state, phase, bar, bytes, rate, ETA, step N of M); piped, one line per change, so a
// log keeps the whole story.
import { bytes, duration } from './output.ts';

/** The agent's progress as the API and the stream carry it; any field may be missing. */
export interface Progress {
  phase?: string;
  bytes_done?: number;
  bytes_total?: number;
  rate_bps?: number;
  eta_s?: number | null;
  step?: number;
  steps?: number;
  message?: string;
}

export interface NodeStatus {
  name: string;
  provision_state: string;
  target_provision_state: string | null;
  progress: Progress | null;
}

const BAR = 20;

function bar(done: number, total: number): string {
  const full = Math.max(0, Math.min(BAR, Math.round((BAR * done) / total)));
  return `[${'#'.repeat(full)}${'-'.repeat(BAR - full)}]`;
}

/** The agent's progress in words: `write_image [####----] 40%  1.0 GiB of 2.5 GiB  …`. */
export function progressText(p: Progress, withBar: boolean): string {
  const parts: string[] = [];
  if (p.phase) parts.push(p.phase);
  if (p.bytes_done !== undefined) {
    if (p.bytes_total) {
      const pct = `${Math.floor((100 * p.bytes_done) / p.bytes_total)}%`;
      parts.push(withBar ? `${bar(p.bytes_done, p.bytes_total)} ${pct}` : pct);
      parts.push(`${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}`);
    } else parts.push(bytes(p.bytes_done));
  }
  if (p.rate_bps) parts.push(`${bytes(p.rate_bps)}/s`);
  if (p.eta_s !== undefined && p.eta_s !== null) parts.push(`ETA ${duration(p.eta_s)}`);
  if (p.step !== undefined) parts.push(`step ${p.step}${p.steps ? ` of ${p.steps}` : ''}`);
  if (p.message) parts.push(p.message);
  return parts.join('  ');
}

/** The status as one line: `deploying → active  write_image [####----] 40%  …`. */
export function statusLine(s: NodeStatus, withBar: boolean): string {
  const state = `${s.provision_state}${s.target_provision_state ? ` → ${s.target_provision_state}` : ''}`;
  const p = s.progress ? progressText(s.progress, withBar) : '';
  return p ? `${state}  ${p}` : state;
}

/** Where the status lines go: a terminal (rewritten in place) or a pipe or file (appended). */
export class ProgressView {
  private last = '';
  /** The terminal line as drawn, to redraw it under a note. */
  private drawn = '';

  constructor(
    private readonly out: { write(s: string): unknown; isTTY?: boolean; columns?: number } = process.stderr,
    private readonly tty = Boolean(out.isTTY),
    private readonly now = () => new Date(),
  ) {}

  show(s: NodeStatus): void {
    const line = statusLine(s, this.tty);
    if (line === this.last) return;
    this.last = line;
    if (this.tty) {
      const width = (this.out.columns || 80) - 1;
      const text = `${s.name}  ${line}`;
      this.drawn = text.length > width ? `${text.slice(0, width - 1)}…` : text;
      this.out.write(`\r${this.drawn}\x1b[K`);
    } else {
      this.out.write(`${this.now().toISOString().slice(11, 19)}  ${s.name}  ${line}\n`);
    }
  }

  /** A line of its own (a dropped connection, a fallback), above the status line on a terminal. */
  note(message: string): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.out.write(`note: ${message}\n`);
    // The status line again, below the note.
    if (this.drawn) this.out.write(`${this.drawn}\x1b[K`);
  }

  /** Leave the terminal's cursor on a fresh line. */
  end(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = '';
  }
}
