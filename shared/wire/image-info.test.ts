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

test('malformed image_info is refused naming the field; what stock Ironic 2023.1 sends passes', () => {
  const ok = { ...base, checksum: 'x' };
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['no id', { ...ok, id: undefined }, /image_info\.id/],
    ['an empty id', { ...ok, id: '' }, /image_info\.id/],
    ['urls as one string', { ...ok, urls: 'http://x/img' }, /image_info\.urls/],
    ['a url that is not a string', { ...ok, urls: ['http://x/img', 7] }, /image_info\.urls\.1/],
    ['a numeric disk_format', { ...ok, disk_format: 5 }, /image_info\.disk_format/],
    ['a checksum object', { ...ok, checksum: { md5: 'x' } }, /image_info\.checksum/],
    ['root_mb as a list', { ...ok, image_type: 'partition', root_mb: [1] }, /image_info\.root_mb/],
  ];
  for (const [what, info, path] of cases) {
    assert.throws(
      () => parseImageInfo(info),
      (e: Error) => e.name === 'ImageInfoError' && path.test(e.message),
      what,
    );
  }
  // Ironic's agent_base image_info for a partition image, extra keys and nulls included.
  const ironic = {
    id: '6f1c2b4e-6d0a-4d3b-9b7e-1f0e5c1d2a3b',
    urls: ['http://10.0.0.1:8080/agent_images/6f1c'],
    disk_format: 'raw',
    container_format: 'bare',
    stream_raw_images: true,
    checksum: null,
    os_hash_algo: 'sha512',
    os_hash_value: 'ab'.repeat(64),
    node_uuid: '1be26c0b-03f2-4d2d-ae87-c02d7f33c123',
    image_type: 'partition',
    root_mb: 10240,
    swap_mb: 0,
    ephemeral_mb: 0,
    ephemeral_format: null,
    preserve_ephemeral: false,
    boot_option: 'local',
    deploy_boot_mode: 'uefi',
    disk_label: null,
    image_size: null,
  };
  const info = parseImageInfo(ironic);
  assert.equal(info.partition?.rootMb, 10240);
  assert.equal(info.bootMode, 'uefi');
  assert.equal(info.checksum.algo, 'sha512');
});
