// The emulator as a program (what a lab runs), with a hook program that sees every reset and
// boot override and owns the power state, as a script driving a VM would.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RedfishPowerDriver } from '../../conductor/power/redfish.ts';
import { parseBmcAddress } from '../../shared/bmc.ts';

const PASSWORD = 'Cli-S3cret';

describe('tools/redfish-bmc/main.ts', () => {
  let dir: string;
  let child: ChildProcess;
  let port: number;
  const driver = new RedfishPowerDriver();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-rfbmc-'));
    writeFileSync(join(dir, 'power'), 'Off\n');
    const hook = join(dir, 'hook.sh');
    writeFileSync(
      hook,
      `#!/bin/sh
echo "$*" >> '${dir}/hook.log'
case "$1" in
  get-power) cat '${dir}/power' ;;
  reset) echo "$5" > '${dir}/power' ;;
esac
`,
    );
    chmodSync(hook, 0o755);
    child = spawn(
      process.execPath,
      ['--import', 'tsx', 'tools/redfish-bmc/main.ts', '--port', '0', '--user', 'admin', '--hook', hook],
      { env: { ...process.env, REDFISH_BMC_PASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\/redfish\/v1/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`redfish-bmc exited with ${code}: ${out}`)));
    });
  });
  after(async () => {
    await driver.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('drives power and boot through the hook program', async () => {
    const creds = {
      bmc: parseBmcAddress(`redfish+http://admin@127.0.0.1:${port}/redfish/v1/Systems/1`),
      password: PASSWORD,
    };
    await driver.setBootDevice(creds, 'pxe');
    await driver.setPower(creds, 'on');
    assert.equal(readFileSync(join(dir, 'power'), 'utf8').trim(), 'On');
    // The machine turns itself off (a deployed OS shutting down): the hook's state wins.
    writeFileSync(join(dir, 'power'), 'Off\n');
    assert.equal(await driver.getPower(creds), 'off');
    const log = readFileSync(join(dir, 'hook.log'), 'utf8');
    assert.match(log, /^boot 1 Pxe Once UEFI$/m);
    assert.match(log, /^reset 1 On Off On Pxe$/m);
    assert.match(log, /^get-power 1$/m);
  });

  it('keeps the password off its command line', () => {
    const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
    assert.ok(cmdline.includes('main.ts'));
    assert.ok(!cmdline.includes(PASSWORD));
  });
});
