// Every spelling each old call site accepted or refused, in one table. The "was" column names
// the old sites (http: conductor/boot/http.ts MAC_RE; api: shared/wire MacAddress; lookup:
// ramdisk-api normaliseMac (oslo style); inv: match.ts / agent-workflow / agent interfaces
// (lower-cased colon form only); bootif: agent/config normaliseBootif; boot_interface:
// discovery bootMac (any 12 hex digits after an optional "01-")).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bootifFromCmdline,
  formatMac,
  hardwareAddressBytes,
  macPrefixMatcher,
  nicMac,
  normaliseMac,
  parseBootif,
} from './mac.ts';

const M = 'aa:bb:cc:dd:ee:ff';

// [input, normaliseMac, nicMac, parseBootif, which old sites accepted it]
const TABLE: Array<[unknown, string | null, string | null, string | null, string]> = [
  ['aa:bb:cc:dd:ee:ff', M, M, M, 'all'],
  ['AA:BB:CC:DD:EE:FF', M, M, M, 'http, api, lookup, bootif, boot_interface'],
  ['Aa:bB:cC:Dd:eE:fF', M, M, M, 'http, api, lookup, bootif, boot_interface'],
  ['aa-bb-cc-dd-ee-ff', M, M, M, 'http, api, lookup, bootif, boot_interface'],
  ['AA-BB-CC-DD-EE-FF', M, M, M, 'http, api, lookup, bootif, boot_interface'],
  ['  aa:bb:cc:dd:ee:ff\n', M, M, M, 'api, lookup, bootif (trimmed)'],
  // Mixed separators: http and api took them, lookup refused them; now taken (most permissive).
  ['aa:bb-cc:dd:ee:ff', M, M, M, 'http, api, boot_interface'],
  // Cisco dotted and bare: only boot_interface took them; now taken everywhere.
  ['aabb.ccdd.eeff', M, M, M, 'boot_interface'],
  ['AABB.CCDD.EEFF', M, M, M, 'boot_interface'],
  ['aabbccddeeff', M, M, M, 'boot_interface'],
  ['AABBCCDDEEFF', M, M, M, 'boot_interface'],
  // pxelinux BOOTIF: a BOOTIF only.
  ['01-aa-bb-cc-dd-ee-ff', null, null, M, 'bootif, boot_interface'],
  ['01-AA-BB-CC-DD-EE-FF', null, null, M, 'bootif, boot_interface'],
  ['06-aa-bb-cc-dd-ee-ff', null, null, M, 'bootif (any hardware type)'],
  ['BOOTIF=01-aa-bb-cc-dd-ee-ff', null, null, M, 'new: the kernel command-line token'],
  ['bootif=aa:bb:cc:dd:ee:ff', null, null, M, 'new: the kernel command-line token'],
  // Placeholder addresses: valid MACs, but they identify no NIC.
  ['00:00:00:00:00:00', '00:00:00:00:00:00', null, '00:00:00:00:00:00', 'inv refused for NICs'],
  ['ff:ff:ff:ff:ff:ff', 'ff:ff:ff:ff:ff:ff', null, 'ff:ff:ff:ff:ff:ff', 'new: refused for NICs'],
  // Refused everywhere.
  ['', null, null, null, 'none'],
  ['   ', null, null, null, 'none'],
  ['aa:bb:cc:dd:ee', null, null, null, 'none (five octets)'],
  ['aa:bb:cc:dd:ee:ff:00', null, null, null, 'none (seven octets)'],
  ['aa:bb:cc:dd:ee:fg', null, null, null, 'none (not hex)'],
  ['a:b:c:d:e:f', null, null, null, 'none (one-digit octets)'],
  ['aa::bb:cc:dd:ee:ff', null, null, null, 'none'],
  ['aa:bb:cc:dd:ee:ff:', null, null, null, 'none'],
  [':aa:bb:cc:dd:ee:ff', null, null, null, 'none'],
  ['aa bb cc dd ee ff', null, null, null, 'none'],
  ['aa.bb.cc.dd.ee.ff', null, null, null, 'none'],
  ['aabb:ccdd:eeff', null, null, null, 'none'],
  ['aabbccddeef', null, null, null, 'none (11 digits)'],
  ['aabbccddeeff00', null, null, null, 'none (14 digits)'],
  // Six octets: a MAC that happens to start with 01, not a pxelinux BOOTIF missing an octet.
  ['01-aa-bb-cc-dd-ee', '01:aa:bb:cc:dd:ee', '01:aa:bb:cc:dd:ee', '01:aa:bb:cc:dd:ee', 'all dash sites'],
  ['1-aa-bb-cc-dd-ee-ff', null, null, null, 'none'],
  // Irregular groupings only boot_interface took (it dropped every non-hex character); refused now.
  ['a:abb:ccd:de:e:ff', null, null, null, 'boot_interface only; refused now'],
  [['$', '{mac}'].join(''), null, null, null, 'none (an unexpanded iPXE variable)'],
  [null, null, null, null, 'none'],
  [undefined, null, null, null, 'none'],
  [42, null, null, null, 'none'],
];

describe('MAC addresses', () => {
  for (const [input, norm, nic, bootif, was] of TABLE) {
    it(`${JSON.stringify(input)} (old: ${was})`, () => {
      assert.equal(normaliseMac(input), norm, 'normaliseMac');
      assert.equal(nicMac(input), nic, 'nicMac');
      assert.equal(parseBootif(input), bootif, 'parseBootif');
    });
  }

  it('formats bytes', () => {
    assert.equal(formatMac([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]), M);
    assert.equal(formatMac(Buffer.from([0, 1, 0x0a])), '00:01:0a');
  });

  it('reads hardware addresses of 1 to 16 octets (DHCP chaddr)', () => {
    assert.deepEqual([...hardwareAddressBytes('02:00:00:00:00:0A')!], [2, 0, 0, 0, 0, 10]);
    assert.deepEqual([...hardwareAddressBytes('02-00-00-00-00-0a')!], [2, 0, 0, 0, 0, 10]);
    assert.deepEqual([...hardwareAddressBytes('aabbccddeeff')!], [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    assert.deepEqual([...hardwareAddressBytes('ab')!], [0xab]);
    assert.equal(hardwareAddressBytes(Array(16).fill('00').join(':'))!.length, 16);
    assert.equal(hardwareAddressBytes(Array(17).fill('00').join(':')), null);
    assert.equal(hardwareAddressBytes(''), null);
    assert.equal(hardwareAddressBytes('zz:00'), null);
  });

  it('finds BOOTIF on a kernel command line', () => {
    assert.equal(bootifFromCmdline('console=ttyS0 BOOTIF=01-aa-bb-cc-dd-ee-ff quiet'), M);
    assert.equal(bootifFromCmdline('BOOTIF=11:22:33:44:55:66 BOOTIF=AA-BB-CC-DD-EE-FF'), M);
    assert.equal(bootifFromCmdline('console=ttyS0 ip=dhcp'), null);
    assert.equal(bootifFromCmdline(['BOOTIF=$', '{mac}'].join('')), null);
  });
});

describe('MAC prefixes', () => {
  const cases: Array<[string[], string, boolean]> = [
    [['52:54:00'], '52:54:00:12:34:56', true],
    [['525400'], '52:54:00:12:34:56', true],
    [['52-54-00'], '52:54:00:12:34:56', true],
    [['52-54-00-12'], '52:54:00:12:34:56', true],
    [['5254.00'], '52:54:00:12:34:56', true],
    [['52 54 00'], '52:54:00:12:34:56', true],
    [[' 52:54:00 '], '52:54:00:12:34:56', true],
    [['52:54:00'], '52-54-00-12-34-56', true],
    [['52:54:00'], '5254.0012.3456', true],
    [['52:54:00'], 'AABBCCDDEEFF', false],
    [['52:5'], '52:54:00:12:34:56', true],
    [['02-00-00-00-00-0A'], '02:00:00:00:00:0a', true],
    [['aa:bb'], 'AA:BB:CC:DD:EE:FF', true],
    [['52:54:00'], '52:54:01:12:34:56', false],
    [['52:54:01', '52:54:00'], '52:54:00:12:34:56', true],
    [[], '52:54:00:12:34:56', false],
    [['52:54:00'], 'not a mac', false],
    // DHCP chaddr of another length still matches by its leading octets.
    [['52:54'], '52:54:00:12:34:56:00:00:00:00:00:00:00:00:00:00', true],
  ];
  for (const [prefixes, mac, want] of cases) {
    it(`${JSON.stringify(prefixes)} ${want ? 'admits' : 'refuses'} ${mac}`, () => {
      assert.equal(macPrefixMatcher(prefixes)(mac), want);
    });
  }

  for (const bad of ['', '::', ' ', '-']) {
    it(`refuses the empty prefix ${JSON.stringify(bad)}`, () => {
      assert.throws(() => macPrefixMatcher([bad]), /empty MAC prefix/);
    });
  }
  for (const bad of ['52:54:0g', '*', '52:54:00/24', 'x']) {
    it(`refuses ${JSON.stringify(bad)} rather than dropping its odd characters`, () => {
      assert.throws(() => macPrefixMatcher([bad]), /not a MAC prefix/);
    });
  }
});
