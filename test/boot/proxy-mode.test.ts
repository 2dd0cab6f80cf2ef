// Proxy mode beside a real DHCP server: dnsmasq (DHCP only) hands out addresses on the same L2
// segment; Kiln adds boot options for PXE clients only. Namespaces: "lan" holds the bridge,
// "srv" runs Kiln, "dh" runs dnsmasq, "cli" runs the clients.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bridgeNetns, createNetns, destroy, type Netns, waitForLine } from '../support/netns.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const KILN = '10.231.0.1';
const DNSMASQ = '10.231.0.2';
let lan: Netns | undefined;
let srv: Netns | undefined;
let dh: Netns | undefined;
let cli: Netns | undefined;
let kiln: ChildProcess | undefined;
let dir = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-proxy-'));
  const root = join(dir, 'tftp');
  mkdirSync(root);
  copyFileSync('/usr/lib/ipxe/undionly.kpxe', join(root, 'undionly.kpxe'));
  lan = await createNetns('kbl');
  srv = await createNetns('kbs');
  dh = await createNetns('kbd');
  cli = await createNetns('kbc');
  await bridgeNetns(lan, [
    { ns: srv, ifname: 'ks0', address: `${KILN}/24` },
    { ns: dh, ifname: 'kd0', address: `${DNSMASQ}/24` },
    { ns: cli, ifname: 'kc0', address: '10.231.0.250/24' },
  ]);
  const conf = join(dir, 'dnsmasq.conf');
  writeFileSync(
    conf,
    [
      'port=0',
      'interface=kd0',
      'bind-interfaces',
      'no-resolv',
      'no-hosts',
      'no-ping',
      'user=root',
      'dhcp-authoritative',
      'dhcp-range=10.231.0.100,10.231.0.150,255.255.255.0,1h',
      `dhcp-leasefile=${join(dir, 'dnsmasq.leases')}`,
      `pid-file=${join(dir, 'dnsmasq.pid')}`,
      '',
    ].join('\n'),
  );
  dh.spawn('dnsmasq', ['-k', '-C', conf]);
  const config = { boot: { dhcp: { mode: 'proxy', interfaces: ['ks0'] }, tftp: { root } } };
  kiln = srv.spawn(process.execPath, [
    '--import',
    'tsx',
    join(FIXTURES, 'boot-server.ts'),
    JSON.stringify(config),
  ]);
  await waitForLine<{ event: string }>(kiln, (m) => m.event === 'ready');
});

after(async () => {
  await destroy(cli, dh, srv, lan);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the scripted PXE ROM (fixtures/pxe-client.ts) as `mac` and returns what it printed. */
async function pxeRom(mac: string) {
  const r = await cli!.exec(
    process.execPath,
    ['--import', 'tsx', join(FIXTURES, 'pxe-client.ts'), 'kc0', mac, '10.231.0.250'],
    { timeoutMs: 60_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim());
}

test('a PXE client gets its address from dnsmasq and its boot file from Kiln (67 and 4011)', async () => {
  const out = await pxeRom('02:00:00:00:11:01');
  const fromDnsmasq = out.offers.find((o: { serverId: string }) => o.serverId === DNSMASQ);
  const fromKiln = out.offers.find((o: { serverId: string }) => o.serverId === KILN);
  assert.ok(fromDnsmasq, JSON.stringify(out));
  assert.match(fromDnsmasq.yiaddr, /^10\.231\.0\.1\d\d$/);
  assert.deepEqual(fromKiln, {
    type: 2,
    yiaddr: '0.0.0.0',
    siaddr: KILN,
    file: 'undionly.kpxe',
    serverId: KILN,
    vendorClass: 'PXEClient',
    uuidEchoed: true,
  });
  assert.equal(out.ack?.type, 5, 'dnsmasq ACKs the address');
  assert.deepEqual(out.proxyAckFromBroadcast, [], 'Kiln stays out of a REQUEST meant for dnsmasq');
  assert.equal(out.bootAck?.type, 5);
  assert.equal(out.bootAck?.file, 'undionly.kpxe');
  assert.equal(out.bootAck?.serverId, KILN);
});

test('a plain DHCP client only hears dnsmasq', async () => {
  const r = await cli!.exec('busybox', [
    'udhcpc',
    '-i',
    'kc0',
    '-f',
    '-q',
    '-n',
    '-t',
    '3',
    '-T',
    '1',
    '-s',
    join(FIXTURES, 'udhcpc-script.sh'),
  ]);
  const line = r.stdout.split('\n').find((l) => l.startsWith('LEASE '));
  assert.ok(line, r.stdout + r.stderr);
  assert.match(line, new RegExp(`serverid=${DNSMASQ.replace(/\./g, '\\.')} `));
  assert.match(line, / boot_file= /);
});

test('a PXE ROM combines the offers: address from dnsmasq, boot file from Kiln, whichever comes first', async () => {
  // A PXE ROM collects the OFFERs before choosing, so the order in which dnsmasq and Kiln answer
  // (out.arrivalOrder; it varies from run to run) must not matter.
  const out = await pxeRom('02:00:00:00:11:02');
  assert.deepEqual([...out.arrivalOrder].sort(), [KILN, DNSMASQ].sort(), JSON.stringify(out));
  assert.ok(out.lease, JSON.stringify(out));
  assert.match(out.lease.ip, /^10\.231\.0\.1\d\d$/, 'the address comes from the offer with a yiaddr');
  assert.equal(out.lease.addressServer, DNSMASQ);
  assert.equal(out.lease.bootServer, KILN, 'the boot server comes from the proxy offer');
  assert.equal(out.lease.bootFile, 'undionly.kpxe');
});

test('busybox udhcpc posing as a PXE ROM is never given an address by Kiln', async () => {
  // udhcpc takes the first OFFER it hears, unlike a PXE ROM, so which server it binds to depends
  // on arrival order. Whichever it is, Kiln's answer carries no address: a lease from Kiln is
  // 0.0.0.0 with Kiln's boot file, and a lease with an address comes from dnsmasq's pool.
  const r = await cli!.exec('busybox', [
    'udhcpc',
    '-i',
    'kc0',
    '-f',
    '-q',
    '-n',
    '-t',
    '3',
    '-T',
    '1',
    '-s',
    join(FIXTURES, 'udhcpc-script.sh'),
    '-V',
    'PXEClient:Arch:00000:UNDI:002001',
    '-x',
    '0x5d:0000',
    '-x',
    '0x5e:010201',
  ]);
  const line = r.stdout.split('\n').find((l) => l.startsWith('LEASE '));
  assert.ok(line, r.stdout + r.stderr);
  const lease: Record<string, string> = Object.fromEntries(
    line
      .slice('LEASE '.length)
      .split(' ')
      .map((kv) => kv.split('=') as [string, string]),
  );
  if (lease.serverid === KILN) {
    assert.equal(lease.ip, '0.0.0.0', line);
    assert.equal(lease.siaddr, KILN, line);
    assert.equal(lease.boot_file, 'undionly.kpxe', line);
  } else {
    assert.equal(lease.serverid, DNSMASQ, line);
    assert.match(lease.ip ?? '', /^10\.231\.0\.1\d\d$/, line);
  }
});
