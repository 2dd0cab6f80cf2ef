// Per-node driver options (node.properties.bmc_options), checked with one zod schema per driver.
// Unknown keys are errors rather than ignored, so a typo such as "cipher_suit" is reported at
// enrolment instead of silently running with the default.
import { z } from 'zod';
import { KilnError } from '../../shared/errors.ts';

const Seconds = z.number().positive().max(600);

const Common = {
  /** Attempts per BMC call before giving up (transient failures only). */
  tries: z.number().int().min(1).max(10).default(3),
  /** Wait before the second attempt; doubles each time. */
  backoff_ms: z.number().int().min(0).max(60_000).default(500),
  /** After on/off, how long to wait for the BMC to report the new state; 0 = don't check. */
  power_wait_s: z.number().min(0).max(600).default(30),
};

export const IpmiOptions = z.strictObject({
  ...Common,
  /** ipmitool -I: lanplus (IPMI 2.0, RMCP+) or lan (IPMI 1.5). */
  interface: z.enum(['lanplus', 'lan']).default('lanplus'),
  /** ipmitool -C. 3 (AES-128, SHA-1) is the one nearly every BMC supports; 17 adds SHA-256. */
  cipher_suite: z.number().int().min(0).max(17).default(3),
  /** ipmitool -L. */
  privilege_level: z
    .string()
    .transform((s) => s.toUpperCase())
    .pipe(z.enum(['CALLBACK', 'USER', 'OPERATOR', 'ADMINISTRATOR']))
    .default('ADMINISTRATOR'),
  /** ipmitool -p when bmc_address names no port. */
  port: z.number().int().min(1).max(65535).default(623),
  /** ipmitool -N: seconds to wait for each IPMI response. */
  timeout_s: Seconds.default(1),
  /**
   * ipmitool -R: resends of an unanswered IPMI request inside one ipmitool run. At least 1, since
   * ipmitool 1.8.19 reads 0 as its default of 4 (a dead BMC then takes 20 s per run).
   */
  retries: z.number().int().min(1).max(10).default(1),
  /** How "reboot" of a powered-on node is done: reset (warm) or cycle (off, then on). */
  reboot_method: z.enum(['reset', 'cycle']).default('reset'),
});
export type IpmiOptions = z.infer<typeof IpmiOptions>;

export const RedfishOptions = z.strictObject({
  ...Common,
  /** basic: credentials on every request. session: log in once, then X-Auth-Token. */
  auth: z.enum(['basic', 'session']).default('basic'),
  /** PEM file of the CA that signed the BMC's certificate (added to the system CAs). */
  ca_file: z.string().min(1).optional(),
  /** Skip TLS certificate verification. Only for labs: it lets anyone on the path impersonate the BMC. */
  insecure: z.boolean().default(false),
  /** Seconds to wait for each HTTP response. */
  timeout_s: Seconds.default(10),
  /** How "reboot" of a powered-on node is done. */
  reboot_method: z.enum(['ForceRestart', 'GracefulRestart', 'PowerCycle']).default('ForceRestart'),
});
export type RedfishOptions = z.infer<typeof RedfishOptions>;

export function parseDriverOptions<S extends z.ZodType>(
  schema: S,
  options: Record<string, unknown> | undefined,
  driver: string,
  address: string,
): z.infer<S> {
  const r = schema.safeParse(options ?? {});
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    const key = i.path.length ? `bmc_options.${i.path.join('.')}` : 'bmc_options';
    return { path: key, message: i.message };
  });
  throw new KilnError(
    'VALIDATION_FAILED',
    `invalid ${driver} options for BMC ${address}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}; see docs/power.md for the options each driver takes`,
    { details: problems },
  );
}
