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
let server: ChildProcess | undefined;
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
  const config = {
    http: true,
    httpPort: 8080,
    boot: {
      dhcp: {
        mode: 'full',
        interfaces: ['kt0'],
        subnets: [{ cidr: '10.231.0.0/24', rangeStart: '10.231.0.100', rangeEnd: '10.231.0.150' }],
      },
      tftp: { root: join(dir, 'tftp') },
    },
  };
  server = srv.spawn(process.execPath, [
    '--import',
    'tsx',
    join(FIXTURES, 'boot-server.ts'),
    JSON.stringify(config),
  ]);
  await waitForLine<{ event: string }>(server, (m) => m.event === 'ready');
});

after(async () => {
  await destroy(srv);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("QEMU's iPXE gets an address and its script from Kiln", { timeout: 120_000 }, async () => {
  const scriptAsked = waitForLine<{ event: string; mac: string }>(
    server!,
    (m) => m.event === 'script',
    90_000,
  );
  const qemu = srv!.spawn('qemu-system-x86_64', [
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
  let console = '';
  qemu.stdout?.on('data', (d) => {
    console += String(d);
  });
  try {
    const asked = await scriptAsked;
    assert.equal(asked.mac, MAC);
    // The script's echo line reaches the serial console.
    const deadline = Date.now() + 20_000;
    while (!console.includes('Kiln: booting from local disk') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    assert.match(console, /Kiln: booting from local disk/, console.slice(-3000));
    assert.match(console, /10\.231\.0\.1\d\d/, 'iPXE shows its leased address');
  } finally {
    qemu.kill('SIGKILL');
  }
});
