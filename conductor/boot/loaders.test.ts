import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '../../shared/log.ts';
import { presentLoaders } from './loaders.ts';

test('only loaders present in the TFTP root are offered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-loaders-'));
  try {
    writeFileSync(join(dir, 'undionly.kpxe'), 'x');
    mkdirSync(join(dir, 'arm64'));
    writeFileSync(join(dir, 'arm64', 'snp.efi'), 'x');
    const got = await presentLoaders(
      { bios: 'undionly.kpxe', efiX64: 'ipxe.efi', efiArm64: 'arm64/snp.efi' },
      dir,
      silentLogger(),
    );
    assert.deepEqual(got, { bios: 'undionly.kpxe', efiArm64: 'arm64/snp.efi' });
    assert.deepEqual(await presentLoaders({ bios: '../undionly.kpxe' }, dir, silentLogger()), {});
    assert.deepEqual(
      await presentLoaders({ bios: 'undionly.kpxe' }, join(dir, 'missing'), silentLogger()),
      {},
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
