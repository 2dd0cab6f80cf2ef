import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';
import { createLogger, silentLogger } from '../shared/log.ts';
import {
  checkDatabase,
  checkLoaders,
  checkPorts,
  checkPublicUrl,
  checkRamdisk,
  derivePublicUrl,
  formatProblems,
  runChecks,
} from './checks.ts';
import { loadConfig } from './config.ts';
import { startConductor } from './server.ts';
import { openSqliteStore } from './store/sqlite.ts';

// The secrets key of conductors these tests start: in a temporary directory, never the repo.
const KEY_FILE = join(mkdtempSync(join(tmpdir(), 'kiln-key-')), 'secrets.key');

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kiln-checks-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const config = (flags: Record<string, unknown>) =>
  loadConfig({
    env: {},
    flags: { 'api.tls.mode': 'off', 'provisioning.port': 0, 'secrets.key_file': KEY_FILE, ...flags },
  });

function holdTcp(host: string): Promise<{ port: number; server: Server }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, host, () => resolve({ port: (server.address() as { port: number }).port, server }));
  });
}

function holdUdp(host: string): Promise<{ port: number; socket: dgram.Socket }> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.bind(0, host, () => resolve({ port: socket.address().port, socket }));
  });
}

/**
 * A non-loopback IPv4 interface of the test's own: a veth pair with a private address, so the
 * test does not depend on (or touch) the host's real interfaces. Needs root, as the suite does.
 */
function makeDummyIface(): { name: string; addr: string; remove: () => void } {
  const n = process.pid % 250;
  const name = `kilnchk${n}`;
  const addr = `10.213.${n}.1`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    ip('link', 'del', name); // a leftover of an interrupted run
  } catch {
    // none: the normal case
  }
  ip('link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
  ip('addr', 'add', `${addr}/24`, 'dev', name);
  ip('link', 'set', name, 'up');
  ip('link', 'set', `${name}p`, 'up');
  return { name, addr, remove: () => ip('link', 'del', name) };
}

describe('public URL', () => {
  test('derived from the boot interface when the API listens on every address', () => {
    assert.equal(derivePublicUrl(config({}), 6385, ['10.0.0.1']), 'http://10.0.0.1:6385');
    assert.equal(derivePublicUrl(config({}), 6385, []), 'http://127.0.0.1:6385');
    assert.equal(
      derivePublicUrl(config({ 'provisioning.host': '10.1.1.1' }), 7000, ['10.0.0.1']),
      'http://10.1.1.1:7000',
    );
    assert.equal(
      derivePublicUrl(config({ 'provisioning.public_url': 'http://kiln.lab:6385/' }), 6385, ['10.0.0.1']),
      'http://kiln.lab:6385',
    );
  });

  test('a loopback URL while serving a real interface is a problem, with the key to set', () => {
    const eno2 = { eno2: '10.0.0.1' };
    const at = { 'provisioning.port': 6386 };
    const host = checkPublicUrl(
      config({ ...at, 'provisioning.host': '127.0.0.1', 'boot.interfaces': ['eno2'] }),
      eno2,
    );
    assert.equal(host.length, 1);
    assert.match(host[0]!.message, /http:\/\/127\.0\.0\.1:6386, a loopback address.*eno2 \(10\.0\.0\.1\)/);
    assert.match(host[0]!.fix, /set provisioning\.host to 0\.0\.0\.0 or 10\.0\.0\.1/);
    const pub = checkPublicUrl(
      config({ ...at, 'provisioning.public_url': 'http://localhost:6386', 'boot.interfaces': ['eno2'] }),
      eno2,
    );
    assert.match(pub[0]!.fix, /set provisioning\.public_url .* http:\/\/10\.0\.0\.1:6386/);
    assert.deepEqual(checkPublicUrl(config({ 'boot.interfaces': ['eno2'] }), eno2), []);
    assert.deepEqual(
      checkPublicUrl(config({ 'provisioning.host': '127.0.0.1', 'boot.interfaces': ['lo'] }), {
        lo: '127.0.0.1',
      }),
      [],
    );
    assert.deepEqual(checkPublicUrl(config({ 'provisioning.host': '127.0.0.1' }), {}), []);
    const tftp = checkPublicUrl(
      config({ 'provisioning.host': '127.0.0.1', 'boot.tftp.addresses': ['10.0.0.1'] }),
      {},
    );
    assert.equal(tftp.length, 1);
  });

  test('the conductor hands ramdisks the boot interface address, and warns when it can only be loopback', {}, async (t) => {
    const iface = makeDummyIface();
    t.after(iface.remove);
    const { name, addr } = iface;
    const lines: string[] = [];
    const stream = new PassThrough();
    stream.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    const base = {
      'api.port': 0,
      'conductor.power_sync_interval_s': 0,
      // Interface resolution only: DHCP off, TFTP off, nothing binds.
      'boot.interfaces': [name],
      'boot.tftp.enabled': false,
      'boot.ramdisk_attempts': 7,
    };
    const c = await startConductor(config(base), silentLogger(), {
      store: await openSqliteStore(':memory:'),
    });
    try {
      const port = new URL(c.publicUrl).port;
      assert.equal(c.publicUrl, `http://${addr}:${port}`);
      assert.ok(!c.problems.some((p) => p.check === 'public-url'));
      const script = await (await fetch(`http://127.0.0.1:${port}/boot/ipxe?mac=52:54:00:aa:bb:01`)).text();
      assert.match(script, new RegExp(`ipa-api-url=http://${addr.replace(/\./g, '\\.')}:${port} `));
      assert.match(script, /attempt \$\{kiln_try\} of 7/);
    } finally {
      await c.close();
      await c.store.close();
    }
    const log = createLogger({ name: 't', destination: stream });
    const lo = await startConductor(config({ ...base, 'provisioning.host': '127.0.0.1' }), log, {
      store: await openSqliteStore(':memory:'),
    });
    try {
      assert.ok(lo.problems.some((p) => p.check === 'public-url'));
      const warn = lines.map((l) => JSON.parse(l)).find((l) => l.check === 'public-url');
      assert.equal(warn?.level, 'warn');
      assert.match(warn.msg, /loopback address/);
    } finally {
      await lo.close();
      await lo.store.close();
    }
  });
});

describe('ramdisk', () => {
  test('missing kernel or initramfs is a problem naming the build command', async () => {
    const dir = tempDir();
    const p = await checkRamdisk(dir);
    assert.equal(p.length, 1);
    assert.match(p[0]!.message, /kernel and initramfs missing/);
    assert.match(p[0]!.fix, new RegExp(`kiln ramdisk build --out ${dir}`));
    writeFileSync(join(dir, 'kernel'), 'k');
    writeFileSync(join(dir, 'initramfs'), 'i');
    assert.deepEqual(await checkRamdisk(dir), []);
  });
});

describe('loaders', () => {
  test('missing, refused and present loaders; a link out of the root counts as present', async () => {
    const base = tempDir();
    const root = join(base, 'tftp');
    mkdirSync(root);
    writeFileSync(join(base, 'ipxe.efi'), 'x');
    symlinkSync(join(base, 'ipxe.efi'), join(root, 'ipxe.efi'));
    const on = { 'boot.interfaces': ['eno2'], 'boot.tftp.root': root };
    const missing = await checkLoaders(config(on));
    assert.equal(missing.length, 1);
    assert.match(
      missing[0]!.message,
      /BIOS loader undionly\.kpxe \(boot\.dhcp\.loaders\.bios\) is not in the TFTP root/,
    );
    writeFileSync(join(root, 'undionly.kpxe'), 'x');
    assert.deepEqual(await checkLoaders(config(on)), []);
    const out = await checkLoaders(config({ ...on, 'boot.dhcp.loaders.bios': '../ipxe.efi' }));
    assert.match(out[0]!.message, /boot\.dhcp\.loaders\.bios = \.\.\/ipxe\.efi is outside the TFTP root/);
    const noRoot = await checkLoaders(config({ ...on, 'boot.tftp.root': join(base, 'nope') }));
    assert.match(noRoot[0]!.message, /TFTP root .* does not exist/);
    assert.deepEqual(
      await checkLoaders(config({ 'boot.tftp.root': join(base, 'nope') })),
      [],
      'no boot services',
    );
  });
});

describe('database', () => {
  test('the SQLite folder must exist, be a folder, and be writable', async () => {
    const dir = tempDir();
    assert.deepEqual(await checkDatabase(`sqlite:${join(dir, 'kiln.db')}`), []);
    assert.deepEqual(await checkDatabase(':memory:'), []);
    assert.deepEqual(await checkDatabase('postgres://kiln@db/kiln'), []);
    const gone = await checkDatabase(`sqlite:${join(dir, 'no', 'kiln.db')}`);
    assert.match(gone[0]!.message, /database folder .*\/no does not exist/);
    assert.match(gone[0]!.fix, /mkdir -p/);
    writeFileSync(join(dir, 'file'), '');
    const notDir = await checkDatabase(`sqlite:${join(dir, 'file', 'kiln.db')}`);
    assert.match(notDir[0]!.message, /is not a folder/);
  });

  test('an unwritable folder is a problem', async (t) => {
    const dir = join(tempDir(), 'ro');
    mkdirSync(dir, { mode: 0o500 });
    // Root writes through mode bits; a read-only mount stops everyone.
    if (process.getuid?.() === 0) {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'kiln-ro', dir]);
      t.after(() => execFileSync('umount', [dir]));
    }
    const p = await checkDatabase(`sqlite:${join(dir, 'kiln.db')}`);
    assert.match(p[0]!.message, /not readable and writable/);
  });
});

describe('ports', () => {
  test('a held API, DHCP or TFTP port is a problem saying who holds it and which key moves it', async () => {
    const api = await holdTcp('127.0.0.1');
    const dhcp = await holdUdp('0.0.0.0');
    const tftp = await holdUdp('127.0.0.1');
    try {
      const c = config({
        'api.host': '127.0.0.1',
        'api.port': api.port,
        'boot.interfaces': ['lo'],
        'boot.dhcp.mode': 'proxy',
        'boot.dhcp.ports.server': dhcp.port,
        'boot.dhcp.ports.pxe': 0,
        'boot.tftp.port': tftp.port,
      });
      const p = await checkPorts(c, { lo: '127.0.0.1' });
      assert.deepEqual(
        p.map((x) => `${x.message}; ${x.fix}`.split(';')[0]),
        [
          `port ${api.port} on 127.0.0.1 is already in use (another kiln conductor?)`,
          `UDP port ${dhcp.port} on 0.0.0.0 is already in use (another DHCP server such as dnsmasq, isc-dhcp-server or kea?)`,
          `UDP port ${tftp.port} on 127.0.0.1 is already in use (a TFTP server such as tftpd-hpa or dnsmasq?)`,
        ],
      );
      assert.equal(p[0]!.fix, 'stop it or set api.port');
      assert.match(p[2]!.fix, /boot\.tftp\.port/);
      assert.deepEqual(await checkPorts(c, { lo: '127.0.0.1' }, { api: false }).then((x) => x.length), 2);
    } finally {
      api.server.close();
      dhcp.socket.close();
      tftp.socket.close();
    }
    const free = config({ 'api.host': '127.0.0.1', 'api.port': api.port });
    assert.deepEqual(await checkPorts(free, {}), []);
  });
});

describe('runChecks', () => {
  test('collects every problem, each printed with what to do', async () => {
    const dir = tempDir();
    const c = config({
      'api.host': '127.0.0.1',
      'api.port': 0,
      'boot.ramdisk_dir': join(dir, 'ramdisk'),
      'database.url': `sqlite:${join(dir, 'missing', 'kiln.db')}`,
      'boot.interfaces': ['kiln-nope0'],
      'boot.tftp.root': dir,
    });
    const p = await runChecks(c);
    assert.deepEqual(
      p.map((x) => x.check),
      ['boot-interfaces', 'ramdisk', 'loaders', 'loaders', 'database'],
    );
    const text = formatProblems(p);
    assert.match(text, /problem \(ramdisk\): .*\n {2}fix: build it: kiln ramdisk build --out/);
    assert.match(text, /boot interface kiln-nope0 does not exist; check boot\.interfaces/);
  });
});
