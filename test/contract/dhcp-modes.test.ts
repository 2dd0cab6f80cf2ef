// Runs the DHCP mode contract against every mode: full and proxy through their handlers (no
// sockets), off through the DHCP server itself, which in that mode must open nothing.
// The conductor picks a mode's handler inside startDhcpServer; there is no exported
// mode → handler seam, so the full/proxy subjects below wire the handlers as server.ts does.
import dgram from 'node:dgram';
import {
  type FullDeps,
  handleFull,
  handleProxy,
  type PacketMeta,
} from '../../conductor/boot/dhcp/handlers.ts';
import { MemoryLeaseStore } from '../../conductor/boot/dhcp/lease-store.ts';
import { httpBootUrls } from '../../conductor/boot/dhcp/netboot.ts';
import { encodePacket, parsePacket } from '../../conductor/boot/dhcp/packet.ts';
import type { BootPolicy } from '../../conductor/boot/dhcp/policy.ts';
import { LeasePool } from '../../conductor/boot/dhcp/pool.ts';
import { startDhcpServer } from '../../conductor/boot/dhcp/server.ts';
import { Subnet } from '../../conductor/boot/dhcp/subnet.ts';
import { silentLogger } from '../../shared/log.ts';
import {
  type Delivery,
  dhcpModeContract,
  HTTP_PORT,
  LOADERS,
  POOL,
  type RunningMode,
  SERVER_IP,
} from './dhcp-modes.contract.ts';

const ports = { server: 67, client: 68, pxe: 4011 };
const metaFor = (d: Delivery): PacketMeta => ({
  iface: { name: 'eth1', address: SERVER_IP },
  localPort: d.port === 'dhcp' ? ports.server : ports.pxe,
  from: { address: d.packet.ciaddr, port: d.port === 'dhcp' ? ports.client : ports.client },
});
const bootDeps = (policy: BootPolicy) => ({
  policy,
  loaders: LOADERS,
  urls: httpBootUrls(HTTP_PORT),
  ipxeUserClasses: ['iPXE'],
  ports,
  log: silentLogger(),
});

dhcpModeContract('full', {
  design: { answers: true, leases: true, bootRequestPort: 'dhcp', ipxeNoPxedhcp: true },
  async start(policy) {
    const store = new MemoryLeaseStore();
    const deps: FullDeps = {
      ...bootDeps(policy),
      pool: new LeasePool(
        [new Subnet({ cidr: '10.0.0.0/24', rangeStart: POOL.first, rangeEnd: POOL.last, router: SERVER_IP })],
        store,
      ),
    };
    return {
      answer: async (d) => (await handleFull(d.packet, metaFor(d), deps))?.packet ?? null,
      close: async () => store.close(),
    };
  },
});

dhcpModeContract('proxy', {
  design: { answers: true, leases: false, bootRequestPort: 'pxe', ipxeNoPxedhcp: false },
  async start(policy) {
    const deps = bootDeps(policy);
    return {
      answer: async (d) => (await handleProxy(d.packet, metaFor(d), deps))?.packet ?? null,
      close: async () => {},
    };
  },
});

/** Free UDP ports on loopback, for the off-mode server's (unused) ports. */
async function freePorts(n: number): Promise<number[]> {
  const socks = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<dgram.Socket>((resolve) => {
          const s = dgram.createSocket('udp4');
          s.bind(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const out = socks.map((s) => s.address().port);
  await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return out;
}

dhcpModeContract('off', {
  design: { answers: false, leases: false, bootRequestPort: 'dhcp', ipxeNoPxedhcp: false },
  async start(policy) {
    const [server, client, pxe] = await freePorts(3);
    const dhcp = await startDhcpServer(
      {
        mode: 'off',
        interfaces: ['lo'],
        subnets: [{ cidr: '127.0.0.0/8', rangeStart: '127.0.0.100', rangeEnd: '127.0.0.199' }],
        loaders: LOADERS,
        ports: { server, client, pxe },
      },
      { policy, urls: httpBootUrls(HTTP_PORT), log: silentLogger() },
    );
    if (Object.keys(dhcp.addresses).length)
      throw new Error(`mode off listens on ${Object.keys(dhcp.addresses)}`);
    // The client side: whatever the server might send comes back here (loopback, no broadcast).
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((r) => sock.bind(client!, '0.0.0.0', () => r()));
    const received: Buffer[] = [];
    sock.on('message', (m) => received.push(m));
    const mode: RunningMode = {
      async answer(d) {
        received.length = 0;
        const port = d.port === 'dhcp' ? server! : pxe!;
        await new Promise<void>((r) => sock.send(encodePacket(d.packet), port, '127.0.0.1', () => r()));
        await new Promise((r) => setTimeout(r, 100));
        const reply = received.find((m) => {
          try {
            return parsePacket(m).xid === d.packet.xid;
          } catch {
            return false;
          }
        });
        return reply ? parsePacket(reply) : null;
      },
      async close() {
        await new Promise<void>((r) => sock.close(() => r()));
        await dhcp.stop();
      },
    };
    return mode;
  },
});
