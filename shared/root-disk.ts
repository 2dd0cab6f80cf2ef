// Which disk is the root disk when no root-device hints say: IPA's and Ironic's rule, the
// smallest disk of at least 4 GiB (ties by name, so the answer does not depend on listing order).
// The agent reports it to the inspector; the conductor derives local_gb from it.

export const GIB = 1024 ** 3;

/** Smaller disks are never picked as the root disk (IPA's get_os_install_device). */
export const MIN_ROOT_DISK_BYTES = 4 * GIB;

type Disk = { size?: number | null; name?: string | null };

/** Disks that may be the root disk, most preferred first: the rule's order, for callers that then skip some. */
export function rootDiskCandidates<D extends Disk>(disks: readonly D[]): D[] {
  return [...disks]
    .filter((d) => (d.size ?? 0) >= MIN_ROOT_DISK_BYTES)
    .sort((a, b) => a.size! - b.size! || (a.name ?? '').localeCompare(b.name ?? ''));
}

export function defaultRootDisk<D extends Disk>(disks: readonly D[]): D | null {
  return rootDiskCandidates(disks)[0] ?? null;
}
