// DHCPv4 option codes Kiln reads or writes, and codecs for the structured ones. Raw option values
// live in a Map<code, Buffer>; these helpers turn them into typed values and back. Every decoder
// returns undefined for a malformed value instead of throwing: a client that sends garbage in one
// option still gets judged on the rest of its packet.

export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  BROADCAST: 28,
  VENDOR_SPECIFIC: 43, // RFC 2132 8.4, PXE uses it for sub-options (PXE 2.1 spec)
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52, // RFC 2132 9.3
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER: 66,
  BOOTFILE: 67,
  USER_CLASS: 77, // RFC 3004
  RELAY_AGENT: 82, // RFC 3046
  CLIENT_ARCH: 93, // RFC 4578
  CLIENT_NDI: 94, // RFC 4578
  CLIENT_UUID: 97, // RFC 4578
  IPXE_ENCAP: 175, // iPXE's encapsulated settings (ipxe.org/cfg)
  END: 255,
} as const;

export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type MessageTypeName = keyof typeof MessageType;

export function messageTypeName(t: number | undefined): MessageTypeName | undefined {
  for (const [k, v] of Object.entries(MessageType)) if (v === t) return k as MessageTypeName;
  return undefined;
}

/** iPXE settings inside option 175 that Kiln sends. */
export const IpxeOpt = {
  /** no-pxedhcp: do not wait for ProxyDHCP offers (saves ~2 s per boot). */
  NO_PXEDHCP: 176,
} as const;

/** PXE sub-options inside option 43. */
export const PxeOpt = {
  /** PXE_DISCOVERY_CONTROL; bit 3 (value 8) = use the boot file in this packet, skip boot-server discovery. */
  DISCOVERY_CONTROL: 6,
} as const;

/**
 * Parses a run of code/length/value sub-options (the layout of 43, 82 and 175). Pad (0) is skipped
 * and End (255) stops; a length running past the end makes the whole value malformed.
 */
export function decodeSubOptions(buf: Buffer): Map<number, Buffer> | undefined {
  const out = new Map<number, Buffer>();
  let i = 0;
  while (i < buf.length) {
    const code = buf[i]!;
    if (code === 0) {
      i++;
      continue;
    }
    if (code === 255) break;
    if (i + 1 >= buf.length) return undefined;
    const len = buf[i + 1]!;
    if (i + 2 + len > buf.length) return undefined;
    out.set(code, buf.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  return out;
}

export function encodeSubOptions(subs: Map<number, Buffer> | Array<[number, Buffer]>): Buffer {
  const parts: Buffer[] = [];
  for (const [code, value] of subs) {
    if (value.length > 255)
      throw new RangeError(`sub-option ${code} is ${value.length} bytes; 255 is the limit`);
    parts.push(Buffer.from([code, value.length]), value);
  }
  return Buffer.concat(parts);
}

export function encodeIp(ip: string): Buffer {
  const parts = ip.split('.').map((p) => Number(p));
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${ip}`);
  }
  return Buffer.from(parts);
}

export function encodeIps(ips: string[]): Buffer {
  return Buffer.concat(ips.map(encodeIp));
}

export function decodeIp(buf: Buffer | undefined): string | undefined {
  if (buf?.length !== 4) return undefined;
  return `${buf[0]}.${buf[1]}.${buf[2]}.${buf[3]}`;
}

export function encodeU32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function decodeU32(buf: Buffer | undefined): number | undefined {
  return buf && buf.length === 4 ? buf.readUInt32BE(0) : undefined;
}

export function decodeU16(buf: Buffer | undefined): number | undefined {
  return buf && buf.length === 2 ? buf.readUInt16BE(0) : undefined;
}

/** Text options (60, 12, 15, 67): latin1 so every byte survives, trailing NULs dropped (some ROMs add one). */
export function decodeText(buf: Buffer | undefined): string | undefined {
  if (!buf) return undefined;
  return buf.toString('latin1').replace(/\0+$/, '');
}

/**
 * Option 77. RFC 3004 says a list of length-prefixed class names; iPXE and many ROMs send one
 * bare string ("iPXE"). A value that parses exactly as RFC 3004 is taken as that, anything else
 * as a single plain string. ("iPXE" can't be mistaken: its first byte 0x69 overruns the value.)
 */
export function decodeUserClass(buf: Buffer | undefined): string[] | undefined {
  if (!buf || buf.length === 0) return undefined;
  const items: string[] = [];
  let i = 0;
  while (i < buf.length) {
    const len = buf[i]!;
    if (len === 0 || i + 1 + len > buf.length) return [decodeText(buf)!];
    items.push(buf.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  return items;
}

export function encodeUserClassRfc3004(classes: string[]): Buffer {
  return Buffer.concat(
    classes.map((c) => Buffer.concat([Buffer.from([c.length]), Buffer.from(c, 'latin1')])),
  );
}

/** Option 93: one or more 16-bit architecture types (RFC 4578 2.1, IANA "Processor Architecture Types"). */
export function decodeClientArch(buf: Buffer | undefined): number[] | undefined {
  if (!buf || buf.length === 0 || buf.length % 2 !== 0) return undefined;
  const out: number[] = [];
  for (let i = 0; i < buf.length; i += 2) out.push(buf.readUInt16BE(i));
  return out;
}

/** Option 94: type 1 (UNDI) then major and minor version. */
export function decodeClientNdi(
  buf: Buffer | undefined,
): { type: number; major: number; minor: number } | undefined {
  if (buf?.length !== 3) return undefined;
  return { type: buf[0]!, major: buf[1]!, minor: buf[2]! };
}

/**
 * Option 97: type 0 then a 16-byte UUID (RFC 4578 2.3). Returns null when present but malformed,
 * which the netboot check treats as "not a PXE client" (smee does the same).
 */
export function decodeClientUuid(buf: Buffer | undefined): string | null | undefined {
  if (!buf) return undefined;
  if (buf.length !== 17 || buf[0] !== 0) return null;
  const h = buf.subarray(1).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Option 82 (RFC 3046): circuit id (1) and remote id (2) are the ones relays fill in. */
export function decodeRelayAgent(
  buf: Buffer | undefined,
): { circuitId?: Buffer; remoteId?: Buffer; subs: Map<number, Buffer> } | undefined {
  if (!buf) return undefined;
  const subs = decodeSubOptions(buf);
  if (!subs) return undefined;
  return { circuitId: subs.get(1), remoteId: subs.get(2), subs };
}

export function decodeParamRequestList(buf: Buffer | undefined): number[] | undefined {
  return buf ? [...buf] : undefined;
}
