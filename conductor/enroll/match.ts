// Who is this machine? A returning machine is recognised by its hardware, not by one NIC: any
// known MAC, the SMBIOS system UUID, or the system serial number. So a swapped NIC or disk finds
// the same node instead of creating a duplicate (the way Digital Rebar fingerprints machines).
import type { Inventory } from '../../shared/wire/ipa.ts';
import type { NodeRecord, Store } from '../store/store.ts';

export interface Fingerprint {
  macs: string[];
  systemUuid: string | null;
  serial: string | null;
}

/** Placeholder values firmware ships instead of real identifiers; they identify nothing. */
const JUNK =
  /^(0+|f+|none|not specified|to be filled by o\.e\.m\.|default string|system serial number|0123456789|1234567890)$/i;

function real(v: string | null | undefined): string | null {
  if (!v) return null;
  const s = v.trim();
  const bare = s.replace(/[-\s]/g, '');
  return s && !JUNK.test(s) && !JUNK.test(bare) ? s.toLowerCase() : null;
}

export function fingerprint(inv: Partial<Inventory>): Fingerprint {
  const macs = (inv.interfaces ?? [])
    .map((i) => String(i.mac_address ?? '').toLowerCase())
    .filter((m) => /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m) && m !== '00:00:00:00:00:00');
  return {
    macs: [...new Set(macs)],
    systemUuid: real(inv.system_vendor?.system_uuid),
    serial: real(inv.system_vendor?.serial_number),
  };
}

export type MatchReason = 'mac' | 'system_uuid' | 'serial';

export async function findNode(
  store: Store,
  fp: Fingerprint,
): Promise<{ node: NodeRecord; by: MatchReason } | undefined> {
  for (const mac of fp.macs) {
    const port = await store.ports.getByAddress(mac);
    if (port) {
      const node = await store.nodes.get(port.node_uuid);
      if (node) return { node, by: 'mac' };
    }
  }
  if (!fp.systemUuid && !fp.serial) return undefined;
  // Enrollment is rare and a scan is cheap next to a PXE boot; no index needed.
  let marker: string | undefined;
  for (;;) {
    const page = await store.nodes.list({ marker, limit: 1000 });
    for (const node of page) {
      if (!node.inventory) continue;
      const known = fingerprint(node.inventory as Partial<Inventory>);
      if (fp.systemUuid && known.systemUuid === fp.systemUuid) return { node, by: 'system_uuid' };
      if (fp.serial && known.serial === fp.serial) return { node, by: 'serial' };
    }
    if (page.length < 1000) return undefined;
    marker = page.at(-1)!.uuid;
  }
}
