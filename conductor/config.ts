// The conductor's configuration: one zod schema with defaults, filled from (lowest first) the
// defaults, a JSON/YAML file, KILN_* environment variables and command-line flags. Every invalid
// value is reported at once, each with where it came from, so an operator fixes them in one go.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { KilnError } from '../shared/errors.ts';
import { normaliseMac } from '../shared/mac.ts';
import { DEFAULT_LOADERS } from './boot/dhcp/netboot.ts';
import { Subnet, type SubnetConfig } from './boot/dhcp/subnet.ts';

// 0 lets the OS pick a free port (tests, labs).
const Port = z.coerce.number().int().min(0).max(65535);
const Seconds = z.coerce.number().positive();
const Bool = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((s) => s === 'true' || s === '1'),
]);
/** A list, or a comma-separated string (environment variables). */
const StringList = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').filter(Boolean) : v),
  z.array(z.string().min(1)),
);
const LoaderName = z.string().min(1).nullable();

const SubnetSchema = z
  .strictObject({
    cidr: z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, 'must be an IPv4 CIDR like 10.0.0.0/24'),
    range_start: z.ipv4(),
    range_end: z.ipv4(),
    router: z.ipv4().optional(),
    dns: z.array(z.ipv4()).optional(),
    domain: z.string().min(1).optional(),
    lease_time_s: z.coerce.number().int().positive().optional(),
    /** Fixed addresses for known MACs (inside the CIDR, may lie outside the range). */
    reservations: z
      .array(
        z.strictObject({
          mac: z
            .string()
            .refine((v) => normaliseMac(v) !== null, 'must be a MAC address like 52:54:00:12:34:56'),
          ip: z.ipv4(),
          hostname: z.string().min(1).optional(),
        }),
      )
      .default([]),
  })
  .superRefine((s, ctx) => {
    // The DHCP server's own checks (range inside the CIDR, reservations inside it), at load time.
    try {
      new Subnet(subnetConfig(s));
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
  });
type SubnetSchema = z.infer<typeof SubnetSchema>;

/** A configured subnet as the DHCP server takes it. */
export function subnetConfig(s: SubnetSchema): SubnetConfig {
  return {
    cidr: s.cidr,
    rangeStart: s.range_start,
    rangeEnd: s.range_end,
    router: s.router,
    dns: s.dns,
    domain: s.domain,
    leaseTime: s.lease_time_s,
    reservations: s.reservations.map((r) => ({ mac: r.mac, ip: r.ip, hostname: r.hostname })),
  };
}

export const ConductorConfig = z
  .strictObject({
    /** The operator API (REST, CLI, web console): authenticated, TLS, on its own address. */
    api: z
      .strictObject({
        /** Address the operator API listens on; keep it off the provisioning network. Env KILN_API_HOST. */
        host: z.string().default('127.0.0.1'),
        /** Port of the operator API (Ironic's is 6385). Env KILN_API_PORT. */
        port: Port.default(6385),
        /** URL operators use to reach the API, when it differs from host:port (a proxy). */
        public_url: z.url().optional(),
        /** Largest request body accepted, in bytes. */
        body_limit: z.coerce
          .number()
          .int()
          .positive()
          .default(1024 * 1024),
        /** token: every request needs a bearer API token (kiln token create); none: only on loopback. Env KILN_API_AUTH. */
        auth: z.enum(['token', 'none']).default('token'),
        tls: z
          .strictObject({
            /** auto: a self-signed certificate made at first start (its fingerprint is logged); files: cert_file and key_file; off: plain HTTP. Env KILN_API_TLS. */
            mode: z.enum(['auto', 'files', 'off']).default('auto'),
            cert_file: z.string().min(1).optional(),
            key_file: z.string().min(1).optional(),
            /** Where the auto mode keeps its certificate and key (created 0600). */
            dir: z.string().min(1).default('tls'),
          })
          .superRefine((t, ctx) => {
            if (t.mode === 'files' && !(t.cert_file && t.key_file))
              ctx.addIssue({
                code: 'custom',
                path: ['mode'],
                message: 'is files, which needs both api.tls.cert_file and api.tls.key_file',
              });
          })
          .prefault({}),
      })
      .prefault({}),
    /** The ramdisk-facing endpoints: lookup, heartbeat, inspection call-back, boot scripts and files, image cache. */
    provisioning: z
      .strictObject({
        /** Address the provisioning endpoints listen on (the provisioning interfaces). Env KILN_PROVISIONING_HOST. */
        host: z.string().default('0.0.0.0'),
        /** Port of the provisioning endpoints. Env KILN_PROVISIONING_PORT. */
        port: Port.default(6386),
        /** URL nodes and agents use to reach these endpoints (ipa-api-url). Env KILN_PUBLIC_URL. */
        public_url: z.url().optional(),
        /** source: an agent's call-back URL must name the address its heartbeat came from; any: behind NAT. */
        callback_host: z.enum(['source', 'any']).default('source'),
        /** Requests per second allowed from one source address (token bucket), and the burst above it. */
        rate_limit: z
          .strictObject({
            per_source_per_s: z.coerce.number().positive().default(20),
            burst: z.coerce.number().int().positive().default(60),
          })
          .prefault({}),
      })
      .prefault({}),
    secrets: z
      .strictObject({
        /**
         * 32-byte key that encrypts BMC passwords and agent tokens in the database, kept outside it
         * (created 0600 at first start). A systemd credential named kiln-secrets-key wins over it.
         * Env KILN_SECRETS_KEY_FILE.
         */
        key_file: z.string().min(1).default('kiln-secrets.key'),
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
        /** Interfaces DHCP and TFTP serve (e.g. [eno2]); nothing else is answered. Env KILN_BOOT_INTERFACES (comma-separated). */
        interfaces: StringList.default([]),
        /** Directory with the ramdisk's kernel and initramfs (kiln ramdisk build --out). Env KILN_RAMDISK_DIR. */
        ramdisk_dir: z.string().min(1).default('ramdisk'),
        /** Kernel arguments added to every ramdisk boot, e.g. [console=ttyS0]. */
        kernel_args: z.array(z.string()).default([]),
        /** How often the iPXE script tries to download kernel and initramfs before it reboots. */
        ramdisk_attempts: z.coerce.number().int().min(1).default(5),
        /** Seconds between those attempts. */
        ramdisk_retry_delay_s: z.coerce.number().int().min(0).default(5),
        dhcp: z
          .strictObject({
            /** full: Kiln hands out addresses; proxy: boot options beside another DHCP server; off: bring your own. Env KILN_DHCP_MODE. */
            mode: z.enum(['full', 'proxy', 'off']).default('off'),
            /** Full mode: address pools, each with optional fixed addresses (reservations). */
            subnets: z.array(SubnetSchema).default([]),
            /** Full mode: where leases persist (JSON lines). */
            lease_file: z.string().min(1).default('dhcp-leases.jsonl'),
            /** iPXE binaries by architecture, as names under boot.tftp.root; null offers none for it. */
            loaders: z
              .strictObject({
                bios: LoaderName.default(DEFAULT_LOADERS.bios!),
                efi_x64: LoaderName.default(DEFAULT_LOADERS.efiX64!),
                efi_arm64: LoaderName.default(DEFAULT_LOADERS.efiArm64!),
              })
              .prefault({}),
            /** User classes (option 77) that mark an iPXE client, which gets the script instead of another iPXE. */
            ipxe_user_classes: StringList.refine(
              (a) => a.length > 0,
              'needs at least one user class',
            ).default(['iPXE']),
            /** UDP ports; only tests and benchmarks change them. */
            ports: z
              .strictObject({
                server: Port.default(67),
                client: Port.default(68),
                pxe: Port.default(4011),
              })
              .prefault({}),
            /**
             * Flood protection: requests per second answered for one client MAC (and burst), new
             * clients offered an address per second across the server, and the share of a pool that
             * may be held by offers not yet requested.
             */
            rate_limit: z
              .strictObject({
                per_mac_per_s: z.coerce.number().positive().default(2),
                burst: z.coerce.number().int().positive().default(10),
                new_clients_per_s: z.coerce.number().positive().default(50),
                max_offered_fraction: z.coerce.number().gt(0).max(1).default(0.5),
              })
              .prefault({}),
          })
          .prefault({}),
        tftp: z
          .strictObject({
            /** Serve the iPXE loaders over TFTP. */
            enabled: Bool.default(true),
            /** Directory served read-only; holds undionly.kpxe and ipxe.efi (Debian's ipxe package installs them here). Env KILN_TFTP_ROOT. */
            root: z.string().min(1).default('/usr/lib/ipxe'),
            /** Addresses TFTP listens on; default: the addresses of boot.interfaces. */
            addresses: z.array(z.ipv4()).optional(),
            port: Port.default(69),
            /** Largest blksize granted (RFC 2348); 1468 fills an Ethernet frame. */
            max_blksize: z.coerce.number().int().min(8).max(65464).default(1468),
            /** Largest windowsize granted (RFC 7440). */
            max_windowsize: z.coerce.number().int().min(1).max(65535).default(64),
            /** Retransmission timeout when the client asks for none. */
            timeout_ms: z.coerce.number().int().positive().default(1000),
            retries: z.coerce.number().int().min(0).default(5),
            /** Transfers in flight at once; more get "server busy". */
            max_transfers: z.coerce.number().int().min(1).default(512),
          })
          .prefault({}),
      })
      .superRefine((b, ctx) => {
        // Reported on boot.dhcp.mode: that is the key whose value needs the missing ones.
        if (b.dhcp.mode !== 'off' && b.interfaces.length === 0)
          ctx.addIssue({
            code: 'custom',
            path: ['dhcp', 'mode'],
            message: `is ${b.dhcp.mode}, but boot.interfaces is empty: name the provisioning interfaces (e.g. [eno2])`,
          });
        if (b.dhcp.mode === 'full' && b.dhcp.subnets.length === 0)
          ctx.addIssue({
            code: 'custom',
            path: ['dhcp', 'mode'],
            message: 'is full, which needs at least one address pool in boot.dhcp.subnets',
          });
      })
      .prefault({}),
    enrollment: z
      .strictObject({
        /** What an unknown machine that PXE-boots gets: enroll (default), ignore, or allow (MAC prefixes). */
        policy: z.enum(['enroll', 'ignore', 'allow']).default('enroll'),
        allow_mac_prefixes: z.array(z.string()).default([]),
        /**
         * Credentials for BMCs that discovered machines report. They are applied only when an
         * operator approves the reported address (kiln node approve-bmc), never to an address taken
         * from unauthenticated data on its own. Env KILN_ENROLL_BMC_USERNAME/PASSWORD.
         */
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
        /** Hosts image URLs may name (exact names or .suffix); empty allows any http(s) host. */
        allowed_hosts: StringList.default([]),
      })
      .prefault({}),
    log: z
      .strictObject({
        /** trace, debug, info, warn, error, fatal. Env KILN_LOG_LEVEL. */
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    // Unauthenticated is only for a host nobody else can reach.
    if (c.api.auth === 'none' && !isLoopbackHost(c.api.host))
      ctx.addIssue({
        code: 'custom',
        path: ['api', 'auth'],
        message: `is none, but api.host is ${c.api.host}, which others can reach: keep auth on (kiln token create) or listen on 127.0.0.1 only`,
      });
  });
export type ConductorConfig = z.infer<typeof ConductorConfig>;

/** localhost, 127.0.0.0/8, ::1 (with or without brackets). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\./.test(h) || h === '::ffff:127.0.0.1';
}

/** Environment variables and the config path each one sets. */
export const ENV_KEYS: Record<string, string> = {
  KILN_API_HOST: 'api.host',
  KILN_API_PORT: 'api.port',
  KILN_API_AUTH: 'api.auth',
  KILN_API_TLS: 'api.tls.mode',
  KILN_PROVISIONING_HOST: 'provisioning.host',
  KILN_PROVISIONING_PORT: 'provisioning.port',
  KILN_PUBLIC_URL: 'provisioning.public_url',
  KILN_SECRETS_KEY_FILE: 'secrets.key_file',
  KILN_DATABASE_URL: 'database.url',
  KILN_CONDUCTOR_ID: 'conductor.id',
  KILN_POWER_SYNC_INTERVAL_S: 'conductor.power_sync_interval_s',
  KILN_FAST_TRACK: 'conductor.fast_track',
  KILN_LOG_LEVEL: 'log.level',
  KILN_BOOT_INTERFACES: 'boot.interfaces',
  KILN_DHCP_MODE: 'boot.dhcp.mode',
  KILN_TFTP_ROOT: 'boot.tftp.root',
  KILN_RAMDISK_DIR: 'boot.ramdisk_dir',
  KILN_ENROLL_BMC_USERNAME: 'enrollment.bmc_username',
  KILN_ENROLL_BMC_PASSWORD: 'enrollment.bmc_password',
  KILN_IMAGE_CACHE_DIR: 'images.cache_dir',
};

/**
 * Earlier, flat names of boot keys, still accepted. Errors name whichever the user wrote.
 * `boot.tftp` was a boolean; as a mapping it is the TFTP section.
 */
const OLD_NAMES: { from: string; to: string; when?: (v: unknown) => boolean }[] = [
  // First: the others may create the boot.tftp mapping.
  { from: 'boot.tftp', to: 'boot.tftp.enabled', when: (v) => typeof v !== 'object' || v === null },
  { from: 'boot.dhcp_mode', to: 'boot.dhcp.mode' },
  { from: 'boot.subnets', to: 'boot.dhcp.subnets' },
  { from: 'boot.lease_file', to: 'boot.dhcp.lease_file' },
  { from: 'boot.tftp_root', to: 'boot.tftp.root' },
];

type Key = string | number;
interface Layer {
  /** file PATH, environment, flags */
  kind: 'file' | 'environment' | 'flags';
  name: string;
  values: Record<string, unknown>;
  /** Old names this layer used: canonical path prefix → what the user wrote. */
  renamed: { to: Key[]; from: Key[] }[];
}

export interface ConfigProblem {
  /** The key as the user wrote it, e.g. boot.dhcp.subnets[0].range_start. */
  path: string;
  message: string;
  /** file PATH, environment KILN_…, flag --…, or defaults. */
  source: string;
}

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

function deletePath(obj: Record<string, unknown>, path: string): void {
  const parts = path.split('.');
  const parent = getPath(obj, parts.slice(0, -1));
  if (typeof parent === 'object' && parent !== null)
    delete (parent as Record<string, unknown>)[parts.at(-1)!];
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

/** boot.dhcp.subnets[0].range_start */
export function formatKey(path: readonly Key[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

const startsWith = (path: readonly Key[], prefix: readonly Key[]) => prefix.every((p, i) => path[i] === p);

/** Moves old names to the current ones, remembering what was written; both at once is an error. */
function renameOld(layer: Layer, problems: ConfigProblem[]): void {
  for (const { from, to, when } of OLD_NAMES) {
    const v = getPath(layer.values, from.split('.'));
    if (v === undefined || (when && !when(v))) continue;
    deletePath(layer.values, from);
    if (getPath(layer.values, to.split('.')) !== undefined) {
      problems.push({
        path: from,
        message: `is the old name of ${to}, which is set too; keep only ${to}`,
        source: sourceName(layer, from.split('.'), {}),
      });
      continue;
    }
    setPath(layer.values, to, v);
    layer.renamed.push({ to: to.split('.'), from: from.split('.') });
  }
}

function sourceName(
  layer: Layer | undefined,
  path: readonly Key[],
  flagNames: Record<string, string>,
): string {
  if (!layer) return 'defaults';
  if (layer.kind === 'file') return `file ${layer.name}`;
  const key = formatKey(path);
  const owner = (paths: [string, string][]) =>
    paths.find(([p]) => key === p || key.startsWith(`${p}.`) || key.startsWith(`${p}[`));
  if (layer.kind === 'environment') {
    const env = owner(Object.entries(ENV_KEYS).map(([k, p]) => [p, k]));
    return env ? `environment ${env[1]}` : 'environment';
  }
  const flag = owner(Object.entries(flagNames));
  return flag ? `flag ${flag[1]}` : 'flags';
}

/**
 * The layer that supplied the value at `path` (the last one that set it wins), or for a missing
 * key the one that wrote the closest enclosing mapping or list, and the key as that layer wrote it.
 */
function locate(
  layers: Layer[],
  path: readonly Key[],
  flagNames: Record<string, string>,
): { path: string; source: string } {
  let layer: Layer | undefined;
  for (let n = path.length; n > 0 && !layer; n--)
    layer = [...layers].reverse().find((l) => getPath(l.values, path.slice(0, n)) !== undefined);
  let written = [...path];
  for (const r of layer?.renamed ?? [])
    if (startsWith(path, r.to)) written = [...r.from, ...path.slice(r.to.length)];
  return { path: formatKey(written), source: sourceName(layer, written, flagNames) };
}

/** The keys a mapping in the schema accepts, for "unknown key" messages. */
function knownKeys(path: readonly Key[]): string[] {
  type Walkable = {
    shape?: Record<string, unknown>;
    unwrap?: () => unknown;
    element?: unknown;
    out?: unknown;
  };
  const peel = (s: unknown): Walkable => {
    let cur = s as Walkable;
    for (let i = 0; i < 8; i++) {
      if (cur.shape) return cur;
      if (typeof cur.unwrap === 'function') cur = cur.unwrap() as Walkable;
      else if (cur.out) cur = cur.out as Walkable;
      else break;
    }
    return cur;
  };
  let cur = peel(ConductorConfig);
  for (const p of path) {
    const next = typeof p === 'number' ? cur.element : cur.shape?.[p];
    if (!next) return [];
    cur = peel(next);
  }
  return Object.keys(cur.shape ?? {});
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
  /** The command-line flag behind each flags key ("api.port" → "--port"), for error messages. */
  flagNames?: Record<string, string>;
}

export function loadConfig(src: ConfigSources = {}): ConductorConfig {
  const layers: Layer[] = [];
  const env = src.env ?? {};
  const file = src.file ?? env.KILN_CONFIG;
  if (file) layers.push({ kind: 'file', name: file, values: readConfigFile(file), renamed: [] });
  const envValues: Record<string, unknown> = {};
  for (const [key, path] of Object.entries(ENV_KEYS)) {
    const v = env[key];
    if (v !== undefined && v !== '') setPath(envValues, path, v);
  }
  layers.push({ kind: 'environment', name: 'environment', values: envValues, renamed: [] });
  const flagValues: Record<string, unknown> = {};
  for (const [path, v] of Object.entries(src.flags ?? {})) if (v !== undefined) setPath(flagValues, path, v);
  layers.push({ kind: 'flags', name: 'flags', values: flagValues, renamed: [] });

  const problems: ConfigProblem[] = [];
  for (const l of layers) renameOld(l, problems);
  const merged = layers.reduce(
    (acc, l) => merge(acc, structuredClone(l.values)),
    {} as Record<string, unknown>,
  );
  const r = ConductorConfig.safeParse(merged);
  if (r.success && problems.length === 0) return Object.freeze(r.data) as ConductorConfig;
  const flagNames = src.flagNames ?? {};
  for (const i of r.error?.issues ?? []) {
    const path = i.path.filter((p): p is Key => typeof p !== 'symbol');
    if (i.code === 'unrecognized_keys') {
      // One problem per unknown key, named in full, with the keys that mapping does take.
      const known = knownKeys(path);
      for (const k of i.keys)
        problems.push({
          ...locate(layers, [...path, k], flagNames),
          message: `unknown key${known.length ? ` (${path.length ? `${formatKey(path)} takes` : 'sections are'}: ${known.join(', ')})` : ''}`,
        });
      continue;
    }
    problems.push({ ...locate(layers, path, flagNames), message: i.message });
  }
  throw new KilnError(
    'CONFIG_INVALID',
    `invalid configuration (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n${problems
      .map((p) => `  - ${p.path || '(top level)'}: ${p.message} (from ${p.source})`)
      .join('\n')}`,
    { details: problems },
  );
}
