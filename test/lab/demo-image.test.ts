// The demo OS image: small, reproducible, and it boots under QEMU (TCG) from its own MBR through
// syslinux to the marker line, reading the hostname from a config drive given either as an ISO9660
// second disk or as a VFAT partition appended to the image's disk (what a deploy writes).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeConfigDriveIso } from '../../lab/config-drive.ts';
import { buildDemoImage, DEMO_BOOTED, DEMO_NO_CONFIGDRIVE, type DemoImage } from '../../lab/demo-image.ts';

const UUID = '8f4c2a51-3b9e-4d7a-9a0c-2f1e5d6b7c80';

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Boot QEMU (TCG, no network) with the given drives until the console matches re. */
async function bootUntil(
  work: string,
  drives: string[],
  re: RegExp,
  timeoutMs = 90_000,
): Promise<{ text: string; ms: number }> {
  const consoleLog = join(work, `console-${Date.now()}.log`);
  const args = [
    '-machine',
    'q35',
    '-accel',
    'tcg',
    '-cpu',
    'max',
    '-m',
    '256',
    '-nographic',
    '-monitor',
    'none',
    '-nic',
    'none',
    '-serial',
    `file:${consoleLog}`,
    ...drives.flatMap((d) => ['-drive', d]),
  ];
  const started = Date.now();
  const qemu: ChildProcess = spawn('qemu-system-x86_64', args, { stdio: 'ignore' });
  try {
    for (;;) {
      let text = '';
      try {
        text = readFileSync(consoleLog, 'utf8');
      } catch {
        // not created yet
      }
      if (re.test(text)) return { text, ms: Date.now() - started };
      if (qemu.exitCode !== null)
        throw new Error(`QEMU exited (${qemu.exitCode}); console:\n${text.slice(-800)}`);
      if (Date.now() - started > timeoutMs)
        throw new Error(`no ${re} within ${timeoutMs} ms; console:\n${text.slice(-800)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    qemu.kill('SIGKILL');
  }
}

describe('demo OS image', { timeout: 240_000 }, () => {
  let image: DemoImage;
  let work: string;

  before(async () => {
    image = await buildDemoImage();
    work = mkdtempSync(join(tmpdir(), 'kiln-demo-test-'));
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is a small MBR disk whose recorded sha256 and size are the file', () => {
    const bytes = readFileSync(image.path);
    assert.equal(bytes.length, image.size);
    assert.ok(image.size < 40 * 1024 * 1024, `${image.size} bytes is over the 40 MiB budget`);
    assert.equal(sha256(image.path), image.sha256);
    assert.equal(readFileSync(`${image.path}.sha256`, 'utf8').split(' ')[0], image.sha256);
    assert.equal(bytes.readUInt16LE(510), 0xaa55, 'MBR signature');
    assert.equal(bytes[446], 0x80, 'first partition is active');
    assert.equal(bytes.readUInt32LE(446 + 8), 2048, 'first partition starts at 1 MiB');
    process.stderr.write(`# demo image ${image.size} bytes, sha256 ${image.sha256}\n`);
  });

  it('builds byte-identical from the same inputs', async () => {
    const again = await buildDemoImage({ cacheDir: join(work, 'cache') });
    assert.notEqual(again.path, image.path);
    assert.equal(again.sha256, image.sha256);
    assert.equal(sha256(again.path), image.sha256);
  });

  it('boots to KILN-DEMO-BOOTED with the hostname from an ISO9660 config drive on a second disk', async () => {
    const disk = join(work, 'iso-case.raw');
    copyFileSync(image.path, disk);
    const iso = join(work, 'config-2.iso');
    await makeConfigDriveIso(iso, { metaData: { uuid: UUID, hostname: 'demo-test', name: 'demo-test' } });
    const r = await bootUntil(
      work,
      [`file=${disk},format=raw,if=virtio`, `file=${iso},format=raw,if=virtio,readonly=on`],
      DEMO_BOOTED,
    );
    const m = DEMO_BOOTED.exec(r.text)!;
    assert.equal(m[1], 'demo-test');
    assert.equal(m[2], UUID);
    assert.match(r.text, /Booting from Hard Disk/);
    process.stderr.write(`# QEMU start -> KILN-DEMO-BOOTED in ${r.ms} ms (TCG)\n`);
  });

  it('reads a VFAT config-2 partition appended after the image, as a deploy adds it', async () => {
    const disk = join(work, 'part-case.raw');
    copyFileSync(image.path, disk);
    const partStartMiB = Math.ceil(image.size / 1048576) + 1;
    truncateSync(disk, (partStartMiB + 16) * 1048576);
    execFileSync('sfdisk', ['--quiet', '--append', disk], {
      input: `start=${partStartMiB * 2048}, size=${16 * 2048}, type=c\n`,
    });
    const fat = join(work, 'config-2.fat');
    execFileSync('mkfs.vfat', ['-C', '-n', 'config-2', fat, String(16 * 1024)], { stdio: 'ignore' });
    const meta = join(work, 'meta_data.json');
    writeFileSync(meta, JSON.stringify({ uuid: UUID, hostname: 'from-partition' }));
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    execFileSync('mmd', ['-i', fat, '::/openstack', '::/openstack/latest'], { env });
    execFileSync('mcopy', ['-i', fat, meta, '::/openstack/latest/meta_data.json'], { env });
    execFileSync('dd', [
      `if=${fat}`,
      `of=${disk}`,
      'bs=1M',
      `seek=${partStartMiB}`,
      'conv=notrunc',
      'status=none',
    ]);
    const r = await bootUntil(work, [`file=${disk},format=raw,if=virtio`], DEMO_BOOTED);
    const m = DEMO_BOOTED.exec(r.text)!;
    assert.equal(m[1], 'from-partition');
    assert.match(r.text, /configdrive=\/dev\/vda2/);
  });

  it('says KILN-DEMO-NO-CONFIGDRIVE when there is none', async () => {
    const disk = join(work, 'bare.raw');
    copyFileSync(image.path, disk);
    const r = await bootUntil(work, [`file=${disk},format=raw,if=virtio`], /KILN-DEMO-/);
    assert.match(r.text, DEMO_NO_CONFIGDRIVE);
    assert.doesNotMatch(r.text, DEMO_BOOTED);
  });
});
