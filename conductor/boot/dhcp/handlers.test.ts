import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { silentLogger } from '../../../shared/log.ts';
import { type BootDeps, type FullDeps, handleFull, handleProxy, type PacketMeta } from './handlers.ts';
import { MemoryLeaseStore } from './lease-store.ts';
import { httpBootUrls } from './netboot.ts';
import { decodeIp, decodeSubOptions, decodeText, decodeU32, encodeIp, Opt } from './options.ts';
import { type DhcpPacket, encodePacket, newRequest, parsePacket } from './packet.ts';
import { allowMacPrefixes, bootAll, ignoreAll } from './policy.ts';
import { LeasePool } from './pool.ts';
import { Subnet } from './subnet.ts';

const SRV = '10.0.0.1';
const meta: PacketMeta = {
  iface: { name: 'eth1', address: SRV },
  localPort: 67,
  from: { address: '0.0.0.0', port: 68 },
};
const ports = { server: 67, client: 68 };

function deps(over: Partial<FullDeps> = {}): FullDeps {
  const subnet = new Subnet({
    cidr: '10.0.0.0/24',
    rangeStart: '10.0.0.100',
    rangeEnd: '10.0.0.102',
    router: SRV,
    dns: ['10.0.0.2', '10.0.0.3'],
    domain: 'lab',
    leaseTime: 600,
    reservations: [{ mac: '02:00:00:00:00:42', ip: '10.0.0.42', hostname: 'n42' }],
  });
  const relayed = new Subnet({ cidr: '10.9.0.0/24', rangeStart: '10.9.0.10', rangeEnd: '10.9.0.20' });
  return {
    policy: bootAll,
    loaders: { bios: 'undionly.kpxe', efiX64: 'ipxe.efi', efiArm64: 'arm64/ipxe.efi' },
    urls: httpBootUrls(8080),
    ipxeUserClasses: ['iPXE'],
    ports,
    log: silentLogger(),
    pool: new LeasePool([subnet, relayed], new MemoryLeaseStore()),
    ...over,
  };
}

function pxe(mac: string, type: number, arch = 0, extra: Array<[number, Buffer]> = []): DhcpPacket {
  return newRequest(mac, 7, [
    [Opt.MESSAGE_TYPE, Buffer.from([type])],
    [Opt.VENDOR_CLASS, Buffer.from(`PXEClient:Arch:${String(arch).padStart(5, '0')}:UNDI:002001`)],
    [Opt.CLIENT_ARCH, Buffer.from([arch >> 8, arch & 255])],
    [Opt.CLIENT_NDI, Buffer.from([1, 2, 1])],
    [Opt.CLIENT_UUID, Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 0xab)])],
    ...extra,
  ]);
}

describe('full mode', () => {
  test('DORA: offer then ack with lease options, boot file and PXE extras', async () => {
    const d = deps();
    const offer = await handleFull(pxe('02:00:00:00:00:01', 1), meta, d);
    assert.ok(offer);
    assert.equal(offer.summary.type, 'OFFER');
    assert.equal(offer.packet.yiaddr, '10.0.0.100');
    assert.equal(offer.packet.siaddr, SRV);
    assert.equal(offer.packet.file, 'undionly.kpxe');
    assert.deepEqual(offer.to, { address: '255.255.255.255', port: 68 });
    assert.equal(offer.broadcast, true);
    const o = offer.packet.options;
    assert.equal(decodeIp(o.get(Opt.SERVER_ID)), SRV);
    assert.equal(decodeIp(o.get(Opt.SUBNET_MASK)), '255.255.255.0');
    assert.equal(decodeIp(o.get(Opt.BROADCAST)), '10.0.0.255');
    assert.deepEqual(o.get(Opt.DNS), Buffer.from([10, 0, 0, 2, 10, 0, 0, 3]));
    assert.equal(decodeU32(o.get(Opt.LEASE_TIME)), 600);
    assert.equal(decodeU32(o.get(Opt.RENEWAL_TIME)), 300);
    assert.equal(decodeU32(o.get(Opt.REBINDING_TIME)), 525);
    assert.deepEqual(decodeSubOptions(o.get(Opt.VENDOR_SPECIFIC)!)?.get(6), Buffer.from([8]));
    assert.equal(decodeText(o.get(Opt.BOOTFILE)), 'undionly.kpxe');
    assert.equal(o.has(Opt.IPXE_ENCAP), false, '175 only for iPXE');
    const req = pxe('02:00:00:00:00:01', 3, 0, [
      [Opt.SERVER_ID, encodeIp(SRV)],
      [Opt.REQUESTED_IP, encodeIp('10.0.0.100')],
    ]);
    const ack = await handleFull(req, meta, d);
    assert.equal(ack?.summary.type, 'ACK');
    assert.equal(ack?.packet.yiaddr, '10.0.0.100');
    assert.equal(d.pool.size, 1);
  });

  test('iPXE gets the script URL and 175.176 = 1 (no-pxedhcp)', async () => {
    const r = await handleFull(
      pxe('02:00:00:00:00:02', 1, 7, [[Opt.USER_CLASS, Buffer.from('iPXE')]]),
      meta,
      deps(),
    );
    assert.equal(r?.packet.file, 'http://10.0.0.1:8080/boot/ipxe?mac=02:00:00:00:00:02');
    assert.deepEqual(decodeSubOptions(r!.packet.options.get(Opt.IPXE_ENCAP)!)?.get(176), Buffer.from([1]));
  });

  test('loader per architecture; arm64 only when configured', async () => {
    const cases: Array<[number, string | undefined]> = [
      [0, 'undionly.kpxe'],
      [7, 'ipxe.efi'],
      [9, 'ipxe.efi'],
      [11, 'arm64/ipxe.efi'],
      [2, undefined],
    ];
    for (const [arch, file] of cases) {
      const r = await handleFull(pxe('02:00:00:00:00:03', 1, arch), meta, deps());
      assert.equal(r?.summary.file, file, `arch ${arch}`);
      assert.equal(r?.packet.yiaddr, '10.0.0.100', 'an address either way');
    }
    const noArm = deps({ loaders: { bios: 'undionly.kpxe', efiX64: 'ipxe.efi' } });
    const r = await handleFull(pxe('02:00:00:00:00:03', 1, 11), meta, noArm);
    assert.equal(r?.summary.file, undefined);
  });

  test('UEFI HTTP boot gets an HTTP URL and option 60 HTTPClient', async () => {
    const p = pxe('02:00:00:00:00:04', 1, 16);
    p.options.set(Opt.VENDOR_CLASS, Buffer.from('HTTPClient:Arch:00016:UNDI:003016'));
    const r = await handleFull(p, meta, deps());
    assert.equal(r?.packet.file, 'http://10.0.0.1:8080/boot/loaders/ipxe.efi');
    assert.equal(decodeText(r?.packet.options.get(Opt.VENDOR_CLASS)), 'HTTPClient');
  });

  test('policy ignore: address but no boot file; allow-list by MAC prefix', async () => {
    const ign = await handleFull(pxe('02:00:00:00:00:05', 1), meta, deps({ policy: ignoreAll }));
    assert.equal(ign?.packet.yiaddr, '10.0.0.100');
    assert.equal(ign?.packet.file, '');
    assert.equal(ign?.packet.siaddr, '0.0.0.0');
    const allow = deps({ policy: allowMacPrefixes(['02-00-00-00-00-0A']) });
    assert.equal((await handleFull(pxe('02:00:00:00:00:0a', 1), meta, allow))?.summary.file, 'undionly.kpxe');
    assert.equal((await handleFull(pxe('02:00:00:00:00:0b', 1), meta, allow))?.summary.file, undefined);
    assert.throws(() => allowMacPrefixes(['::']));
  });

  test('netboot checks: a malformed option 97 or missing 93 means no boot file', async () => {
    const bad97 = pxe('02:00:00:00:00:06', 1, 0, [[Opt.CLIENT_UUID, Buffer.alloc(5)]]);
    assert.equal((await handleFull(bad97, meta, deps()))?.summary.file, undefined);
    const no93 = pxe('02:00:00:00:00:06', 1);
    no93.options.delete(Opt.CLIENT_ARCH);
    assert.equal((await handleFull(no93, meta, deps()))?.summary.file, undefined);
  });

  test('reservations, pool exhaustion and requested addresses', async () => {
    const d = deps();
    assert.equal((await handleFull(pxe('02:00:00:00:00:42', 1), meta, d))?.packet.yiaddr, '10.0.0.42');
    assert.equal(
      (await handleFull(pxe('02:00:00:00:00:42', 1), meta, d))?.packet.options.get(Opt.HOSTNAME)?.toString(),
      'n42',
    );
    const req = pxe('02:00:00:00:00:07', 1, 0, [[Opt.REQUESTED_IP, encodeIp('10.0.0.102')]]);
    assert.equal((await handleFull(req, meta, d))?.packet.yiaddr, '10.0.0.102');
    assert.equal((await handleFull(pxe('02:00:00:00:00:08', 1), meta, d))?.packet.yiaddr, '10.0.0.100');
    assert.equal((await handleFull(pxe('02:00:00:00:00:09', 1), meta, d))?.packet.yiaddr, '10.0.0.101');
    assert.equal(
      await handleFull(pxe('02:00:00:00:00:0c', 1), meta, d),
      null,
      'pool of 3 is exhausted by 3 offers',
    );
    // A repeated DISCOVER gets the same offer.
    assert.equal((await handleFull(pxe('02:00:00:00:00:08', 1), meta, d))?.packet.yiaddr, '10.0.0.100');
  });

  test('a reservation written with dashes or upper case matches (it used to be keyed as written and never matched)', async () => {
    const subnet = new Subnet({
      cidr: '10.0.0.0/24',
      rangeStart: '10.0.0.100',
      rangeEnd: '10.0.0.102',
      reservations: [{ mac: '02-00-00-00-00-4A', ip: '10.0.0.74' }],
    });
    const d = deps({ pool: new LeasePool([subnet], new MemoryLeaseStore()) });
    assert.equal((await handleFull(pxe('02:00:00:00:00:4a', 1), meta, d))?.packet.yiaddr, '10.0.0.74');
    assert.throws(
      () => new Subnet({ ...subnet.config, reservations: [{ mac: 'nope', ip: '10.0.0.5' }] }),
      /not a MAC address/,
    );
  });

  test('REQUEST naming another server withdraws our offer; unavailable address is NAKed', async () => {
    const d = deps();
    await handleFull(pxe('02:00:00:00:00:01', 1), meta, d);
    const other = pxe('02:00:00:00:00:01', 3, 0, [
      [Opt.SERVER_ID, encodeIp('10.0.0.254')],
      [Opt.REQUESTED_IP, encodeIp('10.0.0.100')],
    ]);
    assert.equal(await handleFull(other, meta, d), null);
    await handleFull(pxe('02:00:00:00:00:02', 1, 0, [[Opt.REQUESTED_IP, encodeIp('10.0.0.100')]]), meta, d);
    const steal = pxe('02:00:00:00:00:01', 3, 0, [[Opt.REQUESTED_IP, encodeIp('10.0.0.100')]]);
    // 10.0.0.100 is now on offer to ...:02 (it asked for it), so INIT-REBOOT for it is refused
    const nak = await handleFull(steal, meta, d);
    assert.equal(nak?.summary.type, 'NAK');
    assert.deepEqual(nak?.to, { address: '255.255.255.255', port: 68 });
    const wrongNet = pxe('02:00:00:00:00:01', 3, 0, [[Opt.REQUESTED_IP, encodeIp('192.168.1.5')]]);
    assert.match(
      decodeText((await handleFull(wrongNet, meta, d))?.packet.options.get(Opt.MESSAGE))!,
      /not on this network/,
    );
  });

  test('renew is unicast to ciaddr; release frees the address; decline blocks it', async () => {
    const d = deps();
    await handleFull(pxe('02:00:00:00:00:01', 1), meta, d);
    await handleFull(
      pxe('02:00:00:00:00:01', 3, 0, [
        [Opt.SERVER_ID, encodeIp(SRV)],
        [Opt.REQUESTED_IP, encodeIp('10.0.0.100')],
      ]),
      meta,
      d,
    );
    const renew = pxe('02:00:00:00:00:01', 3);
    renew.ciaddr = '10.0.0.100';
    const ack = await handleFull(renew, meta, d);
    assert.deepEqual(ack?.to, { address: '10.0.0.100', port: 68 });
    assert.equal(ack?.packet.ciaddr, '10.0.0.100');
    const rel = pxe('02:00:00:00:00:01', 7);
    rel.ciaddr = '10.0.0.100';
    assert.equal(await handleFull(rel, meta, d), null);
    assert.equal(d.pool.size, 0);
    await handleFull(pxe('02:00:00:00:00:03', 4, 0, [[Opt.REQUESTED_IP, encodeIp('10.0.0.100')]]), meta, d);
    assert.equal((await handleFull(pxe('02:00:00:00:00:04', 1), meta, d))?.packet.yiaddr, '10.0.0.101');
  });

  test('relayed requests use the relay subnet and go back to giaddr:67', async () => {
    const p = pxe('02:00:00:00:00:01', 1);
    p.giaddr = '10.9.0.1';
    const r = await handleFull(p, { ...meta, from: { address: '10.9.0.1', port: 67 } }, deps());
    assert.equal(r?.packet.yiaddr, '10.9.0.10');
    assert.equal(r?.packet.giaddr, '10.9.0.1');
    assert.deepEqual(r?.to, { address: '10.9.0.1', port: 67 });
    assert.equal(r?.broadcast, false);
    p.options.set(Opt.RELAY_AGENT, Buffer.from([1, 3, 0x65, 0x74, 0x68]));
    p.options.set(Opt.CLIENT_ID, Buffer.from([1, 2, 0, 0, 0, 0, 1]));
    const echoed = await handleFull(p, { ...meta, from: { address: '10.9.0.1', port: 67 } }, deps());
    assert.deepEqual(
      echoed?.packet.options.get(Opt.RELAY_AGENT),
      Buffer.from([1, 3, 0x65, 0x74, 0x68]),
      'RFC 3046 echo',
    );
    assert.deepEqual(
      echoed?.packet.options.get(Opt.CLIENT_ID),
      Buffer.from([1, 2, 0, 0, 0, 0, 1]),
      'RFC 6842 echo',
    );
    assert.equal(
      [...parsePacket(encodePacket(echoed!.packet)).options.keys()].at(-1),
      Opt.RELAY_AGENT,
      'and last on the wire',
    );
    p.giaddr = '172.16.0.1';
    assert.equal(await handleFull(p, meta, deps()), null, 'no subnet for that relay');
  });

  test('INFORM gets options without a lease, unicast', async () => {
    const p = pxe('02:00:00:00:00:01', 8);
    p.ciaddr = '10.0.0.77';
    const r = await handleFull(p, meta, deps());
    assert.equal(r?.summary.type, 'ACK');
    assert.equal(r?.packet.yiaddr, '0.0.0.0');
    assert.equal(r?.packet.options.has(Opt.LEASE_TIME), false);
    assert.deepEqual(r?.to, { address: '10.0.0.77', port: 68 });
  });
});

describe('proxy mode', () => {
  const proxyDeps = (): BootDeps => {
    const { pool: _pool, ...rest } = deps();
    return rest;
  };

  test('offers boot options without an address, with 60 PXEClient, 54, 97 echoed', async () => {
    const req = pxe('02:00:00:00:00:01', 1);
    const r = await handleProxy(req, meta, proxyDeps());
    assert.equal(r?.summary.type, 'OFFER');
    assert.equal(r?.packet.yiaddr, '0.0.0.0');
    assert.equal(r?.packet.siaddr, SRV);
    assert.equal(r?.packet.file, 'undionly.kpxe');
    assert.equal(decodeText(r?.packet.options.get(Opt.VENDOR_CLASS)), 'PXEClient');
    assert.equal(decodeIp(r?.packet.options.get(Opt.SERVER_ID)), SRV);
    assert.deepEqual(r?.packet.options.get(Opt.CLIENT_UUID), req.options.get(Opt.CLIENT_UUID));
    assert.equal(r?.packet.options.has(Opt.LEASE_TIME), false);
    assert.equal(r?.packet.options.has(Opt.IPXE_ENCAP), false, 'iPXE must still wait for proxy offers');
  });

  test('ignores non-netboot clients, ignored MACs and REQUESTs for other servers on 67', async () => {
    const plain = newRequest('02:00:00:00:00:01', 1, [[Opt.MESSAGE_TYPE, Buffer.from([1])]]);
    assert.equal(await handleProxy(plain, meta, proxyDeps()), null);
    assert.equal(
      await handleProxy(pxe('02:00:00:00:00:01', 1), meta, { ...proxyDeps(), policy: ignoreAll }),
      null,
    );
    const req = pxe('02:00:00:00:00:01', 3, 0, [[Opt.SERVER_ID, encodeIp('10.0.0.254')]]);
    assert.equal(await handleProxy(req, meta, proxyDeps()), null);
  });

  test('REQUEST on port 4011 gets an ACK sent back to where it came from', async () => {
    const req = pxe('02:00:00:00:00:01', 3);
    req.ciaddr = '10.0.0.150';
    const r = await handleProxy(
      req,
      { ...meta, localPort: 4011, from: { address: '10.0.0.150', port: 68 } },
      proxyDeps(),
    );
    assert.equal(r?.summary.type, 'ACK');
    assert.deepEqual(r?.to, { address: '10.0.0.150', port: 68 });
    assert.equal(r?.packet.ciaddr, '10.0.0.150');
    assert.equal(r?.packet.file, 'undionly.kpxe');
  });
});
