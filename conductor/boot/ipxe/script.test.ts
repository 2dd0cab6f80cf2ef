import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type BootScriptInput, renderBootScript } from './script.ts';

// Golden files: set KILN_UPDATE_GOLDEN=1 to rewrite them after an intended change, then review the diff.
const dir = join(import.meta.dirname, 'testdata');
function golden(name: string, input: BootScriptInput): void {
  const got = renderBootScript(input);
  const file = join(dir, `${name}.ipxe`);
  if (process.env.KILN_UPDATE_GOLDEN === '1') writeFileSync(file, got);
  assert.equal(got, readFileSync(file, 'utf8'));
}

describe('renderBootScript', () => {
  test('ramdisk: kernel args, retries and give-up', () => {
    golden('ramdisk', {
      action: 'ramdisk',
      mac: '52:54:00:99:00:10',
      kernelUrl: 'http://10.99.0.1:6385/boot/files/vmlinuz',
      initrdUrl: 'http://10.99.0.1:6385/boot/files/initramfs.zst',
      apiUrl: 'http://10.99.0.1:6385',
      extraArgs: ['console=ttyS0', 'panic=-1'],
    });
  });

  test('ramdisk with custom attempts and delay', () => {
    golden('ramdisk-retries', {
      action: 'ramdisk',
      mac: '52:54:00:99:00:11',
      kernelUrl: 'http://h/k',
      initrdUrl: 'http://h/i',
      apiUrl: 'http://h:6385',
      attempts: 2,
      retryDelay: 1,
    });
  });

  test('local boot for BIOS, UEFI and auto', () => {
    golden('local-bios', { action: 'local', mac: '52:54:00:99:00:10', firmware: 'bios' });
    golden('local-uefi', { action: 'local', mac: '52:54:00:99:00:10', firmware: 'uefi' });
    golden('local-auto', { action: 'local', mac: '52:54:00:99:00:10' });
  });

  test('ignore exits to the firmware', () => {
    golden('ignore', { action: 'ignore', mac: '52:54:00:99:00:10', reason: 'not on the allow-list' });
  });

  test('refuses arguments that would break the script', () => {
    const base = {
      action: 'ramdisk',
      mac: 'm',
      kernelUrl: 'http://h/k',
      initrdUrl: 'http://h/i',
      apiUrl: 'http://h',
    } as const;
    assert.throws(() => renderBootScript({ ...base, extraArgs: ['a b'] }), /kernel argument/);
    assert.throws(() => renderBootScript({ ...base, kernelUrl: 'http://h/k\nshell' }), /kernel URL/);
    assert.throws(() => renderBootScript({ ...base, attempts: 0 }), /attempts/);
    // echo text can't smuggle in iPXE variables or new lines
    const sneaky = 'a\n$' + '{net0/ip}';
    assert.doesNotMatch(renderBootScript({ action: 'ignore', mac: 'x', reason: sneaky }), /\$\{net0/);
  });
});
