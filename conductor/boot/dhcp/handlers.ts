// DHCP behaviours as near-pure functions: (packet, meta, deps) → reply | null. The server owns
// sockets; these own the protocol (RFC 2131 for full mode, PXE 2.1 for proxy mode).
import type { Logger } from '../../../shared/log.ts';
import {
  type BootTarget,
  type ClientInfo,
  clientInfo,
  decideBoot,
  type Loaders,
  type NetbootUrls,
} from './netboot.ts';
import {
  encodeIp,
  encodeIps,
  encodeSubOptions,
  encodeU32,
  IpxeOpt,
  MessageType,
  Opt,
  PxeOpt,
} from './options.ts';
import { BOOTREPLY, BOOTREQUEST, type DhcpPacket, FLAG_BROADCAST, macOf } from './packet.ts';
import type { BootPolicy } from './policy.ts';
import type { LeasePool } from './pool.ts';
import { ipToInt, type Subnet } from './subnet.ts';

export interface PacketMeta {
  /** The interface the packet arrived on, and our address there (used as server id and siaddr). */
  iface: { name: string; address: string };
  /** 67, or 4011 for the PXE boot-server port in proxy mode. */
  localPort: number;
  from: { address: string; port: number };
}

export interface Ports {
  server: number;
  client: number;
}

export interface Reply {
  packet: DhcpPacket;
  to: { address: string; port: number };
  /** Send as a broadcast (SO_BROADCAST, limited broadcast address). */
  broadcast: boolean;
  /** For logs. */
  summary: { type: string; mac: string; yiaddr?: string; file?: string; boot?: BootTarget['kind'] };
}

export interface BootDeps {
  policy: BootPolicy;
  loaders: Loaders;
  urls: NetbootUrls;
  /** User classes that mean "this is already iPXE" (default ["iPXE"]). */
  ipxeUserClasses: readonly string[];
  ports: Ports;
  log: Logger;
}

export interface FullDeps extends BootDeps {
  pool: LeasePool;
}

const ZERO = '0.0.0.0';
const exhaustedWarned = new WeakMap<Subnet, number>();

function baseReply(req: DhcpPacket, type: number, serverIp: string): DhcpPacket {
  return {
    op: BOOTREPLY,
    htype: req.htype,
    hlen: req.hlen,
    hops: 0,
    xid: req.xid,
    secs: 0,
    flags: req.flags,
    ciaddr: ZERO,
    yiaddr: ZERO,
    siaddr: ZERO,
    giaddr: req.giaddr,
    chaddr: req.chaddr,
    sname: '',
    file: '',
    options: echoed(req, type, serverIp),
  };
}

/** 53 and 54, plus what must be copied back: client id (RFC 6842) and relay agent info (RFC 3046). */
function echoed(req: DhcpPacket, type: number, serverIp: string): Map<number, Buffer> {
  const o = new Map<number, Buffer>([
    [Opt.MESSAGE_TYPE, Buffer.from([type])],
    [Opt.SERVER_ID, encodeIp(serverIp)],
  ]);
  const clientId = req.options.get(Opt.CLIENT_ID);
  if (clientId) o.set(Opt.CLIENT_ID, clientId);
  const relay = req.options.get(Opt.RELAY_AGENT);
  if (relay && req.giaddr !== ZERO) o.set(Opt.RELAY_AGENT, relay);
  return o;
}

/** Where a reply goes (RFC 2131 4.1): relay, then the client's own address, then broadcast. */
function destination(
  req: DhcpPacket,
  type: number,
  meta: PacketMeta,
  ports: Ports,
): Pick<Reply, 'to' | 'broadcast'> {
  if (meta.localPort !== ports.server) {
    // PXE boot-server port (4011): answer whoever asked, where they asked from.
    return { to: meta.from, broadcast: false };
  }
  if (req.giaddr !== ZERO) return { to: { address: req.giaddr, port: ports.server }, broadcast: false };
  if (type !== MessageType.NAK && req.ciaddr !== ZERO)
    return { to: { address: req.ciaddr, port: ports.client }, broadcast: false };
  // A client without an address can't take unicast unless we write its ARP entry, which needs raw
  // sockets; broadcasting is always allowed (RFC 2131 4.1).
  return { to: { address: '255.255.255.255', port: ports.client }, broadcast: true };
}

function put(reply: DhcpPacket, code: number, value: Buffer): void {
  reply.options.set(code, value);
}

/** Adds the boot fields for a target. `mode` decides the proxy-only and full-only extras. */
function addBoot(
  reply: DhcpPacket,
  req: DhcpPacket,
  info: ClientInfo,
  target: BootTarget,
  serverIp: string,
  mode: 'full' | 'proxy',
): void {
  reply.siaddr = serverIp;
  if (Buffer.byteLength(target.file, 'latin1') < 128) reply.file = target.file;
  put(reply, Opt.BOOTFILE, Buffer.from(target.file, 'latin1'));
  if (target.kind === 'tftp-loader') put(reply, Opt.TFTP_SERVER, Buffer.from(serverIp, 'latin1'));
  if (target.vendorClass) put(reply, Opt.VENDOR_CLASS, Buffer.from(target.vendorClass, 'latin1'));
  if (info.pxeClient && target.kind !== 'http-loader') {
    // PXE_DISCOVERY_CONTROL = 8: take the boot file from this packet, no boot-server discovery.
    put(reply, Opt.VENDOR_SPECIFIC, encodeSubOptions([[PxeOpt.DISCOVERY_CONTROL, Buffer.from([8])]]));
  }
  const uuid = req.options.get(Opt.CLIENT_UUID);
  if (mode === 'proxy' && uuid) put(reply, Opt.CLIENT_UUID, uuid);
  if (mode === 'full' && info.ipxe) {
    // iPXE no-pxedhcp: this offer is complete, don't wait ~2 s for ProxyDHCP. Not in proxy mode,
    // where iPXE must wait for exactly that.
    put(reply, Opt.IPXE_ENCAP, encodeSubOptions([[IpxeOpt.NO_PXEDHCP, Buffer.from([1])]]));
  }
}

async function bootTarget(info: ClientInfo, serverIp: string, deps: BootDeps): Promise<BootTarget | null> {
  if (!info.netboot) return null;
  const target = decideBoot(info, serverIp, deps.loaders, deps.urls);
  if (!target) {
    deps.log.info({ mac: info.mac, archCode: info.archCode }, 'no iPXE loader for this client architecture');
    return null;
  }
  const decision = await deps.policy(info.mac, info.arch, info);
  if (decision !== 'boot') {
    deps.log.debug({ mac: info.mac }, 'boot policy ignores this client');
    return null;
  }
  return target;
}

function leaseOptions(reply: DhcpPacket, subnet: Subnet, leaseSecs: number | null, hostname?: string): void {
  if (leaseSecs !== null) {
    put(reply, Opt.LEASE_TIME, encodeU32(leaseSecs));
    put(reply, Opt.RENEWAL_TIME, encodeU32(Math.floor(leaseSecs / 2)));
    put(reply, Opt.REBINDING_TIME, encodeU32(Math.floor((leaseSecs * 7) / 8)));
  }
  put(reply, Opt.SUBNET_MASK, encodeIp(subnet.netmask));
  put(reply, Opt.BROADCAST, encodeIp(subnet.broadcast));
  const c = subnet.config;
  if (c.router) put(reply, Opt.ROUTER, encodeIp(c.router));
  if (c.dns?.length) put(reply, Opt.DNS, encodeIps(c.dns));
  if (c.domain) put(reply, Opt.DOMAIN_NAME, Buffer.from(c.domain, 'latin1'));
  if (hostname) put(reply, Opt.HOSTNAME, Buffer.from(hostname, 'latin1'));
}

function finish(
  req: DhcpPacket,
  reply: DhcpPacket,
  meta: PacketMeta,
  ports: Ports,
  target?: BootTarget | null,
): Reply {
  const type = reply.options.get(Opt.MESSAGE_TYPE)![0]!;
  const name = Object.entries(MessageType).find(([, v]) => v === type)?.[0] ?? String(type);
  if (type === MessageType.NAK && req.giaddr !== ZERO) reply.flags |= FLAG_BROADCAST;
  return {
    packet: reply,
    ...destination(req, type, meta, ports),
    summary: {
      type: name,
      mac: macOf(req),
      yiaddr: reply.yiaddr !== ZERO ? reply.yiaddr : undefined,
      file: target?.file,
      boot: target?.kind,
    },
  };
}

function nak(req: DhcpPacket, meta: PacketMeta, ports: Ports, why: string): Reply {
  const reply = baseReply(req, MessageType.NAK, meta.iface.address);
  put(reply, Opt.MESSAGE, Buffer.from(why, 'latin1'));
  return finish(req, reply, meta, ports);
}

/** The subnet a request belongs to: the relay's (giaddr) or the receiving interface's. */
function subnetOf(req: DhcpPacket, meta: PacketMeta, pool: LeasePool): Subnet | undefined {
  return pool.subnetFor(req.giaddr !== ZERO ? req.giaddr : meta.iface.address);
}

/** Full mode: addresses from the pools plus boot options for netboot clients. */
export async function handleFull(req: DhcpPacket, meta: PacketMeta, deps: FullDeps): Promise<Reply | null> {
  if (req.op !== BOOTREQUEST || meta.localPort !== deps.ports.server) return null;
  const type = req.options.get(Opt.MESSAGE_TYPE)?.[0];
  const info = clientInfo(req, deps.ipxeUserClasses);
  const subnet = subnetOf(req, meta, deps.pool);
  if (!subnet) {
    deps.log.debug(
      { mac: info.mac, giaddr: req.giaddr, iface: meta.iface.name },
      'no subnet configured for this request',
    );
    return null;
  }
  const serverIp = meta.iface.address;
  const requested = req.options.get(Opt.REQUESTED_IP);
  const requestedIp =
    requested?.length === 4 ? `${requested[0]}.${requested[1]}.${requested[2]}.${requested[3]}` : undefined;
  const serverId = req.options.get(Opt.SERVER_ID);
  const reservation = subnet.reservations.get(info.mac);

  switch (type) {
    case MessageType.DISCOVER: {
      const ip = deps.pool.offer(info.mac, subnet, requestedIp);
      if (!ip) {
        // Once per subnet per minute: a flood of new MACs must not turn into a flood of log lines.
        const now = Date.now();
        if ((exhaustedWarned.get(subnet) ?? 0) + 60_000 < now) {
          exhaustedWarned.set(subnet, now);
          deps.log.warn(
            { mac: info.mac, subnet: subnet.config.cidr },
            'address pool exhausted; no offer made (widen the range or shorten leaseTime)',
          );
        }
        return null;
      }
      const reply = baseReply(req, MessageType.OFFER, serverIp);
      reply.yiaddr = ip;
      leaseOptions(reply, subnet, subnet.leaseTime, reservation?.hostname);
      const target = await bootTarget(info, serverIp, deps);
      if (target) addBoot(reply, req, info, target, serverIp, 'full');
      return finish(req, reply, meta, deps.ports, target);
    }
    case MessageType.REQUEST: {
      let ip: string | undefined;
      if (serverId) {
        // SELECTING: the client names the server it chose.
        if (serverId.length !== 4 || serverId.readUInt32BE(0) !== ipToInt(serverIp)) {
          deps.pool.withdrawOffer(info.mac);
          return null;
        }
        ip = requestedIp;
      } else if (req.ciaddr !== ZERO) {
        ip = req.ciaddr; // RENEWING / REBINDING
      } else {
        ip = requestedIp; // INIT-REBOOT
      }
      if (!ip) return nak(req, meta, deps.ports, 'no requested address');
      if (!subnet.contains(ip)) return nak(req, meta, deps.ports, `address ${ip} is not on this network`);
      const lease = deps.pool.commit(info.mac, ip, subnet, reservation?.hostname);
      if (!lease) return nak(req, meta, deps.ports, `address ${ip} is not available`);
      const reply = baseReply(req, MessageType.ACK, serverIp);
      reply.yiaddr = ip;
      reply.ciaddr = req.ciaddr;
      leaseOptions(reply, subnet, subnet.leaseTime, reservation?.hostname);
      const target = await bootTarget(info, serverIp, deps);
      if (target) addBoot(reply, req, info, target, serverIp, 'full');
      return finish(req, reply, meta, deps.ports, target);
    }
    case MessageType.DECLINE:
      if (requestedIp) deps.pool.decline(info.mac, requestedIp);
      deps.log.info({ mac: info.mac, ip: requestedIp }, 'client declined an address (in use on the wire?)');
      return null;
    case MessageType.RELEASE:
      deps.pool.release(info.mac, req.ciaddr);
      return null;
    case MessageType.INFORM: {
      const reply = baseReply(req, MessageType.ACK, serverIp);
      reply.ciaddr = req.ciaddr;
      leaseOptions(reply, subnet, null);
      const target = await bootTarget(info, serverIp, deps);
      if (target) addBoot(reply, req, info, target, serverIp, 'full');
      return finish(req, reply, meta, deps.ports, target);
    }
    default:
      return null;
  }
}

/**
 * Proxy mode (PXE 2.1 ProxyDHCP): another server hands out addresses; Kiln answers netboot
 * clients only, with boot options and no address. Port 67 gets OFFERs (to DISCOVER); port 4011
 * gets ACKs (to the REQUEST the ROM sends there after taking an address elsewhere).
 */
export async function handleProxy(req: DhcpPacket, meta: PacketMeta, deps: BootDeps): Promise<Reply | null> {
  if (req.op !== BOOTREQUEST) return null;
  const type = req.options.get(Opt.MESSAGE_TYPE)?.[0];
  const info = clientInfo(req, deps.ipxeUserClasses);
  if (!info.netboot) return null;
  const onBootPort = meta.localPort !== deps.ports.server;
  let replyType: number;
  if (!onBootPort && type === MessageType.DISCOVER) replyType = MessageType.OFFER;
  else if (onBootPort && (type === MessageType.REQUEST || type === MessageType.INFORM))
    replyType = MessageType.ACK;
  else if (!onBootPort && type === MessageType.REQUEST) {
    // A REQUEST to port 67 is for the address server; answer only if it names us.
    const sid = req.options.get(Opt.SERVER_ID);
    if (sid?.length !== 4 || sid.readUInt32BE(0) !== ipToInt(meta.iface.address)) return null;
    replyType = MessageType.ACK;
  } else return null;
  const serverIp = meta.iface.address;
  const target = await bootTarget(info, serverIp, deps);
  if (!target) return null;
  const reply = baseReply(req, replyType, serverIp);
  if (onBootPort) reply.ciaddr = req.ciaddr;
  // The PXE spec wants option 60 "PXEClient" in every ProxyDHCP reply to a PXE ROM.
  const withVendor: BootTarget =
    target.vendorClass || !info.pxeClient ? target : { ...target, vendorClass: 'PXEClient' };
  addBoot(reply, req, info, withVendor, serverIp, 'proxy');
  return finish(req, reply, meta, deps.ports, withVendor);
}
