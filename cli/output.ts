// Output for people (tables that fit the terminal, key/value blocks with human units) and for
// scripts (json, yaml, value, csv: raw values, never truncated), as OpenStack's client does it:
// -f FORMAT, -c COLUMN (repeatable), --long, --sort KEY[:asc|desc].
import { type Command, Option } from 'commander';
import { stringify as toYaml } from 'yaml';
import { CliError, EXIT } from './client.ts';

export const FORMATS = ['table', 'json', 'yaml', 'value', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

/** What a list or show command was asked for. */
export interface OutputOpts {
  format: Format;
  columns?: string[];
  long?: boolean;
  sort?: string;
  /** Terminal width to fit tables into; undefined = never truncate (piped output). */
  width?: number;
}

/** The options every list and show command takes; `list` adds --long and --sort. */
export function addOutputOptions(cmd: Command, kind: 'list' | 'show'): Command {
  cmd
    .addOption(new Option('-f, --format <format>', 'output format').choices(FORMATS))
    .option(
      '-c, --column <name>',
      'show only this column (repeat for more)',
      (v: string, prev: string[] = []) => [...prev, v],
    );
  if (kind === 'list')
    cmd
      .option('--long', 'more columns')
      .option('--sort <key[:asc|desc]>', 'sort by these columns (comma-separated), ascending by default');
  return cmd;
}

/**
 * The output options of one command: its -f, else the global --json, else a table. Tables fit
 * the terminal only when stdout is one; piped output stays whole for grep and cut.
 */
export function outputOpts(
  o: { format?: Format; column?: string[]; long?: boolean; sort?: string },
  globalJson: boolean,
): OutputOpts {
  return {
    format: o.format ?? (globalJson ? 'json' : 'table'),
    columns: o.column,
    long: o.long,
    sort: o.sort,
    width: process.stdout.isTTY ? process.stdout.columns || 80 : undefined,
  };
}

export function cell(v: unknown): string {
  return v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** Cut `s` to `w` characters, the last one an ellipsis when something was cut. */
function cut(s: string, w: number): string {
  return s.length <= w ? s : w <= 1 ? '…'.slice(0, w) : `${s.slice(0, w - 1)}…`;
}

/**
 * Column widths that fit `width`: the widest column gives up a character at a time (never below
 * its header or 8, whichever is smaller) until the line fits or nothing can shrink further.
 */
export function fitWidths(widths: number[], width: number | undefined, mins: number[], gap = 2): number[] {
  const w = [...widths];
  if (width === undefined) return w;
  const total = () => w.reduce((a, b) => a + b, 0) + gap * (w.length - 1);
  while (total() > width) {
    let widest = -1;
    for (let i = 0; i < w.length; i++) if (w[i]! > mins[i]! && (widest < 0 || w[i]! > w[widest]!)) widest = i;
    if (widest < 0) break;
    w[widest]!--;
  }
  return w;
}

export function table(rows: Record<string, unknown>[], columns: string[], width?: number): string {
  if (rows.length === 0) return '(none)';
  const head = columns.map((c) => c.toUpperCase());
  const body = rows.map((r) => columns.map((c) => cell(r[c]).replace(/\s*\n\s*/g, ' ')));
  const natural = columns.map((_, i) => Math.max(head[i]!.length, ...body.map((b) => b[i]!.length)));
  const w = fitWidths(
    natural,
    width,
    head.map((h) => Math.min(Math.max(h.length, 3), 8)),
  );
  const line = (vals: string[]) =>
    vals
      .map((v, i) => cut(v, w[i]!).padEnd(w[i]!))
      .join('  ')
      .trimEnd();
  return [line(head), ...body.map(line)].join('\n');
}

/** `key  value` lines; a multi-line value continues indented under its first line. */
export function keyValues(obj: Record<string, unknown>, width?: number): string {
  const keys = Object.keys(obj);
  if (keys.length === 0) return '';
  const kw = Math.max(...keys.map((k) => k.length));
  const vw = width === undefined ? undefined : Math.max(width - kw - 2, 10);
  return keys
    .map((k) => {
      const lines = cell(obj[k]).split('\n');
      return lines
        .map((l, i) => `${(i === 0 ? k : '').padEnd(kw)}  ${vw === undefined ? l : cut(l, vw)}`.trimEnd())
        .join('\n');
    })
    .join('\n');
}

function csvField(v: unknown): string {
  return `"${cell(v).replace(/"/g, '""')}"`;
}

/** Parse --sort "a,b:desc" into keys and directions; each key must be a known column. */
export function parseSort(spec: string, known: Set<string>): { key: string; desc: boolean }[] {
  return spec.split(',').map((part) => {
    const [key = '', dir = 'asc', extra] = part.trim().split(':');
    if (extra !== undefined || (dir !== 'asc' && dir !== 'desc'))
      throw new CliError(`--sort expects KEY[:asc|desc], got "${part}"`, EXIT.usage);
    if (!known.has(key))
      throw new CliError(`--sort: no column "${key}"; columns are ${[...known].join(', ')}`, EXIT.usage);
    return { key, desc: dir === 'desc' };
  });
}

function compare(a: unknown, b: unknown): number {
  // Empty values last whichever way the sort goes would surprise; they sort as the smallest.
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return cell(a).localeCompare(cell(b), undefined, { numeric: true });
}

export function sortRows<T extends Record<string, unknown>>(
  rows: T[],
  keys: { key: string; desc: boolean }[],
): T[] {
  return [...rows].sort((x, y) => {
    for (const { key, desc } of keys) {
      const c = compare(x[key], y[key]);
      if (c !== 0) return desc ? -c : c;
    }
    return 0;
  });
}

function checkColumns(asked: string[], known: Set<string>): void {
  const bad = asked.filter((c) => !known.has(c));
  if (bad.length)
    throw new CliError(
      `no column ${bad.map((b) => `"${b}"`).join(', ')}; columns are ${[...known].join(', ')}`,
      EXIT.usage,
    );
}

function pick<T extends Record<string, unknown>>(obj: T, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, obj[k]]));
}

/** The columns a list shows by default and with --long. */
export interface ListSpec {
  /** The JSON member the rows go under in json and yaml (`nodes`), as the API answers. */
  key: string;
  columns: string[];
  long?: string[];
}

/**
 * A list in the asked format. json and yaml keep the API's shape (`{nodes: […]}`) and its raw
 * values; -c narrows every format to those fields, --sort orders every format.
 */
export function renderList(rows: Record<string, unknown>[], spec: ListSpec, o: OutputOpts): string {
  const known = new Set([...spec.columns, ...(spec.long ?? []), ...rows.flatMap((r) => Object.keys(r))]);
  if (o.columns) checkColumns(o.columns, known);
  const sorted = o.sort ? sortRows(rows, parseSort(o.sort, known)) : rows;
  const columns = o.columns ?? (o.long && spec.long ? spec.long : spec.columns);
  switch (o.format) {
    case 'json':
    case 'yaml': {
      const out = { [spec.key]: o.columns ? sorted.map((r) => pick(r, columns)) : sorted };
      return serialise(out, o.format);
    }
    case 'value':
      return sorted.map((r) => columns.map((c) => cell(r[c])).join(' ')).join('\n');
    case 'csv':
      return [columns, ...sorted.map((r) => columns.map((c) => r[c]))]
        .map((line) => line.map(csvField).join(','))
        .join('\n');
    default:
      return table(sorted, columns, o.width);
  }
}

/**
 * One object in the asked format. `human` gives the table view its display values (units,
 * summaries); json, yaml, value and csv always carry the raw values.
 */
export function renderShow(
  obj: Record<string, unknown>,
  o: OutputOpts,
  human?: (obj: Record<string, unknown>) => Record<string, unknown>,
): string {
  const known = new Set(Object.keys(obj));
  if (o.columns) checkColumns(o.columns, known);
  const chosen = o.columns ? pick(obj, o.columns) : obj;
  switch (o.format) {
    case 'json':
    case 'yaml':
      return serialise(chosen, o.format);
    case 'value':
      return Object.values(chosen).map(cell).join('\n');
    case 'csv':
      return [Object.keys(chosen), Object.values(chosen)]
        .map((line) => line.map(csvField).join(','))
        .join('\n');
    default: {
      const shown = human ? human(obj) : obj;
      return keyValues(o.columns ? pick(shown, o.columns) : shown, o.width);
    }
  }
}

export function serialise(data: unknown, format: 'json' | 'yaml'): string {
  return format === 'yaml' ? toYaml(data).trimEnd() : JSON.stringify(data, null, 2);
}

/** Print an action's answer: as JSON or YAML when asked, else the one-line human summary. */
export function print(data: unknown, asJson: boolean | Format, human: () => string): void {
  const f = asJson === true ? 'json' : asJson === false ? 'table' : asJson;
  process.stdout.write(`${f === 'json' || f === 'yaml' ? serialise(data, f) : human()}\n`);
}

// ---- human units ---------------------------------------------------------------------------

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1073741824 → "1.0 GiB"; below 1 KiB in bytes. */
export function bytes(n: number): string {
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** 200 → "3m 20s", 3700 → "1h 1m", 45 → "45s". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
