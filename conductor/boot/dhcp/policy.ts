// Whether a netboot client gets a boot file. The conductor supplies the real policy (enroll unknown
// machines, ignore them, or allow only some); the small ones here cover the common cases.
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
 * work; case-insensitive). Everything else is ignored.
 */
export function allowMacPrefixes(prefixes: string[]): BootPolicy {
  const norm = prefixes.map((p) => p.toLowerCase().replace(/[^0-9a-f]/g, ''));
  for (const p of norm)
    if (p.length === 0) throw new RangeError('an empty MAC prefix would allow every machine');
  return (mac) => {
    const m = mac.toLowerCase().replace(/[^0-9a-f]/g, '');
    return norm.some((p) => m.startsWith(p)) ? 'boot' : 'ignore';
  };
}
