// Which configured iPXE loaders actually exist in the TFTP root. DHCP must not hand out a boot
// file that TFTP would answer with "file not found": the firmware would stall on it instead of
// moving on. A missing arm64 loader is normal (Debian ships none), so that one is only noted.
import { stat } from 'node:fs/promises';
import type { Logger } from '../../shared/log.ts';
import type { Loaders } from './dhcp/netboot.ts';
import { resolveUnderRoot } from './tftp/resolve.ts';

export async function presentLoaders(loaders: Loaders, root: string, log: Logger): Promise<Loaders> {
  try {
    await stat(root);
  } catch {
    log.warn(
      { root },
      'TFTP root does not exist; no iPXE loaders will be offered until it does (restart after creating it)',
    );
    return {};
  }
  const out: Loaders = {};
  for (const key of ['bios', 'efiX64', 'efiArm64'] as const) {
    const name = loaders[key];
    if (!name) continue;
    const r = await resolveUnderRoot(root, name);
    if (r.ok) out[key] = name;
    else if (key === 'efiArm64')
      log.info(
        { root, loader: name },
        'no arm64 iPXE loader in the TFTP root; arm64 clients get no boot file',
      );
    else
      log.warn(
        { root, loader: name, arch: key },
        'iPXE loader missing from the TFTP root; clients of this architecture get no boot file (see docs/boot.md)',
      );
  }
  return out;
}
