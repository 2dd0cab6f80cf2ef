// DHCPv4 packet codec (RFC 2131 section 2 layout, RFC 2132 options, RFC 3396 long options).
// parsePacket never lets a RangeError out: any malformed input becomes a DhcpParseError that
// says which field is wrong, so the server can log one line and drop the datagram.
import { KilnError } from '../../../shared/errors.ts';
import { formatMac, hardwareAddressBytes } from '../../../shared/mac.ts';
import { decodeText, Opt } from './options.ts';

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
const MAGIC = 0x63825363;
/** Fixed BOOTP header (236 bytes) plus the magic cookie. */
const HEADER_LEN = 240;
/** RFC 1542: relays may drop BOOTP messages shorter than 300 bytes, so replies are padded to it. */
const MIN_REPLY_LEN = 300;
/** Bit 15 of flags: the client can't receive unicast before it has an address (RFC 2131 4.1). */
export const FLAG_BROADCAST = 0x8000;

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** 16 bytes as on the wire; the hardware address is the first hlen of them. */
  chaddr: Buffer;
  sname: string;
  file: string;
  /** Option values by code; repeated codes are already concatenated (RFC 3396). */
  options: Map<number, Buffer>;
}

/** A packet that can't be parsed (code DHCP_MALFORMED): the server drops it. */
export class DhcpParseError extends KilnError {
  constructor(message: string) {
    super('DHCP_MALFORMED', message);
  }
}

function ipAt(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.subarray(0, nul === -1 ? buf.length : nul).toString('latin1');
}

/** Reads an options area into `into`, concatenating repeats. Returns the overload value if seen. */
function readOptions(area: Buffer, where: string, into: Map<number, Buffer>): void {
  let i = 0;
  while (i < area.length) {
    const code = area[i]!;
    if (code === Opt.PAD) {
      i++;
      continue;
    }
    if (code === Opt.END) return;
    if (i + 1 >= area.length)
      throw new DhcpParseError(`option ${code} in ${where} at offset ${i} has no length byte`);
    const len = area[i + 1]!;
    if (i + 2 + len > area.length) {
      throw new DhcpParseError(
        `option ${code} in ${where} at offset ${i} claims ${len} bytes but ${area.length - i - 2} remain`,
      );
    }
    const value = area.subarray(i + 2, i + 2 + len);
    const prev = into.get(code);
    into.set(code, prev ? Buffer.concat([prev, value]) : Buffer.from(value));
    i += 2 + len;
  }
  // No End option: tolerated, many embedded clients stop at the buffer's end.
}

export function parsePacket(buf: Buffer): DhcpPacket {
  if (buf.length < HEADER_LEN) {
    throw new DhcpParseError(`packet is ${buf.length} bytes; a DHCP message has at least ${HEADER_LEN}`);
  }
  const op = buf[0]!;
  if (op !== BOOTREQUEST && op !== BOOTREPLY) throw new DhcpParseError(`op is ${op}; expected 1 or 2`);
  const hlen = buf[2]!;
  if (hlen > 16) throw new DhcpParseError(`hlen is ${hlen}; chaddr holds at most 16 bytes`);
  if (buf.readUInt32BE(236) !== MAGIC)
    throw new DhcpParseError('no DHCP magic cookie (plain BOOTP is not served)');
  const options = new Map<number, Buffer>();
  readOptions(buf.subarray(HEADER_LEN), 'options', options);
  let sname = cString(buf.subarray(44, 108));
  let file = cString(buf.subarray(108, 236));
  // RFC 2132 9.3: file and/or sname may carry more options. Order: file first, then sname.
  const overload = options.get(Opt.OVERLOAD);
  if (overload) {
    if (overload.length !== 1 || overload[0]! < 1 || overload[0]! > 3) {
      throw new DhcpParseError(
        `option 52 (overload) is ${overload.toString('hex')}; expected one byte 1, 2 or 3`,
      );
    }
    if (overload[0]! & 1) {
      readOptions(buf.subarray(108, 236), 'file field', options);
      file = '';
    }
    if (overload[0]! & 2) {
      readOptions(buf.subarray(44, 108), 'sname field', options);
      sname = '';
    }
  }
  return {
    op,
    htype: buf[1]!,
    hlen,
    hops: buf[3]!,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: ipAt(buf, 12),
    yiaddr: ipAt(buf, 16),
    siaddr: ipAt(buf, 20),
    giaddr: ipAt(buf, 24),
    chaddr: Buffer.from(buf.subarray(28, 44)),
    sname,
    file,
    options,
  };
}

function writeIp(buf: Buffer, off: number, ip: string): void {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${ip}`);
  }
  buf.set(parts, off);
}

function writeCString(buf: Buffer, off: number, size: number, s: string, field: string): void {
  const bytes = Buffer.from(s, 'latin1');
  if (bytes.length >= size)
    throw new RangeError(`${field} is ${bytes.length} bytes; it must fit in ${size - 1}`);
  bytes.copy(buf, off);
}

/**
 * Serialises a packet. Option 53 goes first (some PXE ROMs look only there) and 54 second; the
 * rest keep insertion order. Values over 255 bytes are split into repeats (RFC 3396).
 */
export function encodePacket(p: DhcpPacket): Buffer {
  const head = Buffer.alloc(HEADER_LEN);
  head[0] = p.op;
  head[1] = p.htype;
  head[2] = p.hlen;
  head[3] = p.hops;
  head.writeUInt32BE(p.xid >>> 0, 4);
  head.writeUInt16BE(p.secs, 8);
  head.writeUInt16BE(p.flags, 10);
  writeIp(head, 12, p.ciaddr);
  writeIp(head, 16, p.yiaddr);
  writeIp(head, 20, p.siaddr);
  writeIp(head, 24, p.giaddr);
  p.chaddr.copy(head, 28, 0, Math.min(16, p.chaddr.length));
  writeCString(head, 44, 64, p.sname, 'sname');
  writeCString(head, 108, 128, p.file, 'file');
  head.writeUInt32BE(MAGIC, 236);

  const order = [...p.options.keys()].sort((a, b) => rank(a) - rank(b));
  const parts: Buffer[] = [head];
  for (const code of order) {
    if (code === Opt.PAD || code === Opt.END) continue;
    const value = p.options.get(code)!;
    if (value.length === 0) {
      parts.push(Buffer.from([code, 0]));
      continue;
    }
    for (let off = 0; off < value.length; off += 255) {
      const chunk = value.subarray(off, off + 255);
      parts.push(Buffer.from([code, chunk.length]), chunk);
    }
  }
  parts.push(Buffer.from([Opt.END]));
  let out = Buffer.concat(parts);
  if (out.length < MIN_REPLY_LEN) out = Buffer.concat([out, Buffer.alloc(MIN_REPLY_LEN - out.length)]);
  return out;
}

function rank(code: number): number {
  if (code === Opt.MESSAGE_TYPE) return -2;
  if (code === Opt.SERVER_ID) return -1;
  if (code === Opt.RELAY_AGENT) return 1; // RFC 3046: relay agent information goes last
  return 0; // stable sort keeps insertion order for the rest
}

/** Hardware address as lower-case aa:bb:cc:dd:ee:ff (hlen bytes of chaddr). */
export function macOf(p: DhcpPacket): string {
  const n = Math.min(p.hlen || 6, 16);
  return formatMac(p.chaddr.subarray(0, n));
}

export function macToBytes(mac: string): Buffer {
  const bytes = hardwareAddressBytes(mac);
  if (!bytes) throw new RangeError(`not a hardware address: ${mac}`);
  return Buffer.from(bytes);
}

/** A blank BOOTREQUEST for tests and tools; chaddr from the MAC string. */
export function newRequest(mac: string, xid: number, options: Array<[number, Buffer]>): DhcpPacket {
  const hw = macToBytes(mac);
  const chaddr = Buffer.alloc(16);
  hw.copy(chaddr);
  return {
    op: BOOTREQUEST,
    htype: 1,
    hlen: hw.length,
    hops: 0,
    xid,
    secs: 0,
    flags: 0,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr,
    sname: '',
    file: '',
    options: new Map(options),
  };
}

/** Short human summary for logs. */
export function describe(p: DhcpPacket): { xid: string; mac: string; vendorClass?: string } {
  return { xid: p.xid.toString(16), mac: macOf(p), vendorClass: decodeText(p.options.get(Opt.VENDOR_CLASS)) };
}
