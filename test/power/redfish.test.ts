// The redfish driver against the Redfish BMC emulator (tools/redfish-bmc), over real HTTP and HTTPS.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { BmcCredentials } from '../../conductor/power/driver.ts';
import { RedfishPowerDriver } from '../../conductor/power/redfish.ts';
import { parseBmcAddress } from '../../shared/bmc.ts';
import { isKilnError, type KilnError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/log.ts';
import { type RedfishBmc, startRedfishBmc } from '../../tools/redfish-bmc/server.ts';
import { powerContract } from './power.contract.ts';
import { makeTestPki } from './tls.ts';

const PASSWORD = 'Redfish-S3cret-pw';
const BOOT_DEVICE: Record<string, string | null> = { None: null, Pxe: 'pxe', Hdd: 'disk', Cd: 'cdrom' };

function credsFor(
  bmc: RedfishBmc,
  password = PASSWORD,
  options: Record<string, unknown> = {},
  path = '/redfish/v1/Systems/1',
): BmcCredentials {
  const scheme = bmc.url.startsWith('https') ? 'redfish+https' : 'redfish+http';
  return {
    bmc: parseBmcAddress(`${scheme}://admin@127.0.0.1:${bmc.port}${path}`),
    password,
    options: { backoff_ms: 50, ...options },
  };
}

function kilnError(e: unknown): KilnError {
  assert.ok(isKilnError(e), `expected a KilnError, got ${String(e)}`);
  return e;
}

for (const auth of ['basic', 'session'] as const) {
  powerContract(`redfish (${auth} auth) + emulator`, async () => {
    const bmc = await startRedfishBmc({ user: 'admin', password: PASSWORD });
    const driver = new RedfishPowerDriver();
    const sys = bmc.system('1');
    return {
      driver,
      creds: credsFor(bmc, PASSWORD, { auth }),
      wrongCreds: credsFor(bmc, 'not-the-password', { auth }),
      peer: {
        power: () => (sys.power === 'On' ? 'on' : 'off'),
        setPower: (p) => {
          sys.power = p === 'on' ? 'On' : 'Off';
        },
        bootDevice: () => BOOT_DEVICE[sys.boot.BootSourceOverrideTarget] ?? sys.boot.BootSourceOverrideTarget,
      },
      close: async () => {
        await driver.close();
        await bmc.close();
      },
    };
  });
}

describe('redfish driver against the emulator', () => {
  let bmc: RedfishBmc;
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
  const driver = new RedfishPowerDriver({ log });
  /** The driver's "redfish request failed" log records since logLines[from]. */
  const failedAttempts = (from: number) =>
    logLines
      .slice(from)
      .map((l) => JSON.parse(l) as { msg: string; attempt: number; kind: string; ms: number })
      .filter((l) => l.msg === 'redfish request failed');

  before(async () => {
    bmc = await startRedfishBmc({ user: 'admin', password: PASSWORD, systems: ['1', 'node-2'] });
  });
  after(async () => {
    await driver.close();
    await bmc?.close();
  });

  it('sends the Reset types and the Boot override the Redfish schema defines', async () => {
    const c = credsFor(bmc, PASSWORD, {}, '/redfish/v1/Systems/node-2');
    const sys = bmc.system('node-2');
    sys.power = 'Off';
    await driver.setBootDevice(c, 'pxe', { mode: 'uefi' });
    assert.deepEqual(sys.boot, {
      BootSourceOverrideTarget: 'Pxe',
      BootSourceOverrideEnabled: 'Once',
      BootSourceOverrideMode: 'UEFI',
    });
    await driver.setPower(c, 'reboot');
    // Reboot from off is a plain On, and the one-time override is spent by that boot.
    assert.deepEqual(sys.resets, ['On']);
    assert.equal(sys.lastBootTarget, 'Pxe');
    assert.equal(sys.boot.BootSourceOverrideEnabled, 'Disabled');
    await driver.setBootDevice(c, 'disk', { persistent: true, mode: 'bios' });
    assert.deepEqual(sys.boot, {
      BootSourceOverrideTarget: 'Hdd',
      BootSourceOverrideEnabled: 'Continuous',
      BootSourceOverrideMode: 'Legacy',
    });
    await driver.setPower(c, 'reboot');
    await driver.setPower(c, 'soft');
    await driver.setPower(c, 'on');
    await driver.setPower(c, 'off');
    assert.deepEqual(sys.resets, ['On', 'ForceRestart', 'GracefulShutdown', 'On', 'ForceOff']);
    assert.equal(sys.lastBootTarget, 'Hdd');
    assert.equal(sys.boot.BootSourceOverrideEnabled, 'Continuous');
  });

  it('with session auth logs in once, reuses the token, and logs out at close', async () => {
    const d = new RedfishPowerDriver();
    const c = credsFor(bmc, PASSWORD, { auth: 'session' });
    const from = bmc.requests.length;
    await d.getPower(c);
    await d.getPower(c);
    await d.setBootDevice(c, 'pxe');
    const reqs = bmc.requests.slice(from);
    assert.equal(
      reqs.filter((r) => r.method === 'POST' && r.path === '/redfish/v1/SessionService/Sessions').length,
      1,
    );
    assert.deepEqual(
      reqs.filter((r) => r.path === '/redfish/v1/Systems/1').map((r) => r.auth),
      ['session', 'session', 'session'],
    );
    assert.equal(bmc.sessionCount(), 1);
    await d.close();
    assert.equal(bmc.sessionCount(), 0);
  });

  it('logs in again once when the BMC forgot the session', async () => {
    const d = new RedfishPowerDriver();
    const c = credsFor(bmc, PASSWORD, { auth: 'session' });
    await d.getPower(c);
    bmc.expireSessions();
    const from = bmc.requests.length;
    bmc.system('1').power = 'On';
    assert.equal(await d.getPower(c), 'on');
    assert.deepEqual(
      bmc.requests.slice(from).map((r) => `${r.method} ${r.path} ${r.status}`),
      [
        'GET /redfish/v1/Systems/1 401',
        'POST /redfish/v1/SessionService/Sessions 201',
        'GET /redfish/v1/Systems/1 200',
      ],
    );
    await d.close();
  });

  it('says the credentials were rejected, does not retry, and keeps the password out of logs', async () => {
    const wrong = 'Wr0ng-redfish-pw';
    for (const auth of ['basic', 'session']) {
      const from = bmc.requests.length;
      const e = kilnError(await driver.getPower(credsFor(bmc, wrong, { auth })).catch((x) => x));
      assert.equal(
        e.message,
        `BMC 127.0.0.1:${bmc.port} rejected the credentials for user "admin"; check the username in bmc_address and bmc_password`,
      );
      assert.equal(bmc.requests.length - from, 1, `${auth}: one request, no retries`);
    }
    const logs = logLines.join('');
    assert.match(logs, /redfish request failed/);
    assert.ok(!logs.includes(wrong) && !logs.includes(PASSWORD), 'logs must not carry passwords');
  });

  it('names a system path that does not exist', async () => {
    const e = kilnError(
      await driver.getPower(credsFor(bmc, PASSWORD, {}, '/redfish/v1/Systems/9')).catch((x) => x),
    );
    assert.match(
      e.message,
      /has no \/redfish\/v1\/Systems\/9 \(HTTP 404\); check the system path in bmc_address/,
    );
  });

  it('reports a refused connection after the configured tries', async () => {
    const closed = await startRedfishBmc();
    await closed.close();
    const c = credsFor(closed, PASSWORD, { tries: 3 });
    const from = logLines.length;
    const e = kilnError(await driver.getPower(c).catch((x) => x));
    assert.equal(
      e.message,
      `BMC 127.0.0.1:${closed.port} refused the connection after 3 tries; check the port in bmc_address and that the Redfish service is enabled`,
    );
    assert.deepEqual(
      failedAttempts(from).map((l) => [l.attempt, l.kind]),
      [
        [1, 'connection-refused'],
        [2, 'connection-refused'],
        [3, 'connection-refused'],
      ],
      'three tries, then it gives up',
    );
  });

  it('times out on a BMC that accepts connections but never answers, in bounded time', async (t) => {
    const sockets: import('node:net').Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    t.after(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          silent.close(() => r());
        }),
    );
    const port = (silent.address() as import('node:net').AddressInfo).port;
    const c: BmcCredentials = {
      bmc: parseBmcAddress(`redfish+http://admin@127.0.0.1:${port}/redfish/v1/Systems/1`),
      password: PASSWORD,
      options: { tries: 2, timeout_s: 0.5, backoff_ms: 50 },
    };
    const from = logLines.length;
    const e = kilnError(await driver.getPower(c).catch((x) => x));
    assert.equal(
      e.message,
      `BMC 127.0.0.1:${port} timed out after 2 tries; check that the BMC is reachable from the conductor and that its Redfish service is enabled`,
    );
    // Bounded by timeout_s: each try waited at least its 0.5 s, and gave up long before the 10 s
    // default (the upper bound is generous: it only has to tell the two apart on a loaded machine).
    const tries = failedAttempts(from);
    assert.deepEqual(
      tries.map((l) => [l.attempt, l.kind]),
      [
        [1, 'timeout'],
        [2, 'timeout'],
      ],
    );
    for (const l of tries) assert.ok(l.ms >= 490 && l.ms < 8000, `a try took ${l.ms} ms`);
  });

  it('a slow BMC times out with a short timeout and works with a longer one', async (t) => {
    bmc.setDelay(700);
    t.after(() => bmc.setDelay(0));
    const e = kilnError(
      await driver.getPower(credsFor(bmc, PASSWORD, { tries: 2, timeout_s: 0.3 })).catch((x) => x),
    );
    assert.match(e.message, /timed out after 2 tries/);
    bmc.system('1').power = 'On';
    const t0 = performance.now();
    assert.equal(await driver.getPower(credsFor(bmc, PASSWORD, { timeout_s: 3 })), 'on');
    assert.ok(performance.now() - t0 >= 650);
  });

  it('refuses a plain-HTTP BMC addressed as https with a hint', async () => {
    const c = credsFor(bmc);
    c.bmc = parseBmcAddress(`redfish+https://admin@127.0.0.1:${bmc.port}/redfish/v1/Systems/1`);
    const e = kilnError(await driver.getPower(c).catch((x) => x));
    assert.match(e.message, /TLS handshake failed .*use redfish\+http:\/\//);
  });
});

describe('redfish driver over HTTPS', () => {
  const pki = makeTestPki();
  let bmc: RedfishBmc;
  const driver = new RedfishPowerDriver();
  before(async () => {
    bmc = await startRedfishBmc({ user: 'admin', password: PASSWORD, tls: { cert: pki.cert, key: pki.key } });
  });
  after(async () => {
    await driver.close();
    await bmc?.close();
    pki.cleanup();
  });

  it('refuses a certificate from an unknown CA by default', async () => {
    const from = bmc.requests.length;
    const e = kilnError(await driver.getPower(credsFor(bmc)).catch((x) => x));
    assert.match(
      e.message,
      new RegExp(
        `^BMC 127.0.0.1:${bmc.port} presented a TLS certificate the conductor does not trust \\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\\); set bmc_options.ca_file`,
      ),
    );
    assert.equal(bmc.requests.length, from, 'no request got past the handshake');
  });

  it('trusts it with ca_file', async () => {
    bmc.system('1').power = 'On';
    assert.equal(await driver.getPower(credsFor(bmc, PASSWORD, { ca_file: pki.caFile })), 'on');
  });

  it('accepts it with insecure', async () => {
    await driver.setPower(credsFor(bmc, PASSWORD, { insecure: true }), 'off');
    assert.equal(bmc.system('1').power, 'Off');
  });

  it('names an unreadable ca_file', async () => {
    const e = kilnError(
      await driver.getPower(credsFor(bmc, PASSWORD, { ca_file: `${pki.dir}/missing.pem` })).catch((x) => x),
    );
    assert.match(e.message, /bmc_options.ca_file is unusable: cannot read .*missing.pem/);
  });
});
