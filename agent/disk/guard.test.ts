import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPartitionOf, TargetGuard } from './guard.ts';

test('partition names follow the kernel rules (p separator after a digit)', () => {
  assert.ok(isPartitionOf('/dev/sda1', '/dev/sda'));
  assert.ok(isPartitionOf('/dev/nvme0n1p2', '/dev/nvme0n1'));
  assert.ok(isPartitionOf('/dev/loop3p1', '/dev/loop3'));
  assert.ok(!isPartitionOf('/dev/sdab', '/dev/sda'));
  assert.ok(!isPartitionOf('/dev/loop31', '/dev/loop3'));
  assert.ok(!isPartitionOf('/dev/nvme0n11', '/dev/nvme0n1'));
});

test('the guard allows its targets and their partitions, nothing else', () => {
  const g = new TargetGuard(['/dev/loop3']);
  assert.ok(g.allows('/dev/loop3'));
  assert.ok(g.allows('/dev/loop3p2'));
  assert.ok(!g.allows('/dev/loop30'));
  assert.ok(!g.allows('/dev/vda'));
  assert.throws(() => g.assertWritable('/dev/sda'), { code: 'TARGET_NOT_ALLOWED' });
});

test('a device limit (the agent allow-list) refuses even a selected target, with its own message', () => {
  const g = new TargetGuard(['/dev/loop3', '/dev/sda'], {
    devices: ['/dev/loop3'],
    refusal: (d) => `refusing ${d.join(', ')}: use --allow-device`,
  });
  assert.ok(g.allows('/dev/loop3p1'));
  assert.ok(!g.allows('/dev/sda'));
  assert.throws(() => g.assertWritable('/dev/sda1'), {
    code: 'TARGET_NOT_ALLOWED',
    message: 'refusing /dev/sda1: use --allow-device',
  });
  assert.doesNotThrow(() => g.assertWritable('/dev/loop3'));
});
