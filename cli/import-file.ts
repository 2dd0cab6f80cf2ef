// Bulk enrollment files: the classic hardware_info format (one node per line:
// `BMC-IP MAC USER PASSWORD`, as devstack's IRONIC_HWINFO_FILE) or a YAML/JSON list of nodes.
// Every bad entry is reported with its line (or index) and the good ones are still imported.
import { parse as parseYaml } from 'yaml';
import { normaliseMac } from '../shared/mac.ts';
import { NodeCreate } from '../shared/wire/api.ts';

export interface ImportEntry {
  /** 1-based line number (hardware_info) or list index + 1 (YAML/JSON). */
  line: number;
  node: NodeCreate;
}

export interface ImportProblem {
  line: number;
  message: string;
}

export interface ParsedImport {
  format: 'hardware_info' | 'yaml' | 'json';
  entries: ImportEntry[];
  problems: ImportProblem[];
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

function parseHardwareInfo(text: string): ParsedImport {
  const out: ParsedImport = { format: 'hardware_info', entries: [], problems: [] };
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const s = raw.trim();
    if (!s || s.startsWith('#')) return;
    const f = s.split(/\s+/);
    if (f.length !== 4) {
      out.problems.push({ line, message: `expected 4 fields "BMC-IP MAC USER PASSWORD", found ${f.length}` });
      return;
    }
    const [ip, mac, user, password] = f as [string, string, string, string];
    const host = ip.includes(':') && !ip.startsWith('[') ? `[${ip}]` : ip;
    if (!IPV4.test(ip) && !/^[A-Za-z0-9.-]+$/.test(ip) && !ip.includes(':')) {
      out.problems.push({ line, message: `"${ip}" is not an IP address or host name` });
      return;
    }
    if (normaliseMac(mac) === null) {
      out.problems.push({ line, message: `"${mac}" is not a MAC address` });
      return;
    }
    validate(out, line, {
      bmc_address: `ipmi://${encodeURIComponent(user)}@${host}`,
      bmc_password: password,
      ports: [mac],
    });
  });
  return out;
}

function validate(out: ParsedImport, line: number, candidate: unknown): void {
  const r = NodeCreate.safeParse(candidate);
  if (r.success) out.entries.push({ line, node: r.data });
  else
    out.problems.push({
      line,
      message: r.error.issues.map((i) => `${i.path.join('.') || 'entry'}: ${i.message}`).join('; '),
    });
}

export function parseImportFile(text: string, fileName = ''): ParsedImport {
  const trimmed = text.trimStart();
  const looksStructured =
    /\.(ya?ml|json)$/i.test(fileName) ||
    trimmed.startsWith('[') ||
    trimmed.startsWith('-') ||
    trimmed.startsWith('{') ||
    trimmed.startsWith('nodes:');
  if (!looksStructured) return parseHardwareInfo(text);
  const format =
    /\.json$/i.test(fileName) || trimmed.startsWith('[') || trimmed.startsWith('{') ? 'json' : 'yaml';
  const out: ParsedImport = { format, entries: [], problems: [] };
  let doc: unknown;
  try {
    doc = format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    out.problems.push({ line: 0, message: `not valid ${format.toUpperCase()}: ${(e as Error).message}` });
    return out;
  }
  const list = Array.isArray(doc) ? doc : (doc as { nodes?: unknown })?.nodes;
  if (!Array.isArray(list)) {
    out.problems.push({ line: 0, message: 'expected a list of nodes (or a mapping with a "nodes" list)' });
    return out;
  }
  for (const [i, item] of list.entries()) validate(out, i + 1, item);
  return out;
}
