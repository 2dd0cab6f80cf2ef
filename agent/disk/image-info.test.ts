import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseImageInfo } from './image-info.ts';

const base = { id: 'jammy.qcow2', urls: ['http://10.0.0.1:8080/agent_images/6f1c'], disk_format: 'qcow2' };

test('os_hash pair preferred; legacy checksum means md5; nothing means refusal', () => {
  const a = parseImageInfo({ ...base, os_hash_algo: 'sha512', os_hash_value: 'ab', checksum: 'cd' });
  assert.deepEqual(a.checksum, { algo: 'sha512', value: 'ab' });
  assert.deepEqual(parseImageInfo({ ...base, checksum: 'cd' }).checksum, { algo: 'md5', value: 'cd' });
  assert.deepEqual(
    parseImageInfo({ ...base, os_hash_algo: 'sha256', os_hash_value: 'http://x/SHA256SUMS' }).checksum,
    {
      algo: 'sha256',
      url: 'http://x/SHA256SUMS',
    },
  );
  assert.throws(() => parseImageInfo(base), /unverified image/);
  assert.throws(
    () => parseImageInfo({ ...base, os_hash_algo: 'sha1', os_hash_value: 'x' }),
    /sha1 is not supported/,
  );
  assert.throws(() => parseImageInfo({ ...base, urls: [], checksum: 'x' }), /has no urls/);
  // IPA falls back to the legacy md5 field when the os_hash algorithm is one it can't use.
  assert.deepEqual(
    parseImageInfo({ ...base, os_hash_algo: 'sha1', os_hash_value: 'x', checksum: 'cd' }).checksum,
    {
      algo: 'md5',
      value: 'cd',
    },
  );
});

test("image_size (IPA's name for the catalog size) becomes the expected byte count", () => {
  const info = { ...base, checksum: 'x' };
  assert.equal(parseImageInfo({ ...info, image_size: 8388608 }).imageSize, 8388608);
  assert.equal(parseImageInfo({ ...info, image_size: '8388608' }).imageSize, 8388608);
  assert.equal(parseImageInfo({ ...info, image_size: null }).imageSize, null);
  assert.equal(parseImageInfo(info).imageSize, null);
  assert.equal(parseImageInfo({ ...info, kiln_size: 5 }).imageSize, null, 'not a field IPA knows');
  assert.throws(() => parseImageInfo({ ...info, image_size: -1 }), /image_size -1 is not a byte count/);
  assert.throws(() => parseImageInfo({ ...info, image_size: '8 MiB' }), /is not a byte count/);
});

test("partition image fields; the boot mode is the node's, else image_info's, else left to the ramdisk", () => {
  const p = parseImageInfo({
    ...base,
    checksum: 'x',
    image_type: 'partition',
    root_gb: 10,
    swap_mb: 512,
    disk_label: 'gpt',
  });
  assert.deepEqual(p.partition, {
    rootMb: 10240,
    swapMb: 512,
    ephemeralMb: 0,
    ephemeralFormat: null,
    diskLabel: 'gpt',
  });
  assert.equal(p.bootMode, null, 'nothing said: the engine asks the ramdisk');
  const info = { ...base, checksum: 'x' };
  assert.equal(parseImageInfo(info, { properties: { capabilities: 'boot_mode:bios' } }).bootMode, 'bios');
  assert.equal(parseImageInfo(info, { properties: { boot_mode: 'bios' } }).bootMode, 'bios');
  assert.equal(parseImageInfo({ ...info, deploy_boot_mode: 'uefi' }).bootMode, 'uefi');
  assert.equal(
    parseImageInfo({ ...info, deploy_boot_mode: 'uefi' }, { instance_info: { deploy_boot_mode: 'bios' } })
      .bootMode,
    'bios',
    'the node, as IPA reads it, before image_info',
  );
  const label = parseImageInfo(
    { ...info, image_type: 'partition', root_mb: 100 },
    { instance_info: { capabilities: { disk_label: 'gpt' } } },
  );
  assert.equal(label.partition?.diskLabel, 'gpt', 'disk_label capability when image_info has none');
  assert.equal(parseImageInfo(info).partition, null);
  assert.throws(() => parseImageInfo({ ...info, image_type: 'partition' }), /needs root_mb/);
});
