// Wire shapes of the ironic-python-agent (IPA) protocol, as Ironic 2023.1 and IPA 9.4.3 speak it:
// agent → conductor (version discovery, lookup, heartbeat) and conductor → agent (command records,
// inventory). Both sides of Kiln use these, and so does a stock Ironic or IPA on the other end,
// so schemas are lenient about extra members and strict only about what the protocol requires.
// zod/mini: the agent bundles this file, and full zod would be 40% of the agent's size and start-up.
import * as z from 'zod/mini';

/** API microversions that change what lookup/heartbeat accept (Ironic's api/controllers/v1/utils.py). */
export const IRONIC_API = {
  /** What an agent assumes when `GET /` fails (IPA's BASE_IRONIC_API_VERSION). */
  fallback: '1.31',
  ramdiskEndpoints: '1.22',
  agentVersionInHeartbeat: '1.36',
  agentToken: '1.62',
  agentVerifyCa: '1.68',
  agentStatus: '1.72',
  /** Highest version an agent asks for on lookup / heartbeat (IPA's caps). */
  maxLookup: '1.62',
  maxHeartbeat: '1.68',
} as const;

export const VERSION_HEADER = 'X-OpenStack-Ironic-API-Version';

/** Kiln-only features a conductor may advertise in its `GET /` document. */
export const KILN_EXTENSIONS = ['progress'] as const;
export type KilnExtension = (typeof KILN_EXTENSIONS)[number];

/** The token Ironic returns instead of the real one after the first lookup. */
export const MASKED = '******';

// ---- agent → conductor ----

/** `GET /` of the Ironic API; the agent reads default_version.version and (Kiln) `kiln.extensions`. */
export const ApiRootDocument = z.looseObject({
  default_version: z.looseObject({ version: z.string().check(z.regex(/^\d+\.\d+$/)) }),
  kiln: z.optional(
    z.looseObject({ version: z.optional(z.string()), extensions: z._default(z.array(z.string()), []) }),
  ),
});
export type ApiRootDocument = z.infer<typeof ApiRootDocument>;

const Json = z.record(z.string(), z.unknown());

export const LookupConfig = z.looseObject({
  heartbeat_timeout: z.number().check(z.positive()),
  agent_token: z.optional(z.nullable(z.string())),
  agent_token_required: z.optional(z.boolean()),
  metrics: z.optional(z.unknown()),
  metrics_statsd: z.optional(z.unknown()),
  disable_deep_image_inspection: z.optional(z.boolean()),
  permitted_image_formats: z.optional(z.array(z.string())),
  enable_bios_bootloader_install: z.optional(z.boolean()),
});
export type LookupConfig = z.infer<typeof LookupConfig>;

export const LookupNode = z.looseObject({
  uuid: z.string().check(z.minLength(1)),
  properties: z._default(Json, {}),
  instance_info: z._default(Json, {}),
  driver_internal_info: z._default(Json, {}),
  links: z.optional(z.array(z.looseObject({ href: z.string(), rel: z.string() }))),
});
export type LookupNode = z.infer<typeof LookupNode>;

/**
 * 200 body of `GET /v1/lookup`. Pre-Rocky conductors put heartbeat_timeout at the top level and
 * send no `config`; IPA tolerates that, so do we (normalised into `config`).
 */
export const LookupResponse = z.pipe(
  z
    .looseObject({
      node: LookupNode,
      config: z.optional(LookupConfig),
      heartbeat_timeout: z.optional(z.number().check(z.positive())),
    })
    .check(
      z.refine((r) => r.config !== undefined || r.heartbeat_timeout !== undefined, {
        message: 'lookup response has neither config nor heartbeat_timeout',
      }),
    ),
  z.transform((r) => ({
    node: r.node,
    config: r.config ?? ({ heartbeat_timeout: r.heartbeat_timeout as number } as LookupConfig),
  })),
);
export type LookupResponse = z.infer<typeof LookupResponse>;

/** Live progress of the running command: Kiln-only, sent only to a conductor that advertises it. */
export const KilnProgress = z.looseObject({
  command_id: z.optional(z.string()),
  command_name: z.optional(z.string()),
  phase: z.string(),
  bytes_done: z.optional(z.number()),
  bytes_total: z.optional(z.nullable(z.number())),
  rate_bps: z.optional(z.nullable(z.number())),
  eta_s: z.optional(z.nullable(z.number())),
  message: z.optional(z.string()),
  updated_at: z.optional(z.string()),
});
export type KilnProgress = z.infer<typeof KilnProgress>;

/** Body of `POST /v1/heartbeat/{node}`. Unknown members are refused, as Ironic refuses them. */
export const HeartbeatBody = z.strictObject({
  callback_url: z.string(),
  agent_token: z.optional(z.nullable(z.string())),
  agent_version: z.optional(z.nullable(z.string())),
  agent_verify_ca: z.optional(z.nullable(z.string())),
  agent_status: z.optional(z.nullable(z.string())),
  agent_status_message: z.optional(z.nullable(z.string())),
  kiln_progress: z.optional(z.nullable(KilnProgress)),
});
export type HeartbeatBody = z.infer<typeof HeartbeatBody>;

// ---- conductor → agent ----

export const COMMAND_STATUSES = [
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
  'CLEAN_VERSION_MISMATCH',
  'VERSION_MISMATCH',
] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

/** IPA's serialised RESTError. */
export const CommandError = z.looseObject({
  type: z.optional(z.string()),
  code: z.optional(z.number()),
  message: z.optional(z.string()),
  details: z.optional(z.unknown()),
});
export type CommandError = z.infer<typeof CommandError>;

/** One command result record (`command_params` is deliberately never serialised, like IPA). */
export const CommandRecord = z.looseObject({
  id: z.string(),
  command_name: z.string(),
  command_status: z.string(),
  command_error: z.nullable(z.unknown()),
  command_result: z.nullable(z.unknown()),
  kiln_progress: z.optional(z.nullable(KilnProgress)),
});
export type CommandRecord = z.infer<typeof CommandRecord>;

export const CommandList = z.looseObject({ commands: z.array(CommandRecord) });

export const CommandRequest = z.object({
  name: z.string(),
  params: Json,
});
export type CommandRequest = z.infer<typeof CommandRequest>;

/** Error body of the agent API (WSME's format, which Ironic's agent client parses). */
export interface AgentFault {
  faultcode: 'Client' | 'Server';
  faultstring: string;
}

/** A step as it travels in get_*_steps results and execute_*_step params. */
export const Step = z.looseObject({
  step: z.string(),
  interface: z.string(),
  priority: z.optional(z.number()),
  reboot_requested: z.optional(z.boolean()),
  abortable: z.optional(z.boolean()),
  argsinfo: z.optional(z.nullable(Json)),
  args: z.optional(Json),
  requires_ramdisk: z.optional(z.boolean()),
});
export type Step = z.infer<typeof Step>;

// ---- inventory (GenericHardwareManager.list_hardware_info) ----

export interface InventoryCpu {
  model_name: string | null;
  frequency: string | null;
  count: number;
  architecture: string;
  flags: string[];
  socket_count?: number | null;
}

export interface InventoryMemory {
  total: number;
  physical_mb: number | null;
}

export interface InventoryDisk {
  name: string;
  model: string | null;
  size: number;
  rotational: boolean;
  wwn: string | null;
  serial: string | null;
  vendor: string | null;
  wwn_with_extension: string | null;
  wwn_vendor_extension: string | null;
  hctl: string | null;
  by_path: string | null;
}

export interface InventoryInterface {
  name: string;
  mac_address: string;
  ipv4_address: string | null;
  ipv6_address: string | null;
  has_carrier: boolean;
  /** [tlv_type, hex] pairs; null unless ipa-collect-lldp. */
  lldp: [number, string][] | null;
  vendor: string | null;
  product: string | null;
  client_id: string | null;
  biosdevname: string | null;
  speed_mbps: number | null;
  /** Kiln addition: kernel driver bound to the NIC. */
  driver?: string | null;
}

export interface InventorySystemVendor {
  product_name: string | null;
  serial_number: string | null;
  manufacturer: string | null;
  firmware: { vendor: string | null; version: string | null; build_date: string | null };
  /** Kiln addition: SMBIOS system UUID. */
  system_uuid?: string | null;
}

export interface InventoryBoot {
  current_boot_mode: 'uefi' | 'bios';
  pxe_interface: string | null;
}

export interface CollectorFailure {
  collector: string;
  message: string;
}

export interface Inventory {
  interfaces: InventoryInterface[];
  cpu: InventoryCpu;
  disks: InventoryDisk[];
  memory: InventoryMemory;
  bmc_address: string | null;
  bmc_v6address: string | null;
  bmc_mac: string | null;
  system_vendor: InventorySystemVendor;
  boot: InventoryBoot;
  hostname: string;
  /** Kiln addition: what the agent could not collect, so the conductor can show it. */
  kiln_collector_failures: CollectorFailure[];
}

/** Compare "1.62"-style microversions. */
export function compareVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am !== bm ? am - bm : an - bn;
}

export function minVersion(a: string, b: string): string {
  return compareVersions(a, b) <= 0 ? a : b;
}

// ---- node capabilities and boot mode, read as IPA reads them (utils.py) ----

export type BootMode = 'uefi' | 'bios';

/**
 * `capabilities` of node.properties or instance_info: a dict, a JSON string or Ironic's
 * "key1:value1,key2:value2" (IPA's parse_capabilities). Malformed entries are dropped.
 */
export function parseCapabilities(root: unknown): Record<string, string> {
  let caps = (root as { capabilities?: unknown } | null | undefined)?.capabilities;
  if (typeof caps === 'string') {
    const text = caps;
    try {
      caps = JSON.parse(text);
    } catch {
      const out: Record<string, string> = {};
      for (const item of text.split(',')) {
        const kv = item.split(':');
        if (kv.length === 2 && kv[0]!.trim() && kv[1]!.trim()) out[kv[0]!.trim()] = kv[1]!.trim();
      }
      return out;
    }
  }
  if (typeof caps !== 'object' || caps === null || Array.isArray(caps)) return {};
  return Object.fromEntries(Object.entries(caps).map(([k, v]) => [k, String(v)]));
}

const bootModeValue = (v: unknown): BootMode | null => {
  const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
  return s === 'uefi' || s === 'bios' ? s : null;
};

const record = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/**
 * The boot mode the node asks for, in IPA's order (get_node_boot_mode): secure_boot:true means
 * UEFI, then instance_info.deploy_boot_mode, then the boot_mode capability of node.properties,
 * then Kiln's properties.boot_mode (what inspection found the machine booted in), then
 * driver_internal_info.deploy_boot_mode. Null when the node says nothing; IPA then uses the
 * ramdisk's own boot mode.
 */
export function nodeBootMode(node: {
  instance_info?: unknown;
  properties?: unknown;
  driver_internal_info?: unknown;
}): BootMode | null {
  const instanceInfo = record(node.instance_info);
  const properties = record(node.properties);
  const instanceCaps = parseCapabilities(instanceInfo);
  const caps = parseCapabilities(properties);
  if ((instanceCaps.secure_boot ?? caps.secure_boot ?? '').toLowerCase() === 'true') return 'uefi';
  return (
    bootModeValue(instanceInfo.deploy_boot_mode) ??
    bootModeValue(caps.boot_mode) ??
    bootModeValue(properties.boot_mode) ??
    bootModeValue(record(node.driver_internal_info).deploy_boot_mode)
  );
}

/** The disk_label capability (instance_info first, then node.properties), as IPA reads it. */
export function nodeDiskLabel(node: {
  instance_info?: unknown;
  properties?: unknown;
}): 'gpt' | 'msdos' | null {
  const v =
    parseCapabilities(record(node.instance_info)).disk_label ??
    parseCapabilities(record(node.properties)).disk_label;
  return v === 'gpt' || v === 'msdos' ? v : null;
}
