// The DHCP server: sockets, one per configured interface, each restricted to its interface with
// SO_BINDTODEVICE (see bind-device.ts for why and how). Every datagram is parsed and handed to the
// mode's handler; nothing a client sends can throw out of here.
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import { isKilnError, KilnError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/log.ts';
import { bindToDevice } from './bind-device.ts';
import { DhcpFloodGuard, type DhcpRateLimit, dhcpRateLimit } from './flood.ts';
import {
  type FullDeps,
  handleFull,
  handleProxy,
  type PacketMeta,
  type Ports,
  type Reply,
} from './handlers.ts';
import { type LeaseStore, MemoryLeaseStore } from './lease-store.ts';
import { DEFAULT_LOADERS, type Loaders, type NetbootUrls } from './netboot.ts';
import { messageTypeName, Opt } from './options.ts';
import { encodePacket, macOf, parsePacket } from './packet.ts';
import type { BootPolicy } from './policy.ts';
import { LeasePool } from './pool.ts';
import { Subnet, type SubnetConfig } from './subnet.ts';

const pexec = promisify(execFile);

export type DhcpMode = 'full' | 'proxy' | 'off';

export interface DhcpConfig {
  mode: DhcpMode;
  /** Interface names to serve (e.g. ["eno2"]). Each needs an IPv4 address. */
  interfaces: string[];
  /** Full mode: the address pools. A request is served from the subnet holding giaddr or the interface address. */
  subnets?: SubnetConfig[];
  /** User classes that mark an iPXE client (default ["iPXE"]). */
  ipxeUserClasses?: string[];
  loaders?: Loaders;
  /** Ports, for tests and benchmarks; defaults 67/68/4011. */
  ports?: { server?: number; client?: number; pxe?: number };
  /** Flood protection (boot.dhcp.rate_limit); what is left out takes its default (flood.ts). */
  rateLimit?: Partial<DhcpRateLimit>;
}

export interface DhcpDeps {
  policy: BootPolicy;
  urls: NetbootUrls;
  log: Logger;
  /** Full mode: where leases persist (FileLeaseStore in production). Memory when absent. */
  leaseStore?: LeaseStore;
}

export interface DhcpStats {
  received: number;
  replied: number;
  malformed: number;
  failed: number;
  /** Dropped by the flood limits: over a MAC's rate, or over the rate for new clients. */
  limited: number;
  /** Parsed requests by message type, lower case (discover, request, …; none: option 53 absent or unknown). */
  byType: Record<string, number>;
}

export interface DhcpServer {
  stats: DhcpStats;
  /** Addresses in use per interface (our server id there). */
  addresses: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * The first IPv4 address of an interface. Node's list leaves out interfaces without carrier (a
 * tap before its VM starts, a NIC with the cable out), so those are asked of iproute2: the DHCP
 * socket can be bound before the link comes up.
 */
export async function interfaceAddress(name: string): Promise<string> {
  const v4 = networkInterfaces()[name]?.find((a) => a.family === 'IPv4');
  if (v4) return v4.address;
  let out: string;
  try {
    out = (await pexec('ip', ['-4', '-o', 'addr', 'show', 'dev', name], { timeout: 10_000 })).stdout;
  } catch {
    throw new KilnError(
      'CONFIG_INVALID',
      `boot interface ${name} does not exist; check boot.dhcp.interfaces (ip -br link)`,
    );
  }
  const m = /\binet (\d+\.\d+\.\d+\.\d+)\//.exec(out);
  if (!m) {
    throw new KilnError(
      'CONFIG_INVALID',
      `boot interface ${name} has no IPv4 address; add one (ip addr add …) or drop it from boot.dhcp.interfaces`,
    );
  }
  return m[1]!;
}

function bindSocket(port: number, address: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const fail = (err: Error) => {
      s.close();
      reject(
        new KilnError(
          'CONFIG_INVALID',
          `DHCP cannot listen on ${address}:${port}: ${err.message}. Another DHCP server holding the port without SO_REUSEADDR? Stop it, or run Kiln in proxy mode or with dhcp mode off`,
          { cause: err },
        ),
      );
    };
    s.once('error', fail);
    s.bind({ port, address }, () => {
      s.off('error', fail);
      resolve(s);
    });
  });
}

export async function startDhcpServer(config: DhcpConfig, deps: DhcpDeps): Promise<DhcpServer> {
  const stats: DhcpStats = { received: 0, replied: 0, malformed: 0, failed: 0, limited: 0, byType: {} };
  const log = deps.log;
  if (config.mode === 'off') return { stats, addresses: {}, stop: async () => {} };
  const ports: Ports & { pxe: number } = {
    server: config.ports?.server ?? 67,
    client: config.ports?.client ?? 68,
    pxe: config.ports?.pxe ?? 4011,
  };
  const store = deps.leaseStore ?? new MemoryLeaseStore();
  const bootDeps = {
    policy: deps.policy,
    loaders: config.loaders ?? DEFAULT_LOADERS,
    urls: deps.urls,
    ipxeUserClasses: config.ipxeUserClasses ?? ['iPXE'],
    ports,
    log,
  };
  const limits = dhcpRateLimit(config.rateLimit);
  const guard = new DhcpFloodGuard(limits);
  let pool: LeasePool | null = null;
  let handle: (req: ReturnType<typeof parsePacket>, meta: PacketMeta) => Promise<Reply | null>;
  if (config.mode === 'full') {
    if (!config.subnets?.length)
      throw new KilnError('CONFIG_INVALID', 'DHCP mode full needs at least one subnet in boot.dhcp.subnets');
    pool = new LeasePool(
      config.subnets.map((s) => new Subnet(s)),
      store,
      Date.now,
      { maxOfferedFraction: limits.maxOfferedFraction },
    );
    const full: FullDeps = { ...bootDeps, pool };
    handle = (req, meta) => handleFull(req, meta, full);
  } else {
    handle = (req, meta) => handleProxy(req, meta, bootDeps);
  }

  const sockets: dgram.Socket[] = [];
  const addresses: Record<string, string> = {};
  let stopped = false;
  // Once a minute at most: a flood must not become a flood of log lines.
  let limitedWarnedAt = 0;

  const listen = (
    socket: dgram.Socket,
    iface: { name: string; address: string },
    localPort: number,
    isReady: () => boolean,
  ) => {
    socket.on('error', (err) => log.error({ err, iface: iface.name, port: localPort }, 'DHCP socket error'));
    socket.on('message', (msg, rinfo) => {
      if (stopped || !isReady()) return;
      stats.received++;
      let req: ReturnType<typeof parsePacket>;
      try {
        req = parsePacket(msg);
      } catch (err) {
        stats.malformed++;
        if (isKilnError(err) && err.code === 'DHCP_MALFORMED')
          log.debug(
            { from: rinfo.address, iface: iface.name, reason: err.message },
            'dropped malformed DHCP packet',
          );
        else log.warn({ err, from: rinfo.address }, 'DHCP parser failed unexpectedly');
        return;
      }
      const type = messageTypeName(req.options.get(Opt.MESSAGE_TYPE)?.[0])?.toLowerCase() ?? 'none';
      stats.byType[type] = (stats.byType[type] ?? 0) + 1;
      const mac = macOf(req);
      const verdict = guard.admit(mac, pool?.knows(mac) ?? false);
      if (verdict !== 'ok') {
        stats.limited++;
        const now = Date.now();
        if (limitedWarnedAt + 60_000 < now) {
          limitedWarnedAt = now;
          log.warn(
            { iface: iface.name, mac, reason: verdict, limited: stats.limited, limits },
            'DHCP requests over the rate limit are dropped (boot.dhcp.rate_limit); a flood on the provisioning network?',
          );
        }
        return;
      }
      const meta: PacketMeta = { iface, localPort, from: { address: rinfo.address, port: rinfo.port } };
      handle(req, meta)
        .then((reply) => {
          if (!reply || stopped) return;
          const buf = encodePacket(reply.packet);
          socket.send(buf, reply.to.port, reply.to.address, (err) => {
            if (err) {
              stats.failed++;
              log.warn({ err, to: reply.to, mac: reply.summary.mac }, 'sending DHCP reply failed');
            }
          });
          stats.replied++;
          if (reply.summary.boot)
            log.info({ iface: iface.name, ...reply.summary }, 'sent DHCP reply with boot file');
          else log.debug({ iface: iface.name, ...reply.summary }, 'sent DHCP reply');
        })
        .catch((err) => {
          stats.failed++;
          log.error({ err, iface: iface.name, from: rinfo.address }, 'DHCP handler failed; request dropped');
        });
    });
  };

  try {
    for (const name of config.interfaces) {
      const address = await interfaceAddress(name);
      addresses[name] = address;
      const iface = { name, address };
      const s = await bindSocket(ports.server, '0.0.0.0');
      sockets.push(s);
      let ready = false;
      listen(s, iface, ports.server, () => ready);
      await bindToDevice(s, name);
      s.setBroadcast(true);
      ready = true;
      if (config.mode === 'proxy') {
        // Port 4011 only ever gets unicast to our address, so binding the address is enough.
        const p = await bindSocket(ports.pxe, address);
        sockets.push(p);
        listen(p, iface, ports.pxe, () => true);
      }
      log.info({ iface: name, address, mode: config.mode, port: ports.server }, 'DHCP listening');
    }
  } catch (err) {
    for (const s of sockets) s.close();
    store.close();
    throw err;
  }

  return {
    stats,
    addresses,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
      store.close();
    },
  };
}
