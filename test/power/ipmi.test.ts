// The ipmi driver against a real BMC peer: OpenIPMI's ipmi_sim on loopback, spoken to by the real
// ipmitool the driver runs.
import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { BmcCredentials } from '../../conductor/power/driver.ts';
import { IpmiPowerDriver } from '../../conductor/power/ipmi.ts';
import { parseBmcAddress } from '../../shared/bmc.ts';
import { isKilnError, type KilnError } from '../../shared/errors.ts';
import { type RunOptions, run } from '../../shared/exec.ts';
import { createLogger } from '../../shared/log.ts';
import { freeUdpPort, type IpmiSim, startIpmiSim } from '../support/ipmi-sim.ts';
import { powerContract } from './power.contract.ts';

function credsFor(
  sim: IpmiSim,
  password = sim.password,
  options: Record<string, unknown> = {},
): BmcCredentials {
  return {
    bmc: parseBmcAddress(`ipmi://${sim.user}@${sim.host}:${sim.port}`),
    password,
    // Fast retries keep the failure tests short; the defaults are for real networks.
    options: { backoff_ms: 100, ...options },
  };
}

function kilnError(e: unknown): KilnError {
  assert.ok(isKilnError(e), `expected a KilnError, got ${String(e)}`);
  return e;
}

powerContract('ipmi + ipmi_sim', async () => {
  const sim = await startIpmiSim();
  return {
    driver: new IpmiPowerDriver(),
    creds: credsFor(sim),
    wrongCreds: credsFor(sim, 'wrong-password'),
    peer: {
      power: () => sim.power(),
      setPower: (p) => sim.setPower(p),
      bootDevice: () => ({ none: null, default: 'disk' })[sim.bootdev()] ?? sim.bootdev(),
    },
    close: () => sim.stop(),
  };
});

describe('ipmi driver against ipmi_sim', () => {
  let sim: IpmiSim;
  const logLines: string[] = [];
  const log = createLogger({
    name: 'test',
    level: 'debug',
    destination: new Writable({
      write(chunk, _enc, cb) {
        logLines.push(String(chunk));
        cb();
      },
    }),
  });
  // Every ipmitool run the driver makes, so tests check how often and with which bounds it ran
  // ipmitool instead of timing it.
  const runs: { args: readonly string[]; opts: RunOptions | undefined }[] = [];
  const driver = new IpmiPowerDriver({
    log,
    run: (file, args, opts) => {
      runs.push({ args, opts });
      return run(file, args, opts);
    },
  });
  /** The value after `flag` in an ipmitool argv. */
  const flag = (args: readonly string[], f: string) => args[args.indexOf(f) + 1];

  before(async () => {
    sim = await startIpmiSim({ password: 'S3cret-ipmi-pw' }); // ≤ 16 bytes, the IPMI 1.5 limit;
  });
  after(async () => {
    await sim?.stop();
  });

  it('sends bootdev with persistent and efiboot, and ipmi_sim receives the selector', async (t) => {
    // A wrapper around ipmitool records the argv it was given; ipmi_sim itself doesn't report the flags.
    const wrapper = join(sim.dir, 'ipmitool-wrapper.sh');
    writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${sim.dir}/argv'\nexec ipmitool "$@"\n`);
    chmodSync(wrapper, 0o755);
    t.after(() => writeFileSync(join(sim.dir, 'argv'), ''));
    const d = new IpmiPowerDriver({ ipmitool: wrapper });
    await d.setBootDevice(credsFor(sim), 'disk', { persistent: true, mode: 'uefi' });
    assert.equal(sim.bootdev(), 'default');
    await d.setBootDevice(credsFor(sim), 'pxe');
    assert.equal(sim.bootdev(), 'pxe');
    const argv = readFileSync(join(sim.dir, 'argv'), 'utf8').trim().split('\n');
    assert.match(argv[0]!, /chassis bootdev disk options=persistent,efiboot$/);
    assert.match(argv[1]!, /chassis bootdev pxe$/);
    assert.match(argv[0]!, / -C 3 /);
    for (const a of argv) assert.ok(!a.includes(sim.password), 'password must not be in argv');
  });

  it('keeps the password out of every running ipmitool command line (/proc/<pid>/cmdline)', async () => {
    sim.setDelay(0.6);
    const seen: string[] = [];
    let running = true;
    const watcher = (async () => {
      while (running) {
        for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
          try {
            const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
            if (cmd.startsWith('ipmitool\0') && cmd.includes(String(sim.port)))
              seen.push(cmd.replaceAll('\0', ' '));
          } catch {
            // the process ended between readdir and read
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await driver.getPower(credsFor(sim, sim.password, { timeout_s: 3 }));
    } finally {
      running = false;
      await watcher;
      sim.setDelay(0);
    }
    assert.ok(seen.length > 0, 'the watcher saw the ipmitool process');
    for (const cmd of seen) {
      assert.ok(!cmd.includes(sim.password), `password in argv: ${cmd}`);
      assert.match(cmd, / -E /);
    }
  });

  it('says the credentials were rejected, without retrying or leaking the password into logs', async () => {
    const wrong = 'Wr0ng-pa55word-xyz';
    const before = sim.calls().length;
    const from = runs.length;
    const e = kilnError(await driver.getPower(credsFor(sim, wrong)).catch((x) => x));
    assert.equal(e.code, 'BMC_ERROR');
    assert.equal(
      e.message,
      `BMC 127.0.0.1:${sim.port} rejected the credentials for user "admin"; check the username in bmc_address and bmc_password`,
    );
    assert.equal(runs.length - from, 1, 'a refusal is not retried');
    assert.equal(sim.calls().length, before, 'nothing reached the chassis');
    const logs = logLines.join('');
    assert.match(logs, /ipmitool failed/);
    assert.ok(!logs.includes(wrong) && !logs.includes(sim.password), 'logs must not carry passwords');
  });

  it('speaks IPMI 1.5 (interface lan) too, and knows its wrong-password answer', async () => {
    sim.setPower('on');
    assert.equal(await driver.getPower(credsFor(sim, sim.password, { interface: 'lan' })), 'on');
    const e = kilnError(
      await driver.getPower(credsFor(sim, 'wrong-pw', { interface: 'lan' })).catch((x) => x),
    );
    assert.match(e.message, /rejected the credentials for user "admin"/);
  });

  it('reports an unknown user the same way', async () => {
    const c = credsFor(sim);
    c.bmc = parseBmcAddress(`ipmi://nobody@127.0.0.1:${sim.port}`);
    const e = kilnError(await driver.validate(c).catch((x) => x));
    assert.match(e.message, /rejected the credentials for user "nobody"/);
  });

  it('names the cipher suite when the BMC does not support it', async () => {
    const e = kilnError(
      await driver.getPower(credsFor(sim, sim.password, { cipher_suite: 17 })).catch((x) => x),
    );
    assert.match(e.message, /does not accept IPMI cipher suite 17; set bmc_options.cipher_suite/);
  });

  it('names the privilege level when the BMC refuses it', async () => {
    sim.setPower('off');
    const e = kilnError(
      await driver.setPower(credsFor(sim, sim.password, { privilege_level: 'user' }), 'on').catch((x) => x),
    );
    assert.match(e.message, /refused "chassis power on" at privilege level USER/);
    assert.equal(sim.power(), 'off');
  });

  it('rejects unknown options with VALIDATION_FAILED', async () => {
    const e = kilnError(
      await driver.getPower(credsFor(sim, sim.password, { cipher_suit: 3 })).catch((x) => x),
    );
    assert.equal(e.code, 'VALIDATION_FAILED');
    assert.match(e.message, /bmc_options: Unrecognized key: "cipher_suit"|cipher_suit/);
  });

  it('times out on a port where nothing listens, after the configured tries, in bounded time', async () => {
    const port = await freeUdpPort();
    const c: BmcCredentials = {
      bmc: parseBmcAddress(`ipmi://admin@127.0.0.1:${port}`),
      password: 'x',
      options: { tries: 2, timeout_s: 1, retries: 1, backoff_ms: 100 },
    };
    const from = runs.length;
    const e = kilnError(await driver.getPower(c).catch((x) => x));
    assert.equal(
      e.message,
      `BMC 127.0.0.1:${port} timed out after 2 tries; check that the BMC is reachable from the conductor and that IPMI-over-LAN is enabled`,
    );
    assert.deepEqual(e.details, {
      bmc: `ipmi://admin@127.0.0.1:${port}`,
      command: 'chassis power status',
      kind: 'no-response',
      tries: 2,
    });
    // Bounded: two ipmitool runs, each waiting 1 s per message with one resend, and each under a
    // process timeout in case ipmitool itself hangs.
    const made = runs.slice(from);
    assert.equal(made.length, 2);
    for (const m of made) {
      assert.equal(flag(m.args, '-N'), '1');
      assert.equal(flag(m.args, '-R'), '1');
      assert.ok(m.opts?.timeoutMs && m.opts.timeoutMs <= 30_000, `process timeout ${m.opts?.timeoutMs}`);
    }
  });

  it('a slow BMC times out with the default per-request timeout and works with a longer one', async (t) => {
    // ipmitool waits -N seconds per message and resends -R times: 1 s × 2 by default, so an answer
    // that takes 2.5 s is lost.
    sim.setDelay(2.5);
    t.after(() => sim.setDelay(0));
    const e = kilnError(await driver.getPower(credsFor(sim, sim.password, { tries: 1 })).catch((x) => x));
    assert.match(e.message, /timed out after 1 tries/);
    sim.setPower('on');
    const t0 = performance.now();
    assert.equal(await driver.getPower(credsFor(sim, sim.password, { timeout_s: 8 })), 'on');
    assert.ok(performance.now() - t0 >= 2400);
  });

  it('reboots a running node with a chassis reset', async () => {
    sim.setPower('on');
    const before = sim.calls().length;
    await driver.setPower(credsFor(sim), 'reboot');
    assert.ok(sim.calls().slice(before).includes('set reset 1'));
    assert.equal(sim.power(), 'on');
  });
});
