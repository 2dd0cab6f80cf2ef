import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '../../shared/log.ts';
import { prepareLoaders } from './loaders.ts';
import { resolveUnderRoot } from './tftp/resolve.ts';

test('only loaders present in the TFTP root are offered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-loaders-'));
  try {
    writeFileSync(join(dir, 'undionly.kpxe'), 'x');
    mkdirSync(join(dir, 'arm64'));
    writeFileSync(join(dir, 'arm64', 'snp.efi'), 'x');
    const got = await prepareLoaders(
      { bios: 'undionly.kpxe', efiX64: 'ipxe.efi', efiArm64: 'arm64/snp.efi' },
      dir,
      silentLogger(),
    );
    assert.deepEqual(got.loaders, { bios: 'undionly.kpxe', efiArm64: 'arm64/snp.efi' });
    const up = await prepareLoaders({ bios: '../undionly.kpxe' }, dir, silentLogger());
    assert.deepEqual(up.loaders, {});
    const none = await prepareLoaders({ bios: 'undionly.kpxe' }, join(dir, 'missing'), silentLogger());
    assert.deepEqual(none.loaders, {});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a configured loader that is a symlink out of the root is served; nothing else outside is', async () => {
  // Debian: /usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi.
  const base = mkdtempSync(join(tmpdir(), 'kiln-loader-link-'));
  const root = join(base, 'tftp');
  const elsewhere = join(base, 'boot');
  try {
    mkdirSync(root);
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'ipxe.efi'), 'real efi');
    writeFileSync(join(elsewhere, 'secret'), 'not for clients');
    symlinkSync(join(elsewhere, 'ipxe.efi'), join(root, 'ipxe.efi'));
    symlinkSync(join(elsewhere, 'secret'), join(root, 'secret'));
    symlinkSync(join(elsewhere, 'ipxe.efi'), join(root, 'other-name.efi'));

    // Before the loaders are prepared, TFTP refuses the link like any other way out.
    assert.equal((await resolveUnderRoot(root, 'ipxe.efi')).ok, false);

    const prepared = await prepareLoaders({ efiX64: 'ipxe.efi' }, root, silentLogger());
    assert.deepEqual(prepared.loaders, { efiX64: 'ipxe.efi' });
    for (const name of ['ipxe.efi', '/ipxe.efi', './ipxe.efi']) {
      const r = await resolveUnderRoot(root, name);
      assert.ok(r.ok, name);
      assert.equal(readFileSync(r.path, 'utf8'), 'real efi');
    }
    // Client-supplied names still may not leave the root: another link, the same target under
    // another name, traversal.
    for (const name of ['secret', 'other-name.efi', '../boot/ipxe.efi', '../boot/secret']) {
      const r = await resolveUnderRoot(root, name);
      assert.ok(!r.ok && r.code === 'denied', name);
    }
    prepared.release();
    assert.equal((await resolveUnderRoot(root, 'ipxe.efi')).ok, false, 'released with the boot services');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a loader link retargeted after start is not followed to its new target', async () => {
  const base = mkdtempSync(join(tmpdir(), 'kiln-loader-retarget-'));
  const root = join(base, 'tftp');
  try {
    mkdirSync(root);
    writeFileSync(join(base, 'ipxe.efi'), 'efi');
    writeFileSync(join(base, 'shadow'), 'secret');
    symlinkSync(join(base, 'ipxe.efi'), join(root, 'ipxe.efi'));
    const prepared = await prepareLoaders({ efiX64: 'ipxe.efi' }, root, silentLogger());
    rmSync(join(root, 'ipxe.efi'));
    symlinkSync(join(base, 'shadow'), join(root, 'ipxe.efi'));
    const r = await resolveUnderRoot(root, 'ipxe.efi');
    assert.ok(!r.ok && r.code === 'denied');
    prepared.release();
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
