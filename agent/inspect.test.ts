import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InventoryDisk } from '../shared/wire/ipa.ts';
import { defaultRootDisk } from './inspect.ts';

const disk = (name: string, gib: number): InventoryDisk => ({
  name,
  size: gib * 1024 ** 3,
  model: null,
  rotational: false,
  wwn: null,
  serial: null,
  vendor: null,
  wwn_with_extension: null,
  wwn_vendor_extension: null,
  hctl: null,
  by_path: null,
});

test("IPA's root disk without hints: the smallest disk of at least 4 GiB, ties by name", () => {
  assert.equal(
    defaultRootDisk([disk('/dev/sdb', 480), disk('/dev/sda', 2), disk('/dev/sdc', 240)])?.name,
    '/dev/sdc',
  );
  assert.equal(defaultRootDisk([disk('/dev/sdd', 240), disk('/dev/sdc', 240)])?.name, '/dev/sdc');
  assert.equal(defaultRootDisk([disk('/dev/sda', 3)]), null);
});
