// Who is this machine? A returning machine is recognised by its hardware, not by one NIC: any
// known MAC, the SMBIOS system UUID, or the system serial number. So a swapped NIC or disk finds
// the same node instead of creating a duplicate (the way Digital Rebar fingerprints machines).
import type { Inventory } from '../../shared/wire/ipa.ts';
import { inventoryMacs } from '../nodes/from-inventory.ts';
import type { NodeRecord, Store } from '../store/store.ts';

export interface Fingerprint {
  macs: string[];
  systemUuid: string | null;
  serial: string | null;
}

/**
 * Placeholder values firmware ships instead of real identifiers; they identify nothing. Compared
 * case-insensitively after trimming; dashes and spaces are ignored for the UUID-shaped ones.
 * Gathered from dmidecode output of whitebox boards, QEMU without -uuid, and the values fwupd,
 * systemd and MAAS ignore for the same reason.
 */
const PLACEHOLDERS = new Set(
  [
    'not settable',
    'not present',
    'not available',
    'not applicable',
    'not specified',
    'not defined',
    'n/a',
    'na',
    'none',
    'null',
    'unknown',
    'invalid',
    'empty',
    'default string',
    'default',
    'to be filled by o.e.m.',
    'to be filled by oem',
    'o.e.m.',
    'oem',
    'system serial number',
    'system serial#',
    'chassis serial number',
    'base board serial number',
    'serial number',
    'system uuid',
    'sys-1234567890',
    '0123456789',
    '1234567890',
    '123456789',
    '0x00000000',
    // UUIDs shipped on many boards at once (AMI defaults; the second is its mixed-endian form).
    '03000200040005000006000700080009',
    '00020003000400050006000700080009',
    '12345678123456781234567812345678',
    '00112233445566778899aabbccddeeff',
  ].map((v) => v.replace(/[-\s]/g, '')),
);

/** One character repeated (all zero, all F, all X, all space-like): a blank, not an identity. */
const REPEATED = /^(.)\1*$/;

/** The value, lower-cased, if it can identify a machine; null for blanks and placeholders. */
export function realIdentifier(v: string | null | undefined): string | null {
  if (!v) return null;
  const s = v.trim().toLowerCase();
  const bare = s.replace(/[-\s]/g, '');
  if (!bare || REPEATED.test(bare) || PLACEHOLDERS.has(bare)) return null;
  return s;
}

export function fingerprint(inv: Partial<Inventory>): Fingerprint {
  return {
    macs: inventoryMacs(inv),
    systemUuid: realIdentifier(inv.system_vendor?.system_uuid),
    serial: realIdentifier(inv.system_vendor?.serial_number),
  };
}

export type MatchReason = 'mac' | 'system_uuid' | 'serial';

export interface Identification {
  /** The node this machine is. */
  match?: { node: NodeRecord; by: MatchReason };
  /**
   * Nodes that share the machine's system UUID or serial but none of its MACs. Firmware ships
   * duplicated or placeholder identifiers more often than whole NIC sets get swapped, so these
   * are not merged: the machine is enrolled on its own and the operator is told.
   */
  suspects: Array<{ node: NodeRecord; by: MatchReason }>;
}

/**
 * Who is this machine? A known MAC decides. A system UUID or serial decides only for a node that
 * has no registered MACs (created without ports); a node that has MACs, none of them this
 * machine's, is a suspect, never a match: merging two machines into one node would deploy one
 * and report the other.
 */
export async function identify(store: Store, fp: Fingerprint): Promise<Identification> {
  for (const mac of fp.macs) {
    const port = await store.ports.getByAddress(mac);
    if (port) {
      const node = await store.nodes.get(port.node_uuid);
      if (node) return { match: { node, by: 'mac' }, suspects: [] };
    }
  }
  const suspects: Identification['suspects'] = [];
  if (!fp.systemUuid && !fp.serial) return { suspects };
  // Enrollment is rare and a scan is cheap next to a PXE boot; no index needed.
  let marker: string | undefined;
  for (;;) {
    const page = await store.nodes.list({ marker, limit: 1000 });
    for (const node of page) {
      if (!node.inventory) continue;
      const known = fingerprint(node.inventory as Partial<Inventory>);
      const by: MatchReason | null =
        fp.systemUuid && known.systemUuid === fp.systemUuid
          ? 'system_uuid'
          : fp.serial && known.serial === fp.serial
            ? 'serial'
            : null;
      if (!by) continue;
      const ports = await store.ports.list({ node_uuid: node.uuid });
      if (ports.length === 0) return { match: { node, by }, suspects };
      suspects.push({ node, by });
    }
    if (page.length < 1000) return { suspects };
    marker = page.at(-1)!.uuid;
  }
}
