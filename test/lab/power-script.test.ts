// The generated power script's boot-device bookkeeping and status, run for real with sh (no QEMU
// is started: bootdev and status only touch the VM's state files).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { renderPowerScript, shq } from '../../lab/power-script.ts';
import { labMac } from '../../lab/vm.ts';

describe('lab power script', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-power-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'power');
  writeFileSync(
    script,
    renderPowerScript({
      firmware: 'bios',
      dir,
      name: 'unit',
      qemu: '/bin/false',
      args: [],
      marker: join(dir, 'qmp.sock'),
      qmpSocket: join(dir, 'qmp.sock'),
      node: process.execPath,
      qmpClient: '/nonexistent',
    }),
    { mode: 0o755 },
  );
  const power = (...a: string[]) => execFileSync(script, a, { encoding: 'utf8' }).trim();

  it('keeps one-time and persistent boot devices apart', () => {
    assert.equal(power('bootdev'), 'none -');
    power('bootdev', 'pxe', 'once');
    assert.equal(power('bootdev'), 'none pxe');
    power('bootdev', 'disk', 'persistent');
    assert.equal(power('bootdev'), 'disk -', 'a persistent setting replaces a pending one-time one');
    power('bootdev', 'cdrom');
    assert.equal(power('bootdev'), 'disk cdrom');
    power('bootdev', 'none', 'once');
    assert.equal(power('bootdev'), 'disk -');
  });

  it('refuses unknown devices and modes, naming the VM', () => {
    assert.throws(
      () => execFileSync(script, ['bootdev', 'floppy'], { stdio: 'pipe' }),
      /VM unit: unknown boot device/,
    );
    assert.throws(
      () => execFileSync(script, ['bootdev', 'pxe', 'sometimes'], { stdio: 'pipe' }),
      /neither once nor persistent/,
    );
  });

  it('reads off with no pid file, and with a pid file naming a process that is not this VM', () => {
    assert.equal(power('status'), 'off');
    writeFileSync(join(dir, 'qemu.pid'), `${process.pid}\n`);
    assert.equal(power('status'), 'off');
    assert.equal(power('off'), '', 'off does not signal a process that is not its QEMU');
  });

  it('reports a QEMU that exits at start', () => {
    assert.throws(() => execFileSync(script, ['on'], { stdio: 'pipe' }), /VM unit: QEMU exited at start/);
  });

  it('quotes for sh', () => {
    const s = `it's "a" $test \\ ok`;
    assert.equal(execFileSync('sh', ['-c', `printf %s ${shq(s)}`], { encoding: 'utf8' }), s);
  });

  it("gives lab MACs in QEMU's locally administered range", () => {
    assert.equal(labMac(0, 0), '52:54:00:6b:00:00');
    assert.equal(labMac(200, 17), '52:54:00:6b:c8:11');
  });
});
