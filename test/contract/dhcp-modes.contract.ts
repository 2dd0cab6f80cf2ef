// The behaviour every DHCP mode (boot.dhcp.mode: full, proxy, off) owes the machines on the
// segment, as docs/boot.md states it: every mode that answers sends the same boot decision for a
// client kind (boot file or URL, siaddr and option 54 = our address, option 43.6 = 8 for PXE
// ROMs, option 60 echoed), and the modes differ only where they differ by design: full hands out
// an address from its pool, proxy never does and answers netboot clients only, off answers
// nothing. Each mode runs this same suite (see dhcp-modes.test.ts); the subject says which of
// the by-design differences it has, and the suite checks it has exactly those.
//
// Every reply is checked as it goes on the wire: encoded and parsed back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  decodeIp,
  decodeSubOptions,
  decodeText,
  encodeIp,
  encodeUserClassRfc3004,
  IpxeOpt,
  MessageType,
  Opt,
  PxeOpt,
} from '../../conductor/boot/dhcp/options.ts';
import { type DhcpPacket, encodePacket, newRequest, parsePacket } from '../../conductor/boot/dhcp/packet.ts';
import type { BootPolicy } from '../../conductor/boot/dhcp/policy.ts';

export const SERVER_IP = '10.0.0.1';
export const HTTP_PORT = 8080;
/** The pool full mode serves (the subject configures it on 10.0.0.0/24). */
export const POOL = { first: '10.0.0.100', last: '10.0.0.199' };
/** MACs under this prefix are booted; the policy ignores every other netboot client. */
export const BOOTED_PREFIX = '02:00:00';
export const LOADERS = { bios: 'undionly.kpxe', efiX64: 'ipxe.efi' };

/** One datagram as it reaches the conductor. */
export interface Delivery {
  packet: DhcpPacket;
  /** 67, or the PXE boot-server port (4011) where the mode listens there. */
  port: 'dhcp' | 'pxe';
}

/** A mode, started with a boot policy, answering one datagram at a time. */
export interface RunningMode {
  /** The reply sent for this datagram, or null when the mode sends none. */
  answer(d: Delivery): Promise<DhcpPacket | null>;
  close(): Promise<void>;
}

export interface DhcpModeSubject {
  start(policy: BootPolicy): Promise<RunningMode>;
  /** What this mode does by design, beyond the boot decision every answering mode shares. */
  design: {
    /** Answers anything at all. */
    answers: boolean;
    /** Hands out addresses (yiaddr) from its pool, to every client, netboot or not. */
    leases: boolean;
    /** Where a PXE ROM that already has an address asks for its boot file (REQUEST). */
    bootRequestPort: 'dhcp' | 'pxe';
    /** iPXE gets 175.176 = 1 (no-pxedhcp): only when no ProxyDHCP is expected. */
    ipxeNoPxedhcp: boolean;
  };
}

const PXE_UUID = Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 0xab)]);

interface ClientKind {
  name: string;
  /** The DISCOVER this client sends. */
  discover(mac: string, xid: number): DhcpPacket;
  /** The boot file / URL it must get, or null when it is not a netboot client. */
  file: ((mac: string) => string) | null;
  /** Option 60 it must get back. */
  vendorClass?: 'PXEClient' | 'HTTPClient';
  /** A PXE ROM: option 43.6 = 8 and a TFTP server (66). */
  pxeRom: boolean;
  ipxe: boolean;
}

const msg = (type: number): [number, Buffer] => [Opt.MESSAGE_TYPE, Buffer.from([type])];
const arch = (code: number): [number, Buffer] => [Opt.CLIENT_ARCH, Buffer.from([code >> 8, code & 255])];

function romRequest(mac: string, xid: number, type: number, code: number, vendor = 'PXEClient'): DhcpPacket {
  return newRequest(mac, xid, [
    msg(type),
    [Opt.VENDOR_CLASS, Buffer.from(`${vendor}:Arch:${String(code).padStart(5, '0')}:UNDI:003016`)],
    arch(code),
    [Opt.CLIENT_NDI, Buffer.from([1, 3, 16])],
    [Opt.CLIENT_UUID, PXE_UUID],
  ]);
}

const scriptUrl = (mac: string) => `http://${SERVER_IP}:${HTTP_PORT}/boot/ipxe?mac=${mac}`;

export const CLIENT_KINDS: readonly ClientKind[] = [
  {
    name: 'PXE ROM, BIOS (arch 0)',
    discover: (mac, xid) => romRequest(mac, xid, MessageType.DISCOVER, 0),
    file: () => LOADERS.bios,
    vendorClass: 'PXEClient',
    pxeRom: true,
    ipxe: false,
  },
  ...[7, 9].map(
    (code): ClientKind => ({
      name: `PXE ROM, UEFI x64 (arch ${code})`,
      discover: (mac, xid) => romRequest(mac, xid, MessageType.DISCOVER, code),
      file: () => LOADERS.efiX64,
      vendorClass: 'PXEClient',
      pxeRom: true,
      ipxe: false,
    }),
  ),
  {
    name: 'UEFI HTTP boot (arch 16, HTTPClient)',
    discover: (mac, xid) => romRequest(mac, xid, MessageType.DISCOVER, 16, 'HTTPClient'),
    file: () => `http://${SERVER_IP}:${HTTP_PORT}/boot/loaders/${LOADERS.efiX64}`,
    vendorClass: 'HTTPClient',
    pxeRom: false,
    ipxe: false,
  },
  {
    name: "iPXE (user class 'iPXE', iPXE's bare string)",
    discover: (mac, xid) => {
      const p = romRequest(mac, xid, MessageType.DISCOVER, 7);
      p.options.set(Opt.USER_CLASS, Buffer.from('iPXE'));
      return p;
    },
    file: scriptUrl,
    pxeRom: true,
    ipxe: true,
  },
  {
    name: 'iPXE (user class in RFC 3004 format, no vendor class)',
    discover: (mac, xid) =>
      newRequest(mac, xid, [msg(MessageType.DISCOVER), [Opt.USER_CLASS, encodeUserClassRfc3004(['iPXE'])]]),
    file: scriptUrl,
    pxeRom: false,
    ipxe: true,
  },
  {
    name: 'plain client (udhcpc in the ramdisk)',
    discover: (mac, xid) =>
      newRequest(mac, xid, [
        msg(MessageType.DISCOVER),
        [Opt.VENDOR_CLASS, Buffer.from('udhcp 1.36.1')],
        [Opt.PARAM_REQUEST_LIST, Buffer.from([1, 3, 6, 12, 15, 28, 42])],
      ]),
    file: null,
    pxeRom: false,
    ipxe: false,
  },
];

const wire = (p: DhcpPacket): DhcpPacket => parsePacket(encodePacket(p));
const typeOf = (p: DhcpPacket) => p.options.get(Opt.MESSAGE_TYPE)?.[0];
const ipInPool = (ip: string) => {
  const n = (s: string) => s.split('.').reduce((a, b) => a * 256 + Number(b), 0);
  return n(ip) >= n(POOL.first) && n(ip) <= n(POOL.last);
};

export function dhcpModeContract(name: string, subject: DhcpModeSubject): void {
  describe(`DHCP mode contract: ${name}`, () => {
    let mode: RunningMode;
    let seq = 0;
    const nextMac = (prefix = BOOTED_PREFIX) => {
      seq++;
      return `${prefix}:00:${(seq >> 8).toString(16).padStart(2, '0')}:${(seq & 255).toString(16).padStart(2, '0')}`;
    };
    before(async () => {
      const allow: BootPolicy = (mac) => (mac.startsWith(BOOTED_PREFIX) ? 'boot' : 'ignore');
      mode = await subject.start(allow);
    });
    after(async () => {
      await mode?.close();
    });

    const ask = async (d: Delivery) => {
      const r = await mode.answer({ ...d, packet: wire(d.packet) });
      return r ? wire(r) : null;
    };

    /** The boot decision every answering mode sends for this kind. */
    const assertBoot = (reply: DhcpPacket, kind: ClientKind, mac: string, where: string) => {
      const file = kind.file!(mac);
      const o = reply.options;
      assert.equal(reply.file, file, `${where}: file field`);
      assert.equal(decodeText(o.get(Opt.BOOTFILE)), file, `${where}: option 67`);
      assert.equal(reply.siaddr, SERVER_IP, `${where}: siaddr`);
      assert.equal(decodeIp(o.get(Opt.SERVER_ID)), SERVER_IP, `${where}: option 54`);
      if (kind.vendorClass)
        assert.equal(decodeText(o.get(Opt.VENDOR_CLASS)), kind.vendorClass, `${where}: 60`);
      const pxe = o.get(Opt.VENDOR_SPECIFIC);
      if (kind.pxeRom) {
        assert.ok(pxe, `${where}: option 43 for a PXE ROM`);
        assert.deepEqual(
          decodeSubOptions(pxe)?.get(PxeOpt.DISCOVERY_CONTROL),
          Buffer.from([8]),
          `${where}: 43.6`,
        );
      } else {
        assert.equal(pxe, undefined, `${where}: no option 43 for a client that is not a PXE ROM`);
      }
      if (!kind.ipxe && kind.pxeRom)
        assert.equal(decodeText(o.get(Opt.TFTP_SERVER)), SERVER_IP, `${where}: 66`);
      const noPxedhcp = o.get(Opt.IPXE_ENCAP);
      if (kind.ipxe && subject.design.ipxeNoPxedhcp)
        assert.deepEqual(
          decodeSubOptions(noPxedhcp!)?.get(IpxeOpt.NO_PXEDHCP),
          Buffer.from([1]),
          `${where}: 175.176`,
        );
      else assert.equal(noPxedhcp, undefined, `${where}: no 175.176`);
    };

    const assertNoBoot = (reply: DhcpPacket, where: string) => {
      assert.equal(reply.file, '', `${where}: no file`);
      assert.equal(reply.options.get(Opt.BOOTFILE), undefined, `${where}: no option 67`);
      assert.equal(reply.options.get(Opt.VENDOR_SPECIFIC), undefined, `${where}: no option 43`);
      assert.equal(reply.siaddr, '0.0.0.0', `${where}: no siaddr`);
    };

    const assertAddress = (reply: DhcpPacket, where: string) => {
      if (subject.design.leases)
        assert.ok(ipInPool(reply.yiaddr), `${where}: yiaddr ${reply.yiaddr} from the pool`);
      else assert.equal(reply.yiaddr, '0.0.0.0', `${where}: never an address`);
    };

    for (const kind of CLIENT_KINDS) {
      describe(kind.name, () => {
        it(
          subject.design.answers
            ? kind.file
              ? 'DISCOVER: an OFFER with the boot decision'
              : subject.design.leases
                ? 'DISCOVER: an OFFER with an address and no boot file'
                : 'DISCOVER: no answer (not a netboot client)'
            : 'DISCOVER: no answer',
          async () => {
            const mac = nextMac();
            const reply = await ask({ packet: kind.discover(mac, seq), port: 'dhcp' });
            const expectsAnswer = subject.design.answers && (kind.file !== null || subject.design.leases);
            if (!expectsAnswer) return assert.equal(reply, null, 'no reply');
            assert.ok(reply, 'a reply');
            assert.equal(typeOf(reply), MessageType.OFFER);
            assert.equal(reply.xid, seq);
            assertAddress(reply, 'OFFER');
            if (kind.file) assertBoot(reply, kind, mac, 'OFFER');
            else assertNoBoot(reply, 'OFFER');
          },
        );

        it('ignored by the boot policy: no boot file (an address only where the mode leases)', async () => {
          const mac = nextMac('0a:00:00');
          const reply = await ask({ packet: kind.discover(mac, seq), port: 'dhcp' });
          if (!subject.design.answers || !subject.design.leases) return assert.equal(reply, null, 'no reply');
          assert.ok(reply, 'an OFFER with an address');
          assert.equal(typeOf(reply), MessageType.OFFER);
          assertAddress(reply, 'OFFER');
          assertNoBoot(reply, 'OFFER');
        });
      });
    }

    it('a PXE ROM asking for its boot file where this mode is asked (REQUEST) gets the same decision in an ACK', async () => {
      for (const kind of CLIENT_KINDS.filter((k) => k.pxeRom && !k.ipxe)) {
        const mac = nextMac();
        const offer = await ask({ packet: kind.discover(mac, seq), port: 'dhcp' });
        const code = kind.discover(mac, seq).options.get(Opt.CLIENT_ARCH)!;
        const req = romRequest(mac, seq, MessageType.REQUEST, code.readUInt16BE(0));
        req.options.set(Opt.SERVER_ID, encodeIp(SERVER_IP));
        if (subject.design.bootRequestPort === 'dhcp') {
          req.options.set(Opt.REQUESTED_IP, encodeIp(offer?.yiaddr ?? POOL.first));
        } else {
          // It took its address from the site's DHCP server; it now asks the boot server.
          req.ciaddr = '10.0.0.50';
        }
        const ack = await ask({ packet: req, port: subject.design.bootRequestPort });
        if (!subject.design.answers) {
          assert.equal(offer, null);
          assert.equal(ack, null);
          continue;
        }
        assert.ok(ack, `${kind.name}: an ACK`);
        assert.equal(typeOf(ack), MessageType.ACK, kind.name);
        assertAddress(ack, `${kind.name} ACK`);
        assertBoot(ack, kind, mac, `${kind.name} ACK`);
      }
    });

    it('the boot decision is the same whether or not the client also asks for an address it had', async () => {
      // INIT-REBOOT style DISCOVER carrying option 50: the boot file must not depend on it.
      const kind = CLIENT_KINDS[0]!;
      const mac = nextMac();
      const p = kind.discover(mac, seq);
      p.options.set(Opt.REQUESTED_IP, encodeIp('10.0.0.150'));
      const reply = await ask({ packet: p, port: 'dhcp' });
      if (!subject.design.answers) return assert.equal(reply, null);
      assert.ok(reply);
      assertBoot(reply, kind, mac, 'OFFER');
      assertAddress(reply, 'OFFER');
    });
  });
}
