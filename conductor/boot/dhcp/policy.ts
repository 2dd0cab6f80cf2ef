// Whether a netboot client gets a boot file. The conductor supplies the real policy (enroll unknown
// machines, ignore them, or allow only some); the small ones here cover the common cases.
import { macPrefixMatcher } from '../../../shared/mac.ts';
import type { Arch, ClientInfo } from './netboot.ts';

export type BootDecision = 'boot' | 'ignore';

export type BootPolicy = (
  mac: string,
  arch: Arch | undefined,
  info: ClientInfo,
) => BootDecision | Promise<BootDecision>;

/** Boot every netboot client (first-boot enrollment of anything that PXE-boots). */
export const bootAll: BootPolicy = () => 'boot';

/** Boot nobody: DHCP still hands out addresses in full mode, but no boot file. */
export const ignoreAll: BootPolicy = () => 'ignore';

/**
 * Boot only MACs that start with one of the prefixes ("52:54:00", "52-54-00-12", "525400" all
 * work; case-insensitive; see shared/mac.ts). Everything else is ignored.
 */
export function allowMacPrefixes(prefixes: string[]): BootPolicy {
  const allowed = macPrefixMatcher(prefixes);
  return (mac) => (allowed(mac) ? 'boot' : 'ignore');
}
