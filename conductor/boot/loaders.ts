// Which configured iPXE loaders actually exist in the TFTP root. DHCP must not hand out a boot
// file that TFTP would answer with "file not found": the firmware would stall on it instead of
// moving on. A missing arm64 loader is normal (Debian ships none), so that one is only noted.
// A configured loader may be a symlink leading out of the root (Debian's ipxe.efi points to
// /boot/ipxe.efi): it is resolved and served under its name, and only it.
import { stat } from 'node:fs/promises';
import type { Logger } from '../../shared/log.ts';
import type { Loaders } from './dhcp/netboot.ts';
import { followOutside, resolveConfigured } from './tftp/resolve.ts';

export interface PreparedLoaders {
  /** The loaders that are there, to offer over DHCP. */
  loaders: Loaders;
  /** Stop serving the loaders that lead out of the root. */
  release(): void;
}

/** Without a logger nothing is logged (the conductor's HTTP loader route, when no boot services run). */
export async function prepareLoaders(loaders: Loaders, root: string, log?: Logger): Promise<PreparedLoaders> {
  const releases: (() => void)[] = [];
  const release = () => {
    for (const r of releases.splice(0)) r();
  };
  try {
    await stat(root);
  } catch {
    log?.warn(
      { root },
      'TFTP root does not exist; no iPXE loaders will be offered until it does (restart after creating it)',
    );
    return { loaders: {}, release };
  }
  const out: Loaders = {};
  for (const key of ['bios', 'efiX64', 'efiArm64'] as const) {
    const name = loaders[key];
    if (!name) continue;
    const r = await resolveConfigured(root, name);
    if (r.ok) {
      out[key] = name;
      if (r.outside) {
        releases.push(followOutside(r.realRoot, r.rel, r.path));
        log?.info(
          { root, loader: name, file: r.path },
          'iPXE loader is a symlink out of the TFTP root; serving the file it points to under its name',
        );
      }
    } else if (r.code === 'denied')
      log?.warn(
        { root, loader: name, arch: key, reason: r.reason },
        'iPXE loader name is refused (it must be a path inside the TFTP root); clients of this architecture get no boot file',
      );
    else if (key === 'efiArm64')
      log?.info(
        { root, loader: name },
        'no arm64 iPXE loader in the TFTP root; arm64 clients get no boot file',
      );
    else
      log?.warn(
        { root, loader: name, arch: key },
        'iPXE loader missing from the TFTP root; clients of this architecture get no boot file (see docs/boot.md)',
      );
  }
  return { loaders: out, release };
}
