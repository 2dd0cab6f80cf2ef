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

// ---- params and results of the commands Kiln's conductor sends and reads ----

/** Steps by hardware manager, as get_*_steps lists them: {"GenericHardwareManager": [...]}. */
const StepsByManager = z.record(z.string(), z.array(Step));
const HardwareManagerVersion = z.optional(z.nullable(Json));

/** Result of clean.get_clean_steps. */
export const GetCleanStepsResult = z.looseObject({
  clean_steps: StepsByManager,
  hardware_manager_version: HardwareManagerVersion,
});
/** Result of deploy.get_deploy_steps. */
export const GetDeployStepsResult = z.looseObject({
  deploy_steps: StepsByManager,
  hardware_manager_version: HardwareManagerVersion,
});

/** A step as execute_*_step takes it: IPA needs only its name. */
export const StepToRun = z.extend(Step, { interface: z.optional(z.string()) });
export type StepToRun = z.infer<typeof StepToRun>;

/** What execute_clean_step and execute_deploy_step both take: the node as Ironic's node.as_dict, its ports. */
const stepParams = { step: StepToRun, node: z.optional(Json), ports: z.optional(z.array(z.unknown())) };
/** Params of clean.execute_clean_step. */
export const ExecuteCleanStepParams = z.looseObject({ ...stepParams, clean_version: HardwareManagerVersion });
export type ExecuteCleanStepParams = z.infer<typeof ExecuteCleanStepParams>;
/** Params of deploy.execute_deploy_step. */
export const ExecuteDeployStepParams = z.looseObject({
  ...stepParams,
  deploy_version: HardwareManagerVersion,
});
export type ExecuteDeployStepParams = z.infer<typeof ExecuteDeployStepParams>;

/** Result of standby.get_partition_uuids ({} before an image was written). */
export const PartitionUuids = z.looseObject({
  'root uuid': z.optional(z.nullable(z.string())),
  'efi system partition uuid': z.optional(z.nullable(z.string())),
  'PReP Boot partition uuid': z.optional(z.nullable(z.string())),
  partitions: z.optional(z.nullable(z.record(z.string(), z.nullable(z.string())))),
});
export type PartitionUuids = z.infer<typeof PartitionUuids>;

// ---- inventory (GenericHardwareManager.list_hardware_info) ----
// As IPA 9.4.3 sends it. Extra keys pass (hardware managers add their own); fields a real agent
// sends as None are nullable; fields older IPAs or Kiln alone send are optional.

const nstr = z.nullable(z.string());
const onstr = z.optional(nstr);

export const InventoryCpu = z.looseObject({
  model_name: nstr,
  frequency: nstr,
  count: z.number(),
  architecture: z.string(),
  flags: z.array(z.string()),
  socket_count: z.optional(z.nullable(z.number())),
});
export type InventoryCpu = z.infer<typeof InventoryCpu>;

export const InventoryMemory = z.looseObject({
  total: z.number(),
  physical_mb: z.nullable(z.number()),
});
export type InventoryMemory = z.infer<typeof InventoryMemory>;

export const InventoryDisk = z.looseObject({
  name: z.string(),
  model: nstr,
  size: z.number(),
  rotational: z.boolean(),
  wwn: nstr,
  serial: nstr,
  vendor: nstr,
  wwn_with_extension: nstr,
  wwn_vendor_extension: nstr,
  hctl: nstr,
  by_path: onstr,
});
export type InventoryDisk = z.infer<typeof InventoryDisk>;

export const InventoryInterface = z.looseObject({
  name: z.string(),
  mac_address: z.string(),
  ipv4_address: nstr,
  ipv6_address: nstr,
  has_carrier: z.boolean(),
  /** [tlv_type, hex] pairs; null unless ipa-collect-lldp. */
  lldp: z.nullable(z.array(z.tuple([z.number(), z.string()]))),
  vendor: nstr,
  product: nstr,
  client_id: nstr,
  biosdevname: nstr,
  speed_mbps: z.optional(z.nullable(z.number())),
  /** Kiln addition: kernel driver bound to the NIC. */
  driver: onstr,
});
export type InventoryInterface = z.infer<typeof InventoryInterface>;

export const InventorySystemVendor = z.looseObject({
  product_name: nstr,
  serial_number: nstr,
  manufacturer: nstr,
  firmware: z.looseObject({ vendor: nstr, version: nstr, build_date: nstr }),
  /** Kiln addition: SMBIOS system UUID. */
  system_uuid: onstr,
});
export type InventorySystemVendor = z.infer<typeof InventorySystemVendor>;

export const InventoryBoot = z.looseObject({
  current_boot_mode: z.enum(['uefi', 'bios']),
  pxe_interface: nstr,
});
export type InventoryBoot = z.infer<typeof InventoryBoot>;

export const CollectorFailure = z.looseObject({ collector: z.string(), message: z.string() });
export type CollectorFailure = z.infer<typeof CollectorFailure>;

export const Inventory = z.looseObject({
  interfaces: z.array(InventoryInterface),
  cpu: InventoryCpu,
  disks: z.array(InventoryDisk),
  memory: InventoryMemory,
  bmc_address: nstr,
  bmc_v6address: onstr,
  bmc_mac: onstr,
  system_vendor: InventorySystemVendor,
  boot: InventoryBoot,
  hostname: nstr,
  /** Kiln addition: what the agent could not collect, so the conductor can show it. */
  kiln_collector_failures: z.optional(z.array(CollectorFailure)),
});
/** The inventory's named members (the index signature of the extra keys left out of the type). */
export type Inventory = KnownKeys<z.infer<typeof Inventory>>;
type KnownKeys<T> = { [K in keyof T as string extends K ? never : K]: T[K] };

/** What Kiln's own agent reports: an Inventory that always says what it could not collect. */
export type KilnInventory = Inventory & { kiln_collector_failures: CollectorFailure[] };

/** A failed parse as one line naming each bad field's path, and the issues for `details`. */
export interface WireProblem {
  message: string;
  issues: { path: string; message: string }[];
}

interface WireIssue {
  path: readonly PropertyKey[];
  message: string;
  expected?: unknown;
  values?: readonly unknown[];
}

/** zod/mini (the agent) carries no message locale: say what was expected instead of "Invalid input". */
function issueMessage(i: WireIssue): string {
  if (i.message !== 'Invalid input') return i.message;
  if (i.expected) return `expected ${String(i.expected)}`;
  if (i.values) return `expected one of ${i.values.map((v) => JSON.stringify(v)).join(', ')}`;
  return i.message;
}

export function wireProblem(error: { issues: readonly WireIssue[] }): WireProblem {
  const issues = error.issues.map((i) => ({
    path: i.path.map(String).join('.') || '(root)',
    message: issueMessage(i),
  }));
  return { issues, message: issues.map((i) => `${i.path}: ${i.message}`).join('; ') };
}

/** Parse wire data, or return what is wrong with it (paths relative to `prefix`). */
export function checkWire<T>(
  schema: z.ZodMiniType<T>,
  input: unknown,
  prefix?: string,
): { ok: true; data: T } | ({ ok: false } & WireProblem) {
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, data: r.data };
  const p = wireProblem({
    issues: r.error.issues.map((i) => ({ ...i, path: prefix ? [prefix, ...i.path] : i.path })),
  });
  return { ok: false, ...p };
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
