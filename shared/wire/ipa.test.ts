import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeBootMode, nodeDiskLabel, parseCapabilities } from './ipa.ts';

test('capabilities: a dict, a JSON string or key:value pairs; malformed entries dropped', () => {
  assert.deepEqual(parseCapabilities({ capabilities: 'boot_mode:bios,disk_label:gpt' }), {
    boot_mode: 'bios',
    disk_label: 'gpt',
  });
  assert.deepEqual(parseCapabilities({ capabilities: '{"boot_mode": "uefi"}' }), { boot_mode: 'uefi' });
  assert.deepEqual(parseCapabilities({ capabilities: { secure_boot: true } }), { secure_boot: 'true' });
  assert.deepEqual(parseCapabilities({ capabilities: 'boot_mode,a:b:c,x:y' }), { x: 'y' });
  assert.deepEqual(parseCapabilities({}), {});
  assert.deepEqual(parseCapabilities({ capabilities: 42 }), {});
});

test("the node's boot mode in IPA's order, null when the node says nothing", () => {
  const caps = (c: string) => ({ capabilities: c });
  assert.equal(nodeBootMode({}), null);
  assert.equal(nodeBootMode({ properties: { boot_mode: 'bios' } }), 'bios');
  assert.equal(nodeBootMode({ properties: { ...caps('boot_mode:bios'), boot_mode: 'uefi' } }), 'bios');
  assert.equal(
    nodeBootMode({ instance_info: { deploy_boot_mode: 'UEFI' }, properties: caps('boot_mode:bios') }),
    'uefi',
  );
  assert.equal(
    nodeBootMode({ instance_info: caps('secure_boot:true'), properties: caps('boot_mode:bios') }),
    'uefi',
    'secure boot implies UEFI',
  );
  assert.equal(nodeBootMode({ driver_internal_info: { deploy_boot_mode: 'bios' } }), 'bios');
  assert.equal(nodeBootMode({ instance_info: { deploy_boot_mode: 'legacy' } }), null);
  assert.equal(nodeDiskLabel({ properties: caps('disk_label:gpt') }), 'gpt');
  assert.equal(
    nodeDiskLabel({ instance_info: caps('disk_label:msdos'), properties: caps('disk_label:gpt') }),
    'msdos',
  );
  assert.equal(nodeDiskLabel({}), null);
});
