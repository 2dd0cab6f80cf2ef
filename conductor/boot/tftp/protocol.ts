// TFTP packets (RFC 1350) and option negotiation (RFC 2347 OACK, 2348 blksize, 2349 timeout and
// tsize, 7440 windowsize). Parsing returns a tagged result instead of throwing.

export const Op = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  OPTION_REFUSED: 8,
} as const;

export interface TftpRequest {
  op: typeof Op.RRQ | typeof Op.WRQ;
  filename: string;
  mode: string;
  /** Option names lower-cased; values as sent. */
  options: Map<string, string>;
}

export type ParsedRequest = { ok: true; req: TftpRequest } | { ok: false; reason: string };

/** Parses RRQ/WRQ: opcode, then NUL-terminated filename, mode and option name/value pairs. */
export function parseRequest(buf: Buffer): ParsedRequest {
  if (buf.length < 4) return { ok: false, reason: `request is ${buf.length} bytes` };
  const op = buf.readUInt16BE(0);
  if (op !== Op.RRQ && op !== Op.WRQ) return { ok: false, reason: `opcode ${op} is not a request` };
  const strings: string[] = [];
  let start = 2;
  for (let i = 2; i < buf.length; i++) {
    if (buf[i] === 0) {
      strings.push(buf.subarray(start, i).toString('latin1'));
      start = i + 1;
    }
  }
  if (start !== buf.length) return { ok: false, reason: 'request does not end with NUL' };
  if (strings.length < 2) return { ok: false, reason: 'request lacks filename or mode' };
  const [filename, mode, ...rest] = strings as [string, string, ...string[]];
  if (rest.length % 2 !== 0) return { ok: false, reason: 'option without a value' };
  const options = new Map<string, string>();
  for (let i = 0; i < rest.length; i += 2) options.set(rest[i]!.toLowerCase(), rest[i + 1]!);
  return { ok: true, req: { op, filename, mode: mode.toLowerCase(), options } };
}

/** The 4-byte DATA header; the payload is sent after it without copying. */
export function dataHeader(block: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt16BE(Op.DATA, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function dataPacket(block: number, payload: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + payload.length);
  b.writeUInt16BE(Op.DATA, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  payload.copy(b, 4);
  return b;
}

export function errorPacket(code: number, message: string): Buffer {
  const msg = Buffer.from(message, 'latin1');
  const b = Buffer.alloc(5 + msg.length);
  b.writeUInt16BE(Op.ERROR, 0);
  b.writeUInt16BE(code, 2);
  msg.copy(b, 4);
  return b;
}

export function oackPacket(options: Array<[string, string]>): Buffer {
  const parts = [Buffer.from([0, Op.OACK])];
  for (const [k, v] of options) parts.push(Buffer.from(`${k}\0${v}\0`, 'latin1'));
  return Buffer.concat(parts);
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** Milliseconds. */
  timeoutMs: number;
  /** Options to echo in the OACK (empty: no OACK, plain RFC 1350). */
  oack: Array<[string, string]>;
}

export interface Limits {
  maxBlksize: number;
  maxWindowsize: number;
  defaultTimeoutMs: number;
}

function intOpt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,10}$/.test(v)) return undefined;
  return Number(v);
}

/**
 * Accepts what the client asked within our limits. Out-of-range values are answered with our
 * nearest (blksize, windowsize) or left out of the OACK (timeout), never refused: a refused option
 * makes some ROMs give up instead of falling back.
 */
export function negotiate(req: TftpRequest, size: number, limits: Limits): Negotiated {
  const n: Negotiated = { blksize: 512, windowsize: 1, timeoutMs: limits.defaultTimeoutMs, oack: [] };
  const blk = intOpt(req.options.get('blksize'));
  if (blk !== undefined && blk >= 8) {
    n.blksize = Math.min(blk, limits.maxBlksize, 65464);
    n.oack.push(['blksize', String(n.blksize)]);
  }
  const t = intOpt(req.options.get('timeout'));
  if (t !== undefined && t >= 1 && t <= 255) {
    n.timeoutMs = t * 1000;
    n.oack.push(['timeout', String(t)]);
  }
  if (req.options.has('tsize')) n.oack.push(['tsize', String(size)]);
  const win = intOpt(req.options.get('windowsize'));
  if (win !== undefined && win >= 1) {
    n.windowsize = Math.min(win, limits.maxWindowsize, 65535);
    n.oack.push(['windowsize', String(n.windowsize)]);
  }
  return n;
}
