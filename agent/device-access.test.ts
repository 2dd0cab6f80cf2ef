import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decideDeviceAccess, describeDeviceAccess, inKilnRamdisk, refusalMessage } from './device-access.ts';

test('only the Kiln ramdisk without --allow-device may write any disk; an allow-list always confines', () => {
  assert.deepEqual(decideDeviceAccess({ inRamdisk: true, allowDevices: [] }), {
    inRamdisk: true,
    allowed: null,
  });
  assert.deepEqual(decideDeviceAccess({ inRamdisk: false, allowDevices: [] }), {
    inRamdisk: false,
    allowed: [],
  });
  assert.deepEqual(decideDeviceAccess({ inRamdisk: false, allowDevices: ['/dev/loop5', '/dev/loop5'] }), {
    inRamdisk: false,
    allowed: ['/dev/loop5'],
  });
  assert.deepEqual(decideDeviceAccess({ inRamdisk: true, allowDevices: ['/dev/sdb'] }), {
    inRamdisk: true,
    allowed: ['/dev/sdb'],
  });
});

test('the refusal names the device, why, and the flag that allows it', () => {
  const dev = decideDeviceAccess({ inRamdisk: false, allowDevices: ['/dev/loop5'] });
  assert.equal(
    refusalMessage(dev, ['/dev/sda']),
    'refusing to write to /dev/sda: the agent is not running in the Kiln ramdisk (no /etc/kiln-ramdisk), so it ' +
      'writes only to devices given with --allow-device (only /dev/loop5); to allow it, start the agent with ' +
      '--allow-device /dev/sda',
  );
  const none = decideDeviceAccess({ inRamdisk: false, allowDevices: [] });
  assert.match(
    refusalMessage(none, ['/dev/sda', '/dev/nvme0n1']),
    /\(none\); .*--allow-device \/dev\/sda --allow-device \/dev\/nvme0n1$/,
  );
  assert.match(
    refusalMessage(none, []),
    /^refusing to write to any disk: .*name the devices it may write with --allow-device/,
  );
  const ramdisk = decideDeviceAccess({ inRamdisk: true, allowDevices: ['/dev/sdb'] });
  assert.match(
    refusalMessage(ramdisk, ['/dev/sda']),
    /not in the agent's --allow-device list \(only \/dev\/sdb\)/,
  );
  assert.match(describeDeviceAccess(none), /write only to no device \(give --allow-device\)/);
  assert.match(describeDeviceAccess({ inRamdisk: true, allowed: null }), /may write any disk/);
});

test('the ramdisk is recognised by the marker file its build writes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-marker-'));
  try {
    const marker = join(dir, 'kiln-ramdisk');
    assert.equal(inKilnRamdisk(marker), false);
    writeFileSync(marker, 'KILN_RAMDISK_KERNEL=6.1.0\n');
    assert.equal(inKilnRamdisk(marker), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
