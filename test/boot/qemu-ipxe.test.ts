// The real client: QEMU's own iPXE NIC ROM (SeaBIOS + ipxe-qemu) boots against Kiln's full-mode
// DHCP on a tap inside a namespace, is recognised as iPXE (user class), gets the script URL
// straight away (loop-break) and fetches the script from the boot HTTP router.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createNetns, destroy, type Netns, waitForLine } from '../support/netns.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const MAC = '52:54:00:99:00:10';
let srv: Netns | undefined;
let dir = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-qemu-'));
  mkdirSync(join(dir, 'tftp'));
  srv = await createNetns('kbq');
  for (const args of [
    ['tuntap', 'add', 'dev', 'kt0', 'mode', 'tap'],
    ['addr', 'add', '10.231.0.1/24', 'dev', 'kt0'],
    ['-6', 'addr', 'add', 'fd99::1/64', 'dev', 'kt0', 'nodad'],
    ['link', 'set', 'kt0', 'up'],
  ]) {
    const r = await srv.exec('ip', args);
    assert.equal(r.code, 0, r.stderr);
  }
  // Router advertisements only (no DHCP from dnsmasq): without an RA, iPXE spends ~13 s waiting
  // for IPv6 autoconfiguration before it reports the interface configured.
  srv.spawn('dnsmasq', [
    '-k',
    '--port=0',
    '--interface=kt0',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--user=root',
    '--enable-ra',
    '--dhcp-range=::,constructor:kt0,ra-only',
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
  ]);
});

/** Starts Kiln (full mode + boot HTTP router) in the namespace; `script` overrides the answer. */
async function startKiln(script?: Record<string, unknown>): Promise<ChildProcess> {
  const config = {
    http: true,
    httpPort: 8080,
    script,
    boot: {
      dhcp: {
        mode: 'full',
        interfaces: ['kt0'],
        subnets: [{ cidr: '10.231.0.0/24', rangeStart: '10.231.0.100', rangeEnd: '10.231.0.150' }],
      },
      tftp: { root: join(dir, 'tftp') },
    },
  };
  const server = srv!.spawn(process.execPath, [
    '--import',
    'tsx',
    join(FIXTURES, 'boot-server.ts'),
    JSON.stringify(config),
  ]);
  await waitForLine<{ event: string }>(server, (m) => m.event === 'ready');
  return server;
}

async function stopKiln(server: ChildProcess): Promise<void> {
  await new Promise<void>((r) => {
    if (server.exitCode !== null) return r();
    server.once('exit', () => r());
    server.kill('SIGTERM');
  });
}

function startQemu(): { proc: ChildProcess; console: () => string } {
  const proc = srv!.spawn('qemu-system-x86_64', [
    '-machine',
    'q35',
    '-m',
    '256',
    '-nographic',
    '-no-reboot',
    '-monitor',
    'none',
    '-boot',
    'n',
    '-netdev',
    'tap,id=n0,ifname=kt0,script=no,downscript=no',
    '-device',
    `virtio-net-pci,netdev=n0,mac=${MAC}`,
  ]);
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += String(d);
  });
  return { proc, console: () => out };
}

async function waitFor(text: () => string, re: RegExp, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!re.test(text()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
}

after(async () => {
  await destroy(srv);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("QEMU's iPXE gets an address and its script from Kiln", { timeout: 120_000 }, async () => {
  const server = await startKiln();
  const scriptAsked = waitForLine<{ event: string; mac: string }>(
    server,
    (m) => m.event === 'script',
    90_000,
  );
  const qemu = startQemu();
  try {
    const asked = await scriptAsked;
    assert.equal(asked.mac, MAC);
    // The script's echo line reaches the serial console.
    await waitFor(qemu.console, /Kiln: booting from local disk/, 20_000);
    assert.match(qemu.console(), /Kiln: booting from local disk/, qemu.console().slice(-3000));
    assert.match(qemu.console(), /10\.231\.0\.1\d\d/, 'iPXE shows its leased address');
  } finally {
    qemu.proc.kill('SIGKILL');
    await stopKiln(server);
  }
});

test('the ramdisk script retries a failed download in real iPXE, then gives up', {
  timeout: 120_000,
}, async () => {
  const server = await startKiln({
    action: 'ramdisk',
    kernelUrl: 'http://10.231.0.1:8080/boot/files/no-such-kernel',
    initrdUrl: 'http://10.231.0.1:8080/boot/files/no-such-initrd',
    apiUrl: 'http://10.231.0.1:6385',
    attempts: 2,
    retryDelay: 1,
  });
  const qemu = startQemu();
  try {
    await waitFor(qemu.console, /could not load the ramdisk after 2 attempts, rebooting/, 60_000);
    const out = qemu.console();
    assert.match(out, /loading the ramdisk \(attempt 1 of 2\)/, out.slice(-3000));
    assert.match(out, /retrying in 1 s/);
    assert.match(out, /loading the ramdisk \(attempt 2 of 2\)/);
    assert.match(out, /could not load the ramdisk after 2 attempts, rebooting/);
  } finally {
    qemu.proc.kill('SIGKILL');
    await stopKiln(server);
  }
});
