import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeClientArch,
  decodeClientNdi,
  decodeClientUuid,
  decodeIp,
  decodeRelayAgent,
  decodeSubOptions,
  decodeText,
  decodeU32,
  decodeUserClass,
  encodeSubOptions,
  encodeUserClassRfc3004,
  Opt,
} from './options.ts';
import { DhcpParseError, encodePacket, macOf, newRequest, parsePacket } from './packet.ts';

/** A DISCOVER as QEMU's iPXE sends it (e2e lab capture, options in wire order). */
function ipxeDiscover(): Buffer {
  const p = newRequest('52:54:00:99:00:10', 0x1234abcd, [
    [Opt.MESSAGE_TYPE, Buffer.from([1])],
    [Opt.MAX_MESSAGE_SIZE, Buffer.from([0x05, 0xc0])],
    [Opt.CLIENT_ARCH, Buffer.from([0, 0])],
    [Opt.CLIENT_NDI, Buffer.from([1, 2, 1])],
    [Opt.VENDOR_CLASS, Buffer.from('PXEClient:Arch:00000:UNDI:002001')],
    [Opt.USER_CLASS, Buffer.from('iPXE')],
    [Opt.PARAM_REQUEST_LIST, Buffer.from([1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 175])],
    [
      Opt.IPXE_ENCAP,
      encodeSubOptions([
        [177, Buffer.from([1, 0x1a, 0xf4, 0x10, 0x00])],
        [235, Buffer.from([1, 0, 0])],
      ]),
    ],
    [Opt.CLIENT_ID, Buffer.from([1, 0x52, 0x54, 0, 0x99, 0, 0x10])],
    [Opt.CLIENT_UUID, Buffer.alloc(17)],
  ]);
  return encodePacket(p);
}

describe('DHCP packet codec', () => {
  test('round-trips every header field', () => {
    const p = newRequest('aa:bb:cc:dd:ee:ff', 0xdeadbeef, [[Opt.MESSAGE_TYPE, Buffer.from([3])]]);
    Object.assign(p, {
      hops: 2,
      secs: 513,
      flags: 0x8000,
      ciaddr: '10.0.0.5',
      yiaddr: '10.0.0.6',
      siaddr: '10.0.0.7',
      giaddr: '10.0.0.8',
      sname: 'kiln',
      file: 'undionly.kpxe',
    });
    const q = parsePacket(encodePacket(p));
    assert.equal(q.op, 1);
    assert.equal(q.htype, 1);
    assert.equal(q.hlen, 6);
    assert.equal(q.hops, 2);
    assert.equal(q.xid, 0xdeadbeef);
    assert.equal(q.secs, 513);
    assert.equal(q.flags, 0x8000);
    assert.equal(q.ciaddr, '10.0.0.5');
    assert.equal(q.yiaddr, '10.0.0.6');
    assert.equal(q.siaddr, '10.0.0.7');
    assert.equal(q.giaddr, '10.0.0.8');
    assert.equal(q.sname, 'kiln');
    assert.equal(q.file, 'undionly.kpxe');
    assert.equal(macOf(q), 'aa:bb:cc:dd:ee:ff');
    assert.deepEqual(q.options.get(Opt.MESSAGE_TYPE), Buffer.from([3]));
  });

  test('pads replies to 300 bytes and puts 53 and 54 first', () => {
    const p = newRequest('02:00:00:00:00:01', 1, [
      [Opt.LEASE_TIME, Buffer.from([0, 0, 1, 0])],
      [Opt.SERVER_ID, Buffer.from([10, 0, 0, 1])],
      [Opt.MESSAGE_TYPE, Buffer.from([2])],
    ]);
    const b = encodePacket(p);
    assert.equal(b.length, 300);
    assert.deepEqual([...b.subarray(240, 249)], [53, 1, 2, 54, 4, 10, 0, 0, 1]);
  });

  test('decodes what iPXE sends: 60, 77 plain string, 93, 94, 97, 61, 175', () => {
    const p = parsePacket(ipxeDiscover());
    assert.equal(decodeText(p.options.get(Opt.VENDOR_CLASS)), 'PXEClient:Arch:00000:UNDI:002001');
    assert.deepEqual(decodeUserClass(p.options.get(Opt.USER_CLASS)), ['iPXE']);
    assert.deepEqual(decodeClientArch(p.options.get(Opt.CLIENT_ARCH)), [0]);
    assert.deepEqual(decodeClientNdi(p.options.get(Opt.CLIENT_NDI)), { type: 1, major: 2, minor: 1 });
    assert.equal(decodeClientUuid(p.options.get(Opt.CLIENT_UUID)), '00000000-0000-0000-0000-000000000000');
    assert.deepEqual(p.options.get(Opt.CLIENT_ID), Buffer.from([1, 0x52, 0x54, 0, 0x99, 0, 0x10]));
    const encap = decodeSubOptions(p.options.get(Opt.IPXE_ENCAP)!);
    assert.deepEqual(encap?.get(235), Buffer.from([1, 0, 0]));
  });

  test('user class in RFC 3004 format, several classes', () => {
    assert.deepEqual(decodeUserClass(encodeUserClassRfc3004(['iPXE', 'Kiln'])), ['iPXE', 'Kiln']);
    // a zero-length item is not RFC 3004: whole value as one string
    assert.deepEqual(decodeUserClass(Buffer.from([0, 65])), ['\0A']);
    assert.equal(decodeUserClass(Buffer.alloc(0)), undefined);
  });

  test('option 43 with PXE sub-options round-trips', () => {
    const v = encodeSubOptions([
      [6, Buffer.from([8])],
      [69, Buffer.from('00-abc')],
    ]);
    const p = newRequest('02:00:00:00:00:01', 1, [[Opt.VENDOR_SPECIFIC, v]]);
    const subs = decodeSubOptions(parsePacket(encodePacket(p)).options.get(Opt.VENDOR_SPECIFIC)!);
    assert.deepEqual(subs?.get(6), Buffer.from([8]));
    assert.equal(subs?.get(69)?.toString(), '00-abc');
    assert.equal(decodeSubOptions(Buffer.from([6, 5, 1])), undefined, 'overrunning sub-option');
    assert.deepEqual(
      [...decodeSubOptions(Buffer.from([0, 6, 1, 8, 255, 9, 9]))!.keys()],
      [6],
      'pad skipped, end stops',
    );
  });

  test('option 82 relay agent information: circuit and remote id', () => {
    const v = encodeSubOptions([
      [1, Buffer.from('eth0/1')],
      [2, Buffer.from([1, 2, 3, 4, 5, 6])],
    ]);
    const r = decodeRelayAgent(v);
    assert.equal(r?.circuitId?.toString(), 'eth0/1');
    assert.deepEqual(r?.remoteId, Buffer.from([1, 2, 3, 4, 5, 6]));
    assert.equal(decodeRelayAgent(Buffer.from([1, 9])), undefined);
  });

  test('option 54 and numbers', () => {
    assert.equal(decodeIp(Buffer.from([10, 1, 2, 3])), '10.1.2.3');
    assert.equal(decodeIp(Buffer.from([10, 1, 2])), undefined);
    assert.equal(decodeU32(Buffer.from([0, 0, 0x0e, 0x10])), 3600);
  });

  test('malformed 93 and 97 decode to undefined/null, not exceptions', () => {
    assert.equal(decodeClientArch(Buffer.from([0])), undefined);
    assert.equal(decodeClientUuid(Buffer.alloc(16)), null);
    assert.equal(decodeClientUuid(Buffer.concat([Buffer.from([1]), Buffer.alloc(16)])), null);
    assert.equal(decodeClientNdi(Buffer.from([1, 2])), undefined);
  });

  test('long options are split on encode and joined on parse (RFC 3396)', () => {
    const long = Buffer.alloc(600, 0x41);
    const p = newRequest('02:00:00:00:00:01', 1, [[Opt.BOOTFILE, long]]);
    const b = encodePacket(p);
    assert.deepEqual(parsePacket(b).options.get(Opt.BOOTFILE), long);
  });

  test('option overload (52) reads options from file and sname without crashing', () => {
    const p = newRequest('02:00:00:00:00:01', 1, [
      [Opt.MESSAGE_TYPE, Buffer.from([1])],
      [Opt.OVERLOAD, Buffer.from([3])],
    ]);
    const b = encodePacket(p);
    Buffer.from([Opt.HOSTNAME, 3, 0x61, 0x62, 0x63, 255]).copy(b, 108); // file
    Buffer.from([Opt.DOMAIN_NAME, 2, 0x78, 0x79, 255]).copy(b, 44); // sname
    const q = parsePacket(b);
    assert.equal(decodeText(q.options.get(Opt.HOSTNAME)), 'abc');
    assert.equal(decodeText(q.options.get(Opt.DOMAIN_NAME)), 'xy');
    assert.equal(q.file, '');
    assert.equal(q.sname, '');
    b[244] = 9; // overload value out of range
    assert.throws(() => parsePacket(b), DhcpParseError);
  });

  test('a missing End option is tolerated', () => {
    const b = encodePacket(newRequest('02:00:00:00:00:01', 1, [[Opt.MESSAGE_TYPE, Buffer.from([1])]]));
    const cut = b.subarray(0, 243); // 240 + 53/1/1, no End
    assert.deepEqual(parsePacket(cut).options.get(Opt.MESSAGE_TYPE), Buffer.from([1]));
  });

  test('malformed packets give a DhcpParseError naming the problem', () => {
    const good = ipxeDiscover();
    const cases: Array<[string, Buffer, RegExp]> = [
      ['empty', Buffer.alloc(0), /0 bytes/],
      ['short', good.subarray(0, 239), /239 bytes/],
      ['bad op', Buffer.concat([Buffer.from([7]), good.subarray(1)]), /op is 7/],
      ['bad hlen', Buffer.concat([good.subarray(0, 2), Buffer.from([17]), good.subarray(3)]), /hlen is 17/],
      [
        'no cookie',
        Buffer.concat([good.subarray(0, 236), Buffer.from([1, 2, 3, 4]), good.subarray(240)]),
        /magic cookie/,
      ],
      [
        'option overruns',
        Buffer.concat([good.subarray(0, 240), Buffer.from([60, 200, 1, 2])]),
        /option 60 .* claims 200 bytes but 2 remain/,
      ],
      ['no length byte', Buffer.concat([good.subarray(0, 240), Buffer.from([60])]), /no length byte/],
    ];
    for (const [name, buf, re] of cases) {
      assert.throws(
        () => parsePacket(buf),
        (e: unknown) => e instanceof DhcpParseError && e.code === 'DHCP_MALFORMED' && re.test(e.message),
        name,
      );
    }
  });

  test('random bytes never throw anything but DhcpParseError', () => {
    const good = ipxeDiscover();
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    let parsed = 0;
    for (let i = 0; i < 20_000; i++) {
      const b = Buffer.from(good);
      const flips = 1 + (rnd() % 8);
      for (let j = 0; j < flips; j++) b[240 + (rnd() % (b.length - 240))] = rnd() & 255;
      const cut = b.subarray(0, 200 + (rnd() % (b.length - 199)));
      try {
        parsePacket(cut);
        parsed++;
      } catch (e) {
        assert.ok(e instanceof DhcpParseError, String(e));
      }
    }
    assert.ok(parsed > 0);
  });
});
