// ipmitool's command line and the reading of its answers, kept apart from the driver so both can
// be checked without a BMC. The password is never an argument: `-E` makes ipmitool read it from
// IPMI_PASSWORD, because argv is world-readable through `ps` and /proc/<pid>/cmdline.
import type { BmcAddress } from '../../shared/bmc.ts';
import type { IpmiOptions } from './options.ts';

export function ipmitoolArgs(bmc: BmcAddress, opts: IpmiOptions, command: readonly string[]): string[] {
  const args = [
    '-I',
    opts.interface,
    '-H',
    bmc.host,
    '-p',
    String(bmc.port ?? opts.port),
    '-L',
    opts.privilege_level,
    '-N',
    String(opts.timeout_s),
    '-R',
    String(opts.retries),
  ];
  if (opts.interface === 'lanplus') args.push('-C', String(opts.cipher_suite));
  if (bmc.username) args.push('-U', bmc.username);
  // -v puts ipmitool's reasons for a failed session (bad HMAC, unknown user, no answer) on stderr,
  // which is what lets us tell a wrong password from an unreachable BMC. stdout stays the same.
  args.push('-E', '-v', ...command);
  return args;
}

/** Why an ipmitool run failed, as far as its stderr tells. */
export type IpmiFailureKind =
  | 'credentials'
  | 'cipher'
  | 'privilege'
  | 'dns'
  | 'no-response'
  | 'missing'
  | 'other';

// "Activate Session command failed" is IPMI 1.5's wrong password: the BMC answered the session
// challenge (so it is reachable) and then drops the activation it can't authenticate.
export function classifyIpmiFailure(stderr: string, timedOut: boolean, missing: boolean): IpmiFailureKind {
  if (missing) return 'missing';
  if (
    /RAKP 2 HMAC is invalid|unauthorized name|Invalid user name|Activate Session command failed|invalid session ?id|Authentication type .* not supported|password/i.test(
      stderr,
    )
  )
    return 'credentials';
  if (
    /invalid authentication algorithm|invalid integrity algorithm|invalid confidentiality algorithm|cipher suite/i.test(
      stderr,
    )
  )
    return 'cipher';
  if (/Insufficient privilege|requested maximum privilege level|unauthorized role/i.test(stderr))
    return 'privilege';
  if (/Address lookup for .* failed/i.test(stderr)) return 'dns';
  // ipmitool prints "Unable to get/set …" and "Error setting …" when a request got no answer at all
  // (its rsp == NULL branch), as opposed to "… failed: <completion code>" when the BMC said no.
  if (
    timedOut ||
    /Get Auth Capabilities error|No response|Request Match NOT FOUND|Unable to establish|Unable to (get|set) |Error setting Chassis|Close Session command failed/i.test(
      stderr,
    )
  )
    return 'no-response';
  return 'other';
}

/** Failures worth another try: lost packets and busy BMCs, not a refusal. */
export function isTransient(kind: IpmiFailureKind): boolean {
  return kind === 'no-response' || kind === 'other';
}

export function parsePowerStatus(stdout: string): 'on' | 'off' | null {
  const m = /Chassis Power is (on|off)/i.exec(stdout);
  return m ? (m[1]!.toLowerCase() as 'on' | 'off') : null;
}

/**
 * ipmitool exits 0 even when the BMC refuses a boot parameter, and only says so on stderr
 * ("Set Chassis Boot Parameter 5 failed: Invalid data field in request").
 */
export function bootdevRefusal(stderr: string): string | null {
  const line = stderr.split('\n').find((l) => /Boot Parameter .* failed|Set Boot Device .* failed/i.test(l));
  return line ? line.trim() : null;
}

/** The last few meaningful lines of stderr, without -v's chatter, for error messages. */
export function stderrSummary(stderr: string): string {
  return stderr
    .split(/\n| \| /)
    .map((l) => l.trim())
    .filter(
      (l) =>
        l &&
        !/^Loading IANA PEN Registry|^Running Get VSO Capabilities|^Invalid completion code received: Invalid command|^Discovered IPMB address/.test(
          l,
        ),
    )
    .slice(-3)
    .join('; ');
}
