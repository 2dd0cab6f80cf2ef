import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startInProcessAgent } from '../../test/agent/in-process.ts';
import { pstoreMountPoint } from './pstore.ts';

let dir: string;
let pstore: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-pstore-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fillPstore(): Promise<void> {
  pstore = join(dir, 'pstore');
  await mkdir(join(pstore, 'sub'), { recursive: true });
  await writeFile(join(pstore, 'dmesg-efi-170000000001'), 'Oops: previous tenant');
  await writeFile(join(pstore, 'console-ramoops-0'), 'console');
  await writeFile(join(pstore, 'sub', 'x'), 'x');
}

const erasePstore = {
  step: { step: 'erase_pstore', interface: 'deploy', priority: 0 },
  node: {},
  ports: [],
};

test('the pstore mount point comes from the mounts table, as IPA finds it', async () => {
  const mounts = join(dir, 'mounts');
  await writeFile(
    mounts,
    'sysfs /sys sysfs rw,nosuid 0 0\npstore /sys/fs/pstore pstore rw,nosuid,nodev,noexec 0 0\n',
  );
  assert.equal(await pstoreMountPoint(mounts), '/sys/fs/pstore');
  await writeFile(mounts, 'sysfs /sys sysfs rw 0 0\n');
  assert.equal(await pstoreMountPoint(mounts), null);
  assert.equal(await pstoreMountPoint(join(dir, 'no-such-file')), null);
});

test('in the ramdisk, erase_pstore deletes every record and keeps the directory', async () => {
  await fillPstore();
  const a = await startInProcessAgent({ inRamdisk: true, pstoreDir: async () => pstore });
  try {
    const rec = await a.command('clean.execute_clean_step', erasePstore);
    assert.equal(rec.command_status, 'SUCCEEDED', JSON.stringify(rec.command_error));
    assert.deepEqual((rec.command_result as { clean_result: unknown }).clean_result, {
      pstore,
      removed: ['console-ramoops-0', 'dmesg-efi-170000000001', 'sub'],
    });
    assert.deepEqual(await readdir(pstore), []);
  } finally {
    await a.stop();
  }
  // No pstore mounted: nothing to do, and that is a success.
  const none = await startInProcessAgent({ inRamdisk: true, pstoreDir: async () => null });
  try {
    const rec = await none.command('clean.execute_clean_step', erasePstore);
    assert.equal(rec.command_status, 'SUCCEEDED');
    assert.deepEqual((rec.command_result as { clean_result: unknown }).clean_result, {
      pstore: null,
      removed: [],
    });
  } finally {
    await none.stop();
  }
});

test("outside the ramdisk, erase_pstore refuses: the records are this machine's own", async () => {
  await fillPstore();
  const a = await startInProcessAgent({ inRamdisk: false, pstoreDir: async () => pstore });
  try {
    const rec = await a.command('clean.execute_clean_step', erasePstore);
    assert.equal(rec.command_status, 'FAILED');
    assert.match(
      String((rec.command_error as { details?: string }).details),
      new RegExp(
        `^erase_pstore refused: the agent is not running in the Kiln ramdisk .* in ${pstore} are this machine's own$`,
      ),
    );
    assert.equal((await readdir(pstore)).length, 3);
  } finally {
    await a.stop();
  }
});
