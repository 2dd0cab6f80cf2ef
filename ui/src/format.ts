// Pure helpers: what the list shows and how it filters and searches. No DOM here.
import type { Node, Progress } from './types.ts';

/** States in which a node's ramdisk may report progress (deploying, cleaning and their waits). */
export const WORKING_STATES = ['deploying', 'wait call-back', 'cleaning', 'clean wait', 'deleting'];

export function label(n: Pick<Node, 'name' | 'uuid'>): string {
  return n.name ?? n.uuid;
}

export function bytes(n: number | null | undefined): string {
  if (n == null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** 0–100 when the ramdisk said how far it is, null when it only said what it does. */
export function percent(p: Progress | null | undefined): number | null {
  if (!p) return null;
  if (p.bytes_total && p.bytes_done != null)
    return Math.min(100, Math.round((100 * p.bytes_done) / p.bytes_total));
  if (p.steps && p.step != null) return Math.min(100, Math.round((100 * p.step) / p.steps));
  return null;
}

/** One line for screen readers and the bar's caption. */
export function progressText(p: Progress): string {
  const pct = percent(p);
  const parts = [p.phase ?? p.command_name ?? 'working'];
  if (pct != null) parts.push(`${pct}%`);
  if (p.bytes_total) parts.push(`${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}`);
  if (p.rate_bps) parts.push(`${bytes(p.rate_bps)}/s`);
  if (p.eta_s != null) parts.push(`about ${Math.max(0, Math.round(p.eta_s))} s left`);
  if (p.message) parts.push(p.message);
  return parts.join(' · ');
}

export function serialOf(n: Node): string | null {
  const sv = (n.inventory?.system_vendor ?? null) as { serial_number?: unknown } | null;
  return typeof sv?.serial_number === 'string' && sv.serial_number ? sv.serial_number : null;
}

/** The BMC address a discovered node's inventory reported (used only once an operator approves it). */
export function reportedBmc(n: Node): string | null {
  const inv = n.inventory as { bmc_address?: unknown; bmc_v6address?: unknown } | null;
  const ip = inv?.bmc_address || inv?.bmc_v6address;
  if (typeof ip !== 'string' || ['0.0.0.0', '::', '::/0'].includes(ip)) return null;
  return ip;
}

/** A machine that enrolled itself on first boot and waits for an operator to approve its BMC. */
export function isDiscovered(n: Node): boolean {
  return n.provision_state === 'enroll' && n.driver === 'none';
}

export interface Filters {
  state: string;
  maintenance: '' | 'true' | 'false';
  driver: string;
  search: string;
}

export const NO_FILTERS: Filters = { state: '', maintenance: '', driver: '', search: '' };

/** MACs in any spelling (52-54-00-…, 5254.00…, upper case) compare as bare lower-case hex. */
function macKey(s: string): string {
  return s.toLowerCase().replace(/[^0-9a-f]/g, '');
}

export function matches(n: Node, macs: readonly string[], f: Filters): boolean {
  if (f.state && n.provision_state !== f.state) return false;
  if (f.maintenance && String(n.maintenance) !== f.maintenance) return false;
  if (f.driver && n.driver !== f.driver) return false;
  const q = f.search.trim().toLowerCase();
  if (!q) return true;
  if ((n.name ?? '').toLowerCase().includes(q) || n.uuid.includes(q)) return true;
  if (serialOf(n)?.toLowerCase().includes(q)) return true;
  const qm = macKey(q);
  return qm.length >= 2 && /^[0-9a-f:.-]+$/.test(q) && macs.some((m) => macKey(m).includes(qm));
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
