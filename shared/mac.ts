// MAC addresses, one vocabulary for the whole code base: every place that reads a MAC from a
// person, a packet, a kernel command line or an inventory goes through here, so they all accept
// the same spellings and store the same one (lower-case, colon-separated: aa:bb:cc:dd:ee:ff).
//
// Accepted spellings (case-insensitive, surrounding blanks ignored):
//   aa:bb:cc:dd:ee:ff   aa-bb-cc-dd-ee-ff   (mixed ":" and "-" too)
//   aabb.ccdd.eeff      (Cisco)             aabbccddeeff   (bare)

const GROUPED = /^[0-9a-f]{2}(?:[:-][0-9a-f]{2})*$/;
const CISCO = /^([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})$/;
const BARE = /^[0-9a-f]{12}$/;

/** The octets of a hardware address written in one of the accepted spellings, or null. */
function octets(input: unknown): number[] | null {
  if (typeof input !== 'string') return null;
  const s = input.trim().toLowerCase();
  let hex: string;
  if (GROUPED.test(s)) hex = s.replace(/[:-]/g, '');
  else if (BARE.test(s)) hex = s;
  else {
    const cisco = CISCO.exec(s);
    if (!cisco) return null;
    hex = cisco.slice(1).join('');
  }
  return hex.match(/../g)!.map((x) => Number.parseInt(x, 16));
}

/** Bytes as lower-case colon-separated hex (aa:bb:cc:dd:ee:ff for six of them). */
export function formatMac(bytes: ArrayLike<number>): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** An Ethernet MAC in any accepted spelling as aa:bb:cc:dd:ee:ff; null if it is not one. */
export function normaliseMac(input: unknown): string | null {
  const o = octets(input);
  return o?.length === 6 ? formatMac(o) : null;
}

/**
 * A hardware address of 1 to 16 octets (DHCP's chaddr, whose length is the packet's hlen), in
 * the accepted spellings; null if it is not one.
 */
export function hardwareAddressBytes(input: unknown): Uint8Array | null {
  const o = octets(input);
  return o && o.length >= 1 && o.length <= 16 ? Uint8Array.from(o) : null;
}

const UNASSIGNED = new Set(['00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff']);

/**
 * A MAC that can identify a NIC: normalised, and null for the all-zero address (tunnels, NICs
 * whose firmware never set one) and the broadcast address, which many machines share and so
 * identify none of them.
 */
export function nicMac(input: unknown): string | null {
  const mac = normaliseMac(input);
  return mac && !UNASSIGNED.has(mac) ? mac : null;
}

const PXELINUX = /^[0-9a-f]{2}-((?:[0-9a-f]{2}-){5}[0-9a-f]{2})$/;

/**
 * BOOTIF as pxelinux and iPXE send it: "01-aa-bb-cc-dd-ee-ff" (hardware type first) or a plain
 * MAC in any accepted spelling; a leading "BOOTIF=" (the kernel command-line token) is allowed.
 */
export function parseBootif(input: unknown): string | null {
  if (typeof input !== 'string') return null;
  const s = input
    .trim()
    .replace(/^bootif=/i, '')
    .toLowerCase();
  const pxelinux = PXELINUX.exec(s);
  return normaliseMac(pxelinux ? pxelinux[1] : s);
}

/** BOOTIF from a whole kernel command line ("... BOOTIF=01-aa-bb-... ..."); the last one wins. */
export function bootifFromCmdline(cmdline: string): string | null {
  const tokens = cmdline.split(/\s+/).filter((t) => /^bootif=/i.test(t));
  return tokens.length ? parseBootif(tokens.at(-1)!) : null;
}

const PREFIX = /^[0-9a-f]+(?:[:.\s-]+[0-9a-f]+)*$/;

/**
 * A test for "does this MAC start with one of these prefixes" (the enrollment allow-list, the
 * DHCP boot policy). Prefixes are hex digits with optional ":", "-", "." or blanks between them,
 * any case: "52:54:00", "52-54-00-12", "525400", "5254.00" are all the same kind of prefix, and a
 * prefix may end inside an octet ("52:5"). A prefix that is empty or holds anything else throws a
 * RangeError: dropping the odd characters would widen what it admits, and an empty one would
 * admit every machine. The MAC may be any hardware address in an accepted spelling; one that is
 * not never matches.
 */
export function macPrefixMatcher(prefixes: readonly string[]): (mac: string) => boolean {
  const norm = prefixes.map((p) => {
    const s = p.trim().toLowerCase();
    if (!PREFIX.test(s)) {
      throw new RangeError(
        s.replace(/[:.\s-]/g, '') === ''
          ? 'an empty MAC prefix would allow every machine'
          : `not a MAC prefix: ${JSON.stringify(p)} (give hex digits, like 52:54:00)`,
      );
    }
    return s.replace(/[:.\s-]/g, '');
  });
  return (mac) => {
    const o = octets(mac);
    if (!o) return false;
    const hex = formatMac(o).replace(/:/g, '');
    return norm.some((p) => hex.startsWith(p));
  };
}
