// The agent's settings, read the way IPA reads them: `key=value` tokens of /proc/cmdline, named
// like IPA's kernel parameters (ipa-api-url, ipa-lookup-timeout, BOOTIF, ...), so a conductor that
// boots IPA today boots this agent with the same command line. For development, KILN_AGENT_* env
// variables and command-line flags override the kernel parameters (flags win).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseBootif } from '../shared/mac.ts';

export type PowerAction = 'poweroff' | 'exit' | 'none';

export interface AgentSettings {
  /** Ironic/Kiln API base URL without /v1; null = no lookup (IPA's mDNS is not supported). */
  apiUrl: string | null;
  inspectionCallbackUrl: string | null;
  listenHost: string;
  listenPort: number;
  /** Address put into callback_url; null = detect with `ip route get <api host>`. */
  advertiseHost: string | null;
  /** Port put into callback_url; 0 = the port the API listens on (9999 by default, as IPA). */
  advertisePort: number;
  advertiseProtocol: 'http' | 'https';
  ipLookupAttempts: number;
  ipLookupTimeoutS: number;
  lookupTimeoutS: number;
  lookupIntervalS: number;
  insecure: boolean;
  globalRequestId: string | null;
  debug: boolean;
  collectLldp: boolean;
  lldpTimeoutS: number;
  /** Skip `GET /` discovery and use this microversion. */
  ironicApiVersion: string | null;
  /**
   * Pregenerated token: ipa-agent-token (virtual-media boots), KILN_AGENT_TOKEN, or the file
   * --agent-token-file names (read by loadAgentTokenFile). Never from argv, where every local
   * user can read it in ps.
   */
  agentToken: string | null;
  /** A file holding the agent token (standalone mode); its first line is the token. */
  agentTokenFile: string | null;
  /**
   * IPA's auto-TLS (ipa-enable-auto-tls): when the conductor's API speaks agent_verify_ca (1.68),
   * serve the command API over HTTPS with a per-boot self-signed certificate sent in heartbeats.
   */
  autoTls: boolean;
  agentTokenRequired: boolean;
  hardwareInitializationDelayS: number;
  /** BOOTIF as given (pxelinux "01-aa-bb-.." or iPXE "aa:bb:.."), for inventory.boot.pxe_interface. */
  bootif: string | null;
  /** BOOTIF normalised to aa:bb:cc:dd:ee:ff. */
  bootifMac: string | null;
  // ---- development / test only (not kernel parameters) ----
  /** Replaces the MAC list sent on lookup (several agents on one machine). */
  macs: string[];
  /** What standby.power_off does after syncing: power the machine off, exit the process, or nothing. */
  /**
   * What standby.power_off does. null: poweroff in the Kiln ramdisk, exit elsewhere, so a
   * developer's `kiln agent` never shuts down the workstation it runs on.
   */
  powerAction: PowerAction | null;
  /**
   * The only block devices destructive steps (erase, write_image) may write. Outside the Kiln
   * ramdisk nothing else is ever written; in the ramdisk, empty means every disk a step selects.
   */
  allowDevices: string[];
  /** Register the kiln_test.* commands (protocol tests). */
  testCommands: boolean;
  /**
   * A file holding the agent's output across restarts (the ramdisk's init tees it there);
   * log.collect_system_logs sends it instead of the in-memory log of this process only.
   */
  logFile: string | null;
}

export const DEFAULTS: AgentSettings = {
  apiUrl: null,
  inspectionCallbackUrl: null,
  listenHost: '::',
  listenPort: 9999,
  advertiseHost: null,
  advertisePort: 0,
  advertiseProtocol: 'http',
  ipLookupAttempts: 6,
  ipLookupTimeoutS: 10,
  lookupTimeoutS: 300,
  lookupIntervalS: 1,
  insecure: false,
  globalRequestId: null,
  debug: false,
  collectLldp: false,
  lldpTimeoutS: 30,
  ironicApiVersion: null,
  agentToken: null,
  agentTokenFile: null,
  autoTls: true,
  agentTokenRequired: false,
  hardwareInitializationDelayS: 0,
  bootif: null,
  bootifMac: null,
  macs: [],
  powerAction: null,
  allowDevices: [],
  testCommands: false,
  logFile: null,
};

/** `key=value` tokens of a kernel command line; bare tokens are dropped, the last duplicate wins. */
export function parseCmdline(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const token of text.trim().split(/\s+/)) {
    const eq = token.indexOf('=');
    if (eq <= 0) continue;
    let value = token.slice(eq + 1);
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out[token.slice(0, eq)] = value;
  }
  return out;
}

/** BOOTIF in pxelinux ("01-aa-bb-cc-dd-ee-ff", hardware type prefix) or iPXE ("aa:bb:...") form. */
export const normaliseBootif: (raw: string) => string | null = parseBootif;

function bool(v: string): boolean {
  return ['1', 'true', 'yes', 'on', 'y', 't'].includes(v.trim().toLowerCase());
}

function num(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${what}=${v} is not a non-negative number`);
  return n;
}

/** Map of setting → [kernel parameter, env variable, flag]. */
const SOURCES: { key: keyof AgentSettings; param?: string; env: string; flag: string; argv?: false }[] = [
  { key: 'apiUrl', param: 'ipa-api-url', env: 'KILN_AGENT_API_URL', flag: 'api-url' },
  {
    key: 'inspectionCallbackUrl',
    param: 'ipa-inspection-callback-url',
    env: 'KILN_AGENT_INSPECTION_CALLBACK_URL',
    flag: 'inspection-callback-url',
  },
  { key: 'listenHost', param: 'ipa-listen-host', env: 'KILN_AGENT_LISTEN_HOST', flag: 'listen-host' },
  { key: 'listenPort', param: 'ipa-listen-port', env: 'KILN_AGENT_LISTEN_PORT', flag: 'listen-port' },
  {
    key: 'advertiseHost',
    param: 'ipa-advertise-host',
    env: 'KILN_AGENT_ADVERTISE_HOST',
    flag: 'advertise-host',
  },
  {
    key: 'advertisePort',
    param: 'ipa-advertise-port',
    env: 'KILN_AGENT_ADVERTISE_PORT',
    flag: 'advertise-port',
  },
  {
    key: 'advertiseProtocol',
    param: 'ipa-advertise-protocol',
    env: 'KILN_AGENT_ADVERTISE_PROTOCOL',
    flag: 'advertise-protocol',
  },
  {
    key: 'ipLookupAttempts',
    param: 'ipa-ip-lookup-attempts',
    env: 'KILN_AGENT_IP_LOOKUP_ATTEMPTS',
    flag: 'ip-lookup-attempts',
  },
  {
    key: 'ipLookupTimeoutS',
    param: 'ipa-ip-lookup-timeout',
    env: 'KILN_AGENT_IP_LOOKUP_TIMEOUT',
    flag: 'ip-lookup-timeout',
  },
  {
    key: 'lookupTimeoutS',
    param: 'ipa-lookup-timeout',
    env: 'KILN_AGENT_LOOKUP_TIMEOUT',
    flag: 'lookup-timeout',
  },
  {
    key: 'lookupIntervalS',
    param: 'ipa-lookup-interval',
    env: 'KILN_AGENT_LOOKUP_INTERVAL',
    flag: 'lookup-interval',
  },
  { key: 'insecure', param: 'ipa-insecure', env: 'KILN_AGENT_INSECURE', flag: 'insecure' },
  {
    key: 'globalRequestId',
    param: 'ipa-global-request-id',
    env: 'KILN_AGENT_GLOBAL_REQUEST_ID',
    flag: 'global-request-id',
  },
  { key: 'debug', param: 'ipa-debug', env: 'KILN_AGENT_DEBUG', flag: 'debug' },
  { key: 'collectLldp', param: 'ipa-collect-lldp', env: 'KILN_AGENT_COLLECT_LLDP', flag: 'collect-lldp' },
  { key: 'lldpTimeoutS', param: 'ipa-lldp-timeout', env: 'KILN_AGENT_LLDP_TIMEOUT', flag: 'lldp-timeout' },
  {
    key: 'ironicApiVersion',
    param: 'ipa-ironic-api-version',
    env: 'KILN_AGENT_IRONIC_API_VERSION',
    flag: 'ironic-api-version',
  },
  // `flag` only for callers that build settings in-process; argv never carries a secret.
  { key: 'agentToken', param: 'ipa-agent-token', env: 'KILN_AGENT_TOKEN', flag: 'agent-token', argv: false },
  { key: 'agentTokenFile', env: 'KILN_AGENT_TOKEN_FILE', flag: 'agent-token-file' },
  { key: 'autoTls', param: 'ipa-enable-auto-tls', env: 'KILN_AGENT_AUTO_TLS', flag: 'auto-tls' },
  {
    key: 'agentTokenRequired',
    param: 'ipa-agent-token-required',
    env: 'KILN_AGENT_TOKEN_REQUIRED',
    flag: 'agent-token-required',
  },
  {
    key: 'hardwareInitializationDelayS',
    param: 'ipa-hardware-initialization-delay',
    env: 'KILN_AGENT_HARDWARE_INITIALIZATION_DELAY',
    flag: 'hardware-initialization-delay',
  },
  { key: 'bootif', param: 'BOOTIF', env: 'KILN_AGENT_BOOTIF', flag: 'bootif' },
  { key: 'macs', env: 'KILN_AGENT_MACS', flag: 'mac' },
  { key: 'powerAction', env: 'KILN_AGENT_POWER_ACTION', flag: 'power-action' },
  { key: 'allowDevices', env: 'KILN_AGENT_ALLOW_DEVICES', flag: 'allow-device' },
  { key: 'testCommands', env: 'KILN_AGENT_TEST_COMMANDS', flag: 'test-commands' },
  { key: 'logFile', env: 'KILN_AGENT_LOG', flag: 'log-file' },
];

const BOOL_KEYS = new Set<keyof AgentSettings>([
  'insecure',
  'debug',
  'collectLldp',
  'agentTokenRequired',
  'testCommands',
  'autoTls',
]);
const NUM_KEYS = new Set<keyof AgentSettings>([
  'listenPort',
  'advertisePort',
  'ipLookupAttempts',
  'ipLookupTimeoutS',
  'lookupTimeoutS',
  'lookupIntervalS',
  'lldpTimeoutS',
  'hardwareInitializationDelayS',
]);

export const FLAG_NAMES = SOURCES.filter((s) => s.argv !== false).map((s) => s.flag);

/** Shorter tokens are refused: the conductor's are 43 characters, IPA ignores ones under 32. */
export const MIN_TOKEN_LENGTH = 32;

function checkToken(token: string, source: string): string {
  if (token.length < MIN_TOKEN_LENGTH)
    throw new Error(
      `${source}: the agent token is ${token.length} characters, fewer than ${MIN_TOKEN_LENGTH}; make one with \`openssl rand -hex 32\``,
    );
  return token;
}

/**
 * settings with the token from --agent-token-file / KILN_AGENT_TOKEN_FILE read in (first line,
 * blanks trimmed); the file wins over KILN_AGENT_TOKEN. Throws naming the file if it is unreadable.
 */
export function loadAgentTokenFile(settings: AgentSettings): AgentSettings {
  if (!settings.agentTokenFile) return settings;
  let text: string;
  try {
    text = readFileSync(settings.agentTokenFile, 'utf8');
  } catch (e) {
    throw new Error(`--agent-token-file ${settings.agentTokenFile}: ${(e as Error).message}`);
  }
  const token = checkToken(text.split('\n')[0]!.trim(), `--agent-token-file ${settings.agentTokenFile}`);
  return { ...settings, agentToken: token };
}

function apply(
  settings: AgentSettings,
  key: keyof AgentSettings,
  raw: string | string[],
  source: string,
): void {
  const s = settings as unknown as Record<string, unknown>;
  const one = Array.isArray(raw) ? raw[raw.length - 1]! : raw;
  if (key === 'macs' || key === 'allowDevices') {
    const list = (Array.isArray(raw) ? raw : [raw]).flatMap((m) => m.split(',')).map((m) => m.trim());
    s[key] = list.filter((m) => m !== '').map((m) => (key === 'macs' ? m.toLowerCase() : m));
    if (key === 'allowDevices') {
      const bad = (s[key] as string[]).filter((d) => !d.startsWith('/dev/'));
      if (bad.length) throw new Error(`${source}=${bad.join(',')}: give block devices as /dev/... paths`);
    }
  } else if (BOOL_KEYS.has(key)) s[key] = bool(one);
  else if (NUM_KEYS.has(key)) s[key] = num(one, source);
  else if (key === 'advertiseProtocol') {
    if (one !== 'http' && one !== 'https') throw new Error(`${source}=${one} must be http or https`);
    s[key] = one;
  } else if (key === 'powerAction') {
    if (!['poweroff', 'exit', 'none'].includes(one))
      throw new Error(`${source}=${one} must be poweroff, exit or none`);
    s[key] = one;
  } else s[key] = one === '' ? null : one;
}

export interface SettingsInput {
  /** Parsed kernel command line (see parseCmdline). */
  cmdline?: Record<string, string>;
  env?: Record<string, string | undefined>;
  /** Values from parseAgentArgs. */
  flags?: Record<string, string | string[] | boolean | undefined>;
}

/** Merge kernel parameters, environment and flags (lowest first) into settings. Pure. */
export function resolveSettings(input: SettingsInput): AgentSettings {
  const settings: AgentSettings = { ...DEFAULTS, macs: [], allowDevices: [] };
  for (const src of SOURCES) {
    const fromCmdline = src.param ? input.cmdline?.[src.param] : undefined;
    if (fromCmdline !== undefined) apply(settings, src.key, fromCmdline, src.param!);
    const fromEnv = input.env?.[src.env];
    if (fromEnv !== undefined && fromEnv !== '') apply(settings, src.key, fromEnv, src.env);
    const fromFlag = input.flags?.[src.flag];
    if (fromFlag !== undefined) {
      apply(settings, src.key, typeof fromFlag === 'boolean' ? String(fromFlag) : fromFlag, `--${src.flag}`);
    }
  }
  // IPA treats a missing URL and "mdns" alike: discovery by mDNS, which Kiln does not do.
  if (settings.apiUrl === 'mdns') settings.apiUrl = null;
  if (settings.apiUrl) settings.apiUrl = settings.apiUrl.replace(/\/+$/, '');
  settings.bootifMac = settings.bootif ? normaliseBootif(settings.bootif) : null;
  if (settings.agentToken !== null)
    checkToken(settings.agentToken, 'agent token (ipa-agent-token / KILN_AGENT_TOKEN)');
  if (settings.ironicApiVersion !== null && !/^\d+\.\d+$/.test(settings.ironicApiVersion)) {
    throw new Error(`ipa-ironic-api-version=${settings.ironicApiVersion} must look like 1.68`);
  }
  return settings;
}

export interface ParsedArgs {
  flags: Record<string, string | string[] | boolean | undefined>;
  help: boolean;
  version: boolean;
  cmdlineFile: string;
}

/** Parse argv (without node and script). Unknown flags are errors. */
export function parseAgentArgs(argv: readonly string[]): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {
    help: { type: 'boolean' },
    version: { type: 'boolean' },
    'cmdline-file': { type: 'string' },
  };
  const secret = argv.find((a) => a === '--agent-token' || a.startsWith('--agent-token='));
  if (secret)
    throw new Error(
      '--agent-token is not accepted on the command line (any local user can read it in ps): put the token in KILN_AGENT_TOKEN or in a file named by --agent-token-file',
    );
  for (const src of SOURCES) {
    if (src.argv === false) continue;
    const isBool = BOOL_KEYS.has(src.key);
    const multiple = src.key === 'macs' || src.key === 'allowDevices';
    options[src.flag] = isBool ? { type: 'boolean' } : { type: 'string', multiple };
  }
  const { values } = parseArgs({ args: [...argv], options, allowPositionals: false, strict: true });
  const v = values as Record<string, string | string[] | boolean | undefined>;
  return {
    flags: v,
    help: Boolean(v.help),
    version: Boolean(v.version),
    cmdlineFile: typeof v['cmdline-file'] === 'string' ? v['cmdline-file'] : '/proc/cmdline',
  };
}

export function usage(): string {
  const lines = [
    'Usage: agent.mjs [flags]',
    '',
    'Kiln ramdisk agent. Settings come from /proc/cmdline (IPA kernel parameters such as',
    'ipa-api-url=..., BOOTIF=...), then KILN_AGENT_* environment variables, then these flags:',
    '',
  ];
  for (const src of SOURCES) {
    if (src.argv === false) {
      lines.push(
        `  ${'(no flag: a secret)'.padEnd(34)} env ${src.env}${src.param ? ` (kernel: ${src.param})` : ''}`,
      );
      continue;
    }
    const param = src.param ? ` (kernel: ${src.param})` : ' (development)';
    lines.push(`  --${src.flag.padEnd(32)} env ${src.env}${param}`);
  }
  lines.push(
    '  --cmdline-file PATH                read kernel parameters from PATH instead of /proc/cmdline',
  );
  lines.push('  --version                          print the agent version');
  return lines.join('\n');
}
