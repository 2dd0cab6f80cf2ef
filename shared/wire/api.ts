// Request and response shapes of the conductor's REST API. The zod schemas validate input at the
// edge and also generate the OpenAPI document, so the two can't drift apart.
import { z } from 'zod';
import { DRIVERS } from '../bmc.ts';
import { normaliseMac } from '../mac.ts';
import { POWER_TARGETS, PROVISION_ACTIONS, PROVISION_STATES } from '../states.ts';

const Json = z.record(z.string(), z.unknown());

/** A MAC in any spelling shared/mac.ts accepts, as aa:bb:cc:dd:ee:ff. */
export const MacAddress = z.string().transform((s, ctx) => {
  const mac = normaliseMac(s);
  if (mac) return mac;
  ctx.addIssue({ code: 'custom', message: 'must be a MAC address like 52:54:00:12:34:56' });
  return z.NEVER;
});

export const NodeName = z
  .string()
  .min(1)
  .max(255)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._~-]*$/,
    'may hold letters, digits, ".", "_", "~" and "-", starting with a letter or digit',
  )
  .refine((s) => !/^[0-9a-f]{8}-[0-9a-f]{4}-/.test(s), 'must not look like a UUID');

export const NodeCreate = z.strictObject({
  name: NodeName.optional(),
  uuid: z.uuid().optional(),
  bmc_address: z
    .string()
    .min(1)
    .optional()
    .describe('ipmi://user@host[:port], redfish+https://host/redfish/v1/Systems/ID or fake://'),
  bmc_password: z.string().optional().describe('Write-only; never returned'),
  properties: Json.optional(),
  extra: Json.optional(),
  ports: z.array(MacAddress).optional().describe('MAC addresses to create ports for'),
});
export type NodeCreate = z.infer<typeof NodeCreate>;

export const NodeUpdate = z.strictObject({
  name: NodeName.nullable().optional(),
  bmc_address: z.string().min(1).nullable().optional(),
  bmc_password: z.string().nullable().optional(),
  properties: Json.optional(),
  extra: Json.optional(),
  instance_info: Json.optional(),
});
export type NodeUpdate = z.infer<typeof NodeUpdate>;

export const ProvisionRequest = z.strictObject({
  target: z.enum(PROVISION_ACTIONS),
  image: z.string().min(1).optional().describe('Image name or UUID to deploy (deploy, rebuild)'),
  hostname: z.string().min(1).max(253).optional(),
  configdrive: Json.optional().describe('meta_data / user_data / network_data for the config drive'),
  clean_steps: z
    .array(z.strictObject({ interface: z.string(), step: z.string(), args: Json.optional() }))
    .optional(),
});
export type ProvisionRequest = z.infer<typeof ProvisionRequest>;

export const PowerRequest = z.strictObject({ target: z.enum(POWER_TARGETS) });
export type PowerRequest = z.infer<typeof PowerRequest>;

export const MaintenanceRequest = z.strictObject({ reason: z.string().max(1024).optional() });

export const PortCreate = z.strictObject({
  address: MacAddress,
  node: z.string().min(1).describe('Node UUID or name'),
  pxe_enabled: z.boolean().optional(),
  extra: Json.optional(),
});
export type PortCreate = z.infer<typeof PortCreate>;

export const CHECKSUM_ALGOS = ['sha256', 'sha512', 'md5'] as const;
export type ChecksumAlgo = (typeof CHECKSUM_ALGOS)[number];
export const IMAGE_FORMATS = ['raw', 'qcow2', 'gzip', 'xz', 'zstd', 'auto'] as const;

const HEX_DIGITS: Record<ChecksumAlgo, number> = { sha256: 64, sha512: 128, md5: 32 };
/**
 * A bare digest names its algorithm by its length, as Ironic's image_checksum/os_hash_value do.
 * md5 is never inferred: it must be asked for by name.
 */
const BARE_ALGO: Record<number, ChecksumAlgo> = { 64: 'sha256', 128: 'sha512' };
const CHECKSUM_FORMS =
  'sha256:HEX, sha512:HEX, md5:HEX, or a bare sha256 (64 hex digits) or sha512 (128 hex digits) digest';

/** "ALGO:HEX" or bare hex → algorithm and lower-case digest; a string says what is wrong. */
export function parseChecksum(input: string): { algo: ChecksumAlgo; hex: string } | string {
  const colon = input.indexOf(':');
  const named = colon >= 0 ? input.slice(0, colon).toLowerCase() : undefined;
  const hex = input.slice(colon + 1);
  if (named !== undefined && !(CHECKSUM_ALGOS as readonly string[]).includes(named))
    return `unknown algorithm "${named}"; use ${CHECKSUM_FORMS}`;
  if (!/^[0-9a-fA-F]+$/.test(hex)) return `"${hex.slice(0, 20)}" is not a hex digest; use ${CHECKSUM_FORMS}`;
  const algo = (named as ChecksumAlgo | undefined) ?? BARE_ALGO[hex.length];
  if (!algo) return `a bare digest of ${hex.length} hex digits names no algorithm; use ${CHECKSUM_FORMS}`;
  if (hex.length !== HEX_DIGITS[algo])
    return `a ${algo} digest has ${HEX_DIGITS[algo]} hex digits, this one has ${hex.length}; use ${CHECKSUM_FORMS}`;
  return { algo, hex: hex.toLowerCase() };
}

// Checked on the field itself rather than by a refinement of the whole object: zod runs object
// refinements even when a field already failed, so such a check would see the bad value.
const Checksum = z
  .string()
  .trim()
  .transform((s, ctx) => {
    const r = parseChecksum(s);
    if (typeof r !== 'string') return r;
    ctx.addIssue({ code: 'custom', message: r });
    return z.NEVER;
  })
  .describe(`The digest the agent verifies while writing: ${CHECKSUM_FORMS}`);

export const ImageCreate = z.strictObject({
  name: z.string().min(1).max(255),
  url: z.url({ protocol: /^https?$/ }),
  checksum: Checksum,
  format: z.enum(IMAGE_FORMATS).default('auto'),
  size: z.number().int().positive().optional().describe('Expected length in bytes of the download'),
  image_type: z.enum(['whole-disk', 'partition']).default('whole-disk'),
});
export type ImageCreate = z.infer<typeof ImageCreate>;

export const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  marker: z.string().optional(),
  provision_state: z.enum(PROVISION_STATES).optional(),
  maintenance: z.enum(['true', 'false']).optional(),
  driver: z.enum(DRIVERS).optional(),
  fields: z.string().optional(),
});

// ---- responses -------------------------------------------------------------------------------

export interface NodeView {
  uuid: string;
  name: string | null;
  driver: string;
  bmc_address: string | null;
  /** "******" when a password is stored, null otherwise. */
  bmc_password: string | null;
  provision_state: string;
  target_provision_state: string | null;
  power_state: string | null;
  last_error: string | null;
  maintenance: boolean;
  maintenance_reason: string | null;
  reservation: string | null;
  properties: Record<string, unknown>;
  extra: Record<string, unknown>;
  instance_info: Record<string, unknown>;
  inventory: Record<string, unknown> | null;
  progress: Record<string, unknown> | null;
  ports: string[];
  created_at: string;
  updated_at: string;
  provision_updated_at: string | null;
}

export interface PortView {
  uuid: string;
  address: string;
  node_uuid: string;
  pxe_enabled: boolean;
  extra: Record<string, unknown>;
  created_at: string;
}

export interface ImageView {
  uuid: string;
  name: string;
  url: string;
  checksum_algo: string;
  checksum: string;
  format: string;
  size: number | null;
  image_type: string;
  created_at: string;
}

export interface EventView {
  id: number;
  node_uuid: string;
  event: string;
  actor: string;
  result: 'ok' | 'error' | 'info';
  from_state: string | null;
  to_state: string | null;
  message: string | null;
  created_at: string;
}
