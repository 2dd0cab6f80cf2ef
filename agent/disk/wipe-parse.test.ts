import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseHdparmSecurity } from './wipe.ts';

// The Security section of `hdparm -I` (hdparm 9.65) for an SSD, as the BIOS left it.
const FROZEN = `
Commands/features:
	Enabled	Supported:
	   *	SMART feature set
Security: 
	Master password revision code = 65534
		supported
	not	enabled
	not	locked
		frozen
	not	expired: security count
		supported: enhanced erase
	2min for SECURITY ERASE UNIT. 2min for ENHANCED SECURITY ERASE UNIT.
Logical Unit WWN Device Identifier: 5002538e40a1b2c3
`;

test('hdparm security: supported, frozen, enhanced erase', () => {
  assert.deepEqual(parseHdparmSecurity(FROZEN), {
    supported: true,
    enabled: false,
    locked: false,
    frozen: true,
    enhanced: true,
  });
});

test('hdparm security: locked and enabled, no enhanced erase', () => {
  const text = FROZEN.replace('\tnot\tenabled', '\t\tenabled')
    .replace('\tnot\tlocked', '\t\tlocked')
    .replace('\t\tfrozen', '\tnot\tfrozen')
    .replace('\t\tsupported: enhanced erase\n', '');
  assert.deepEqual(parseHdparmSecurity(text), {
    supported: true,
    enabled: true,
    locked: true,
    frozen: false,
    enhanced: false,
  });
});

test('hdparm without a Security section (SAS/bridged) means not supported', () => {
  assert.equal(parseHdparmSecurity('/dev/sda:\n\nATA device, with non-removable media\n'), null);
});
