// The conductor's configuration: one zod schema with defaults, filled from (lowest first) the
// defaults, a JSON/YAML file, KILN_* environment variables and command-line flags. Every invalid
// value is reported at once, each with where it came from, so an operator fixes them in one go.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { KilnError } from '../shared/errors.ts';

// 0 lets the OS pick a free port (tests, labs).
const Port = z.coerce.number().int().min(0).max(65535);
const Seconds = z.coerce.number().positive();
const Bool = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((s) => s === 'true' || s === '1'),
]);

export const ConductorConfig = z.strictObject({
  api: z
    .strictObject({
      /** Address the REST API listens on. Env KILN_API_HOST. */
      host: z.string().default('0.0.0.0'),
      /** Port of the REST API (Ironic's is 6385). Env KILN_API_PORT. */
      port: Port.default(6385),
      /** URL nodes and agents use to reach this API (ipa-api-url). Env KILN_PUBLIC_URL. */
      public_url: z.url().optional(),
      /** Largest request body accepted, in bytes. */
      body_limit: z.coerce
        .number()
        .int()
        .positive()
        .default(1024 * 1024),
    })
    .prefault({}),
  database: z
    .strictObject({
      /** sqlite:PATH (default), :memory:, or postgres://… Env KILN_DATABASE_URL. */
      url: z.string().min(1).default('sqlite:kiln.db'),
    })
    .prefault({}),
  conductor: z
    .strictObject({
      /** Names this conductor in reservations; must be stable across restarts. Env KILN_CONDUCTOR_ID. */
      id: z.string().min(1).default(hostname()),
      /** Fail a node that waits longer than this for its ramdisk (Ironic's deploy/clean_callback_timeout). */
      callback_timeout_s: Seconds.default(1800),
      /** How often the wait-state watchdog runs. */
      watchdog_interval_s: Seconds.default(30),
      /** Period of the power-state sync; 0 disables it. Env KILN_POWER_SYNC_INTERVAL_S. */
      power_sync_interval_s: z.coerce.number().min(0).default(60),
      /** How many BMCs the power sync talks to at once. */
      power_sync_concurrency: z.coerce.number().int().min(1).max(256).default(8),
      /** Keep a live ramdisk between actions instead of rebooting (Ironic's fast_track). */
      fast_track: Bool.default(true),
      /** Ramdisk heartbeat period ceiling handed to agents at lookup. */
      heartbeat_timeout_s: Seconds.default(300),
      /** Run cleaning when a node is provided or undeployed. */
      automated_clean: Bool.default(true),
    })
    .prefault({}),
  boot: z
    .strictObject({
      /** full: Kiln hands out addresses; proxy: boot options beside another DHCP server; off: bring your own. */
      dhcp_mode: z.enum(['full', 'proxy', 'off']).default('off'),
      /** Interfaces DHCP and TFTP serve (e.g. [eno2]); nothing else is answered. Env KILN_BOOT_INTERFACES (comma-separated). */
      interfaces: z
        .preprocess(
          (v) => (typeof v === 'string' ? v.split(',').filter(Boolean) : v),
          z.array(z.string().min(1)),
        )
        .default([]),
      /** Full mode: address pools. */
      subnets: z
        .array(
          z.strictObject({
            cidr: z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, 'must be an IPv4 CIDR like 10.0.0.0/24'),
            range_start: z.ipv4(),
            range_end: z.ipv4(),
            router: z.ipv4().optional(),
            dns: z.array(z.ipv4()).optional(),
            lease_time_s: z.coerce.number().int().positive().optional(),
          }),
        )
        .default([]),
      /** Full mode: where leases persist (JSON lines). */
      lease_file: z.string().default('dhcp-leases.jsonl'),
      /** Serve the iPXE loaders over TFTP. */
      tftp: Bool.default(true),
      /** Directory with undionly.kpxe and ipxe.efi (Debian's ipxe package installs them here). */
      tftp_root: z.string().default('/usr/lib/ipxe'),
      /** Directory with the ramdisk's kernel and initramfs (kiln ramdisk build --out). Env KILN_RAMDISK_DIR. */
      ramdisk_dir: z.string().default('ramdisk'),
      /** Kernel arguments added to every ramdisk boot, e.g. [console=ttyS0]. */
      kernel_args: z.array(z.string()).default([]),
    })
    .prefault({}),
  enrollment: z
    .strictObject({
      /** What an unknown machine that PXE-boots gets: enroll (default), ignore, or allow (MAC prefixes). */
      policy: z.enum(['enroll', 'ignore', 'allow']).default('enroll'),
      allow_mac_prefixes: z.array(z.string()).default([]),
      /** Credentials for BMCs learned from discovered machines' inventories. Env KILN_ENROLL_BMC_USERNAME/PASSWORD. */
      bmc_username: z.string().optional(),
      bmc_password: z.string().optional(),
    })
    .prefault({}),
  images: z
    .strictObject({
      /** Agents download images through the conductor's cache (one origin download per image). */
      cache: Bool.default(true),
      /** Where cached images live. Env KILN_IMAGE_CACHE_DIR. */
      cache_dir: z.string().default('image-cache'),
    })
    .prefault({}),
  log: z
    .strictObject({
      /** trace, debug, info, warn, error, fatal. Env KILN_LOG_LEVEL. */
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    })
    .prefault({}),
});
export type ConductorConfig = z.infer<typeof ConductorConfig>;

/** Environment variables and the config path each one sets. */
export const ENV_KEYS: Record<string, string> = {
  KILN_API_HOST: 'api.host',
  KILN_API_PORT: 'api.port',
  KILN_PUBLIC_URL: 'api.public_url',
  KILN_DATABASE_URL: 'database.url',
  KILN_CONDUCTOR_ID: 'conductor.id',
  KILN_POWER_SYNC_INTERVAL_S: 'conductor.power_sync_interval_s',
  KILN_FAST_TRACK: 'conductor.fast_track',
  KILN_LOG_LEVEL: 'log.level',
  KILN_BOOT_INTERFACES: 'boot.interfaces',
  KILN_DHCP_MODE: 'boot.dhcp_mode',
  KILN_RAMDISK_DIR: 'boot.ramdisk_dir',
  KILN_ENROLL_BMC_USERNAME: 'enrollment.bmc_username',
  KILN_ENROLL_BMC_PASSWORD: 'enrollment.bmc_password',
  KILN_IMAGE_CACHE_DIR: 'images.cache_dir',
};

type Layer = { source: string; values: Record<string, unknown> };

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts.at(-1)!] = value;
}

function getPath(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

function merge(into: Record<string, unknown>, from: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(from)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && into[k] && typeof into[k] === 'object') {
      merge(into[k] as Record<string, unknown>, v as Record<string, unknown>);
    } else {
      into[k] = v;
    }
  }
  return into;
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KilnError('CONFIG_INVALID', `cannot read config file ${path}: ${(e as Error).message}`);
  }
  try {
    const parsed = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    if (parsed === null || parsed === undefined) return {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('top level must be a mapping');
    return parsed as Record<string, unknown>;
  } catch (e) {
    throw new KilnError(
      'CONFIG_INVALID',
      `config file ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`,
    );
  }
}

export interface ConfigSources {
  file?: string;
  env?: Record<string, string | undefined>;
  /** Flat "section.key" → value pairs from command-line flags. */
  flags?: Record<string, unknown>;
}

export function loadConfig(src: ConfigSources = {}): ConductorConfig {
  const layers: Layer[] = [];
  const env = src.env ?? {};
  const file = src.file ?? env.KILN_CONFIG;
  if (file) layers.push({ source: `file ${file}`, values: readConfigFile(file) });
  const envValues: Record<string, unknown> = {};
  for (const [key, path] of Object.entries(ENV_KEYS)) {
    const v = env[key];
    if (v !== undefined && v !== '') setPath(envValues, path, v);
  }
  layers.push({ source: 'environment', values: envValues });
  const flagValues: Record<string, unknown> = {};
  for (const [path, v] of Object.entries(src.flags ?? {})) if (v !== undefined) setPath(flagValues, path, v);
  layers.push({ source: 'flags', values: flagValues });

  const merged = layers.reduce(
    (acc, l) => merge(acc, structuredClone(l.values)),
    {} as Record<string, unknown>,
  );
  const r = ConductorConfig.safeParse(merged);
  if (r.success) return Object.freeze(r.data) as ConductorConfig;
  const problems = r.error.issues.map((i) => {
    const path = i.path.join('.');
    // Name the layer that supplied the bad value: the last one that set it wins.
    const from =
      [...layers].reverse().find((l) => getPath(l.values, i.path) !== undefined)?.source ?? 'defaults';
    const envKey = Object.entries(ENV_KEYS).find(([, p]) => p === path)?.[0];
    return {
      path,
      message: i.message,
      source: from === 'environment' && envKey ? `environment ${envKey}` : from,
    };
  });
  throw new KilnError(
    'CONFIG_INVALID',
    `invalid configuration (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n${problems
      .map((p) => `  - ${p.path || '(top level)'}: ${p.message} (from ${p.source})`)
      .join('\n')}`,
    { details: problems },
  );
}
