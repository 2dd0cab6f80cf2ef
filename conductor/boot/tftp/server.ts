// Read-only TFTP server for the iPXE loaders (RFC 1350 with the 2347/2348/2349/7440 options).
//
// Not the npm `tftp` package: its transfer sockets read the opcode of any datagram without a
// length check, so a single 1-byte packet to a transfer port throws out of the socket handler and
// kills the process; it also accepts ACKs from any address (no TID check) and answers duplicate
// ACKs by resending (the Sorcerer's Apprentice bug). Those are in its transfer core, so patching
// would mean rewriting it anyway.
import dgram from 'node:dgram';
import { open, stat } from 'node:fs/promises';
import { KilnError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/log.ts';
import { ErrorCode, errorPacket, negotiate, Op, parseRequest } from './protocol.ts';
import { resolveUnderRoot } from './resolve.ts';
import { type BlockSource, Transfer } from './transfer.ts';

export interface TftpConfig {
  /** Directory served read-only (the iPXE loaders). */
  root: string;
  /** Addresses to listen on (TFTP is unicast, so the interface addresses are enough). */
  addresses: string[];
  port?: number;
  /** Largest blksize granted; 1468 fills a 1500-byte Ethernet frame without IP fragmentation. */
  maxBlksize?: number;
  /** Largest windowsize granted (RFC 7440). */
  maxWindowsize?: number;
  /** Retransmission timeout when the client doesn't ask for one. */
  timeoutMs?: number;
  retries?: number;
  /** Transfers in flight at once; more get "server busy". */
  maxTransfers?: number;
}

export interface TftpStats {
  requests: number;
  completed: number;
  refused: number;
  failed: number;
  active: number;
}

export interface TftpServer {
  stats: TftpStats;
  port: number;
  stop(): Promise<void>;
}

/** Files up to this size are kept in memory (the loaders are < 1 MiB); bigger ones are read per window. */
const CACHE_FILE_MAX = 8 << 20;
const CACHE_TOTAL_MAX = 64 << 20;

class FileCache {
  private readonly entries = new Map<string, { key: string; data: Buffer }>();
  private bytes = 0;

  async source(path: string, size: number): Promise<{ source: BlockSource; close(): Promise<void> }> {
    if (size <= CACHE_FILE_MAX) {
      const st = await stat(path);
      const key = `${st.size}:${st.mtimeMs}`;
      let e = this.entries.get(path);
      if (!e || e.key !== key) {
        const fh = await open(path, 'r');
        try {
          const data = await fh.readFile();
          if (e) this.bytes -= e.data.length;
          e = { key, data };
          this.entries.delete(path);
          this.entries.set(path, e);
          this.bytes += data.length;
          for (const [p, old] of this.entries) {
            if (this.bytes <= CACHE_TOTAL_MAX || p === path) break;
            this.entries.delete(p);
            this.bytes -= old.data.length;
          }
        } finally {
          await fh.close();
        }
      }
      const data = e.data;
      return { source: (off, len) => data.subarray(off, off + len), close: async () => {} };
    }
    const fh = await open(path, 'r');
    // Read ahead in chunks of at least 1 MiB so lock-step transfers don't do a syscall per block.
    let chunk = Buffer.alloc(0);
    let chunkOff = 0;
    return {
      source: (off, len) => {
        const end = Math.min(off + len, size);
        if (off >= chunkOff && end <= chunkOff + chunk.length)
          return chunk.subarray(off - chunkOff, end - chunkOff);
        return (async () => {
          const want = Math.max(len, 1 << 20);
          const buf = Buffer.allocUnsafe(want);
          const { bytesRead } = await fh.read(buf, 0, want, off);
          chunk = buf.subarray(0, bytesRead);
          chunkOff = off;
          return chunk.subarray(0, Math.min(len, bytesRead));
        })();
      },
      close: () => fh.close(),
    };
  }
}

export async function startTftpServer(config: TftpConfig, deps: { log: Logger }): Promise<TftpServer> {
  const log = deps.log;
  const port = config.port ?? 69;
  const limits = {
    maxBlksize: config.maxBlksize ?? 1468,
    maxWindowsize: config.maxWindowsize ?? 64,
    defaultTimeoutMs: config.timeoutMs ?? 1000,
  };
  const retries = config.retries ?? 5;
  const maxTransfers = config.maxTransfers ?? 512;
  const stats: TftpStats = { requests: 0, completed: 0, refused: 0, failed: 0, active: 0 };
  const cache = new FileCache();
  const active = new Map<string, { transfer?: Transfer; socket: dgram.Socket }>();
  const listeners: dgram.Socket[] = [];
  let stopped = false;

  const refuse = (listener: dgram.Socket, to: dgram.RemoteInfo, code: number, message: string) => {
    stats.refused++;
    listener.send(errorPacket(code, message), to.port, to.address, () => {});
  };

  const onRequest = async (
    listener: dgram.Socket,
    localAddress: string,
    msg: Buffer,
    rinfo: dgram.RemoteInfo,
  ) => {
    const parsed = parseRequest(msg);
    if (!parsed.ok) {
      // An ERROR/ACK/DATA to port 69 is a late packet of some transfer; don't answer those.
      if (msg.length >= 2 && msg.readUInt16BE(0) >= Op.DATA) return;
      return refuse(listener, rinfo, ErrorCode.ILLEGAL_OPERATION, `malformed request: ${parsed.reason}`);
    }
    const { req } = parsed;
    stats.requests++;
    const peer = `${rinfo.address}:${rinfo.port}`;
    if (req.op === Op.WRQ) {
      log.info({ peer, file: req.filename }, 'refused TFTP write request');
      return refuse(listener, rinfo, ErrorCode.ACCESS_VIOLATION, 'this TFTP server is read-only');
    }
    if (req.mode !== 'octet' && req.mode !== 'netascii') {
      return refuse(
        listener,
        rinfo,
        ErrorCode.ILLEGAL_OPERATION,
        `mode ${req.mode} is not supported; use octet`,
      );
    }
    if (active.has(peer)) return; // the client retransmitted its RRQ; the transfer is already running
    if (active.size >= maxTransfers)
      return refuse(listener, rinfo, ErrorCode.NOT_DEFINED, 'server busy, retry later');
    const slot: { transfer?: Transfer; socket: dgram.Socket } = { socket: dgram.createSocket('udp4') };
    active.set(peer, slot);
    stats.active = active.size;
    let closeSource: () => Promise<void> = async () => {};
    const done = (ok: boolean, reason?: string) => {
      active.delete(peer);
      stats.active = active.size;
      if (ok) stats.completed++;
      else stats.failed++;
      setImmediate(() => {
        try {
          slot.socket.close();
        } catch {
          // already closed
        }
      });
      void closeSource().catch(() => {});
      if (ok) log.debug({ peer, file: req.filename }, 'TFTP transfer complete');
      else log.info({ peer, file: req.filename, reason }, 'TFTP transfer failed');
    };
    try {
      const r = await resolveUnderRoot(config.root, req.filename);
      if (!r.ok) {
        active.delete(peer);
        stats.active = active.size;
        slot.socket.close();
        if (r.code === 'denied')
          log.info({ peer, file: req.filename, reason: r.reason }, 'refused TFTP read request');
        else log.debug({ peer, file: req.filename }, 'TFTP file not found');
        return refuse(
          listener,
          rinfo,
          r.code === 'denied' ? ErrorCode.ACCESS_VIOLATION : ErrorCode.FILE_NOT_FOUND,
          r.code === 'denied' ? 'access denied' : 'file not found',
        );
      }
      const src = await cache.source(r.path, r.size);
      closeSource = src.close;
      await new Promise<void>((resolve, reject) => {
        slot.socket.once('error', reject);
        slot.socket.bind(0, localAddress, () => {
          slot.socket.off('error', reject);
          resolve();
        });
      });
      await new Promise<void>((resolve, reject) =>
        slot.socket.connect(rinfo.port, rinfo.address, (err?: Error) => (err ? reject(err) : resolve())),
      );
      if (stopped) throw new Error('server stopping');
      const negotiated = negotiate(req, r.size, limits);
      slot.transfer = new Transfer({
        socket: slot.socket,
        size: r.size,
        source: src.source,
        negotiated,
        retries,
        onDone: (res) => done(res.ok, res.ok ? undefined : res.reason),
      });
      log.debug(
        {
          peer,
          file: req.filename,
          size: r.size,
          blksize: negotiated.blksize,
          windowsize: negotiated.windowsize,
        },
        'TFTP transfer started',
      );
      slot.transfer.start();
    } catch (err) {
      done(false, (err as Error).message);
      refuse(listener, rinfo, ErrorCode.NOT_DEFINED, 'internal error');
    }
  };

  try {
    for (const address of config.addresses) {
      const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
      listeners.push(s);
      await new Promise<void>((resolve, reject) => {
        const fail = (err: Error) =>
          reject(
            new KilnError(
              'CONFIG_INVALID',
              `TFTP cannot listen on ${address}:${port}: ${err.message}; check boot.tftp.addresses (the address must be on this host)`,
              { cause: err },
            ),
          );
        s.once('error', fail);
        s.bind(port, address, () => {
          s.off('error', fail);
          resolve();
        });
      });
      s.on('error', (err) => log.error({ err, address }, 'TFTP socket error'));
      s.on('message', (msg, rinfo) => {
        if (stopped) return;
        onRequest(s, address, msg, rinfo).catch((err) => log.error({ err }, 'TFTP request handling failed'));
      });
      log.info({ address, port, root: config.root }, 'TFTP listening');
    }
  } catch (err) {
    for (const s of listeners) {
      try {
        s.close();
      } catch {
        // never bound
      }
    }
    throw err;
  }

  return {
    stats,
    port: listeners[0] ? listeners[0].address().port : port,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      for (const slot of active.values()) slot.transfer?.abort('server shutting down');
      await Promise.all(listeners.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
