// Kiln issue item 9, DHCP: a DISCOVER flood from thousands of random MACs on the provisioning
// segment must neither drain the address pool nor starve real clients. The real Kiln DHCP server
// (full mode, default boot.dhcp.rate_limit) runs in its own network namespace; the flood and a
// real busybox udhcpc share the client namespace, on the same link.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createNetns, destroy, linkNetns, type Netns, waitForLine } from '../support/netns.ts';

const BOOT_FIXTURES = join(import.meta.dirname, '..', 'boot', 'fixtures');
const SRV = '10.233.0.1';
const CLI = '10.233.0.250';
const POOL = { start: 100, end: 149 }; // 50 addresses
const FLOOD_MS = 8000;
const FLOOD_PER_S = 2000;

// A raw DHCP DISCOVER sender: a new random chaddr per packet, FLOOD_PER_S a second, FLOOD_MS
// long, unicast to the server's port 67. Prints {"sent": n} at the end. Plain JS, so it runs
// with `node -e` inside the namespace.
const FLOODER = `
const dgram = require('node:dgram');
const { randomBytes } = require('node:crypto');
const [server, perS, ms] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
function discover() {
  const p = Buffer.alloc(300);
  p[0] = 1; p[1] = 1; p[2] = 6;
  randomBytes(4).copy(p, 4);
  p.writeUInt16BE(0x8000, 10);
  const mac = randomBytes(6); mac[0] = (mac[0] & 0xfc) | 0x02;
  mac.copy(p, 28);
  p.writeUInt32BE(0x63825363, 236);
  p[240] = 53; p[241] = 1; p[242] = 1; p[243] = 255;
  return p;
}
let sent = 0;
const t0 = Date.now();
s.bind(0, () => {
  const tick = setInterval(() => {
    const due = Math.floor(((Date.now() - t0) / 1000) * Number(perS));
    while (sent < due) { s.send(discover(), 67, server); sent++; }
    if (Date.now() - t0 >= Number(ms)) {
      clearInterval(tick);
      setTimeout(() => { process.stdout.write(JSON.stringify({ sent }) + '\\n'); s.close(); }, 200);
    }
  }, 5);
});
`;

let srv: Netns | undefined;
let cli: Netns | undefined;
let server: ChildProcess | undefined;
let dir = '';

type Stats = { event: string; dhcp: { received: number; replied: number; limited: number } };

async function stats(): Promise<Stats['dhcp']> {
  const line = waitForLine<Stats>(server!, (m) => m.event === 'stats');
  server!.kill('SIGUSR2');
  return (await line).dhcp;
}

/** udhcpc on kc0 with the link's current MAC; the lease it printed, or the output. */
async function udhcpc(tries: number): Promise<{ ip?: string; out: string }> {
  const r = await cli!.exec(
    'busybox',
    [
      'udhcpc',
      '-i',
      'kc0',
      '-f',
      '-q',
      '-n',
      '-t',
      String(tries),
      '-T',
      '1',
      '-s',
      join(BOOT_FIXTURES, 'udhcpc-script.sh'),
    ],
    { timeoutMs: 30_000 },
  );
  const m = /LEASE ip=(\S+)/.exec(r.stdout);
  return { ip: m?.[1], out: r.stdout + r.stderr };
}

const setMac = (mac: string) => cli!.exec('ip', ['link', 'set', 'kc0', 'address', mac]);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-dhcpflood-'));
  srv = await createNetns('kfs');
  cli = await createNetns('kfc');
  await linkNetns(
    { ns: srv, ifname: 'ks0', address: `${SRV}/24` },
    { ns: cli, ifname: 'kc0', address: `${CLI}/24` },
  );
  const config = {
    logLevel: 'fatal',
    boot: {
      dhcp: {
        mode: 'full',
        interfaces: ['ks0'],
        // No rateLimit here: the defaults (2/s per MAC, burst 10, 50 new clients/s, half the
        // pool in offers) are what is tested.
        subnets: [
          {
            cidr: '10.233.0.0/24',
            rangeStart: `10.233.0.${POOL.start}`,
            rangeEnd: `10.233.0.${POOL.end}`,
            leaseTime: 600,
          },
        ],
      },
      tftp: { enabled: false, root: dir },
    },
  };
  server = srv.spawn(process.execPath, [
    '--import',
    'tsx',
    join(BOOT_FIXTURES, 'boot-server.ts'),
    JSON.stringify(config),
  ]);
  await waitForLine<{ event: string }>(server, (m) => m.event === 'ready');
});

after(async () => {
  await destroy(cli, srv);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a DISCOVER flood from random MACs: real clients still get leases, the pool is not drained', {
  timeout: 90_000,
}, async () => {
  const before = await stats();
  const flood = cli!.spawn(process.execPath, ['-e', FLOODER, SRV, String(FLOOD_PER_S), String(FLOOD_MS)]);
  const floodDone = waitForLine<{ sent: number }>(
    flood,
    (m) => typeof m.sent === 'number',
    FLOOD_MS + 20_000,
  );
  // Two real clients during the flood, one after the other, each with its own MAC.
  await new Promise((r) => setTimeout(r, 1500));
  await setMac('02:aa:bb:00:00:01');
  const first = await udhcpc(5);
  await setMac('02:aa:bb:00:00:02');
  const second = await udhcpc(5);
  const { sent } = await floodDone;
  const during = await stats();

  assert.ok(sent >= (FLOOD_PER_S * FLOOD_MS) / 1000 - 500, `the flood was sent: ${sent} DISCOVERs`);
  assert.ok(first.ip, `a real client got a lease during the flood: ${first.out}`);
  assert.ok(second.ip, `a second real client got a lease during the flood: ${second.out}`);
  assert.notEqual(first.ip, second.ip);
  // The flood was answered at the new-client rate (plus the burst and the real clients), no more.
  const replied = during.replied - before.replied;
  const limited = during.limited - before.limited;
  assert.ok(limited >= sent * 0.9, `most of the flood was dropped: ${limited} of ${sent}`);
  assert.ok(
    replied <= 50 * (FLOOD_MS / 1000 + 2) + 50,
    `replies kept to about 50 new clients a second: ${replied}`,
  );
  assert.equal(server!.exitCode, null, 'the server is alive');

  // Right after the flood (its offers still held for 30 s): the pool is not exhausted, a client
  // never seen before gets an address at once.
  await setMac('02:aa:bb:00:00:03');
  const after = await udhcpc(3);
  assert.ok(after.ip, `a new client after the flood got a lease: ${after.out}`);
  for (const ip of [first.ip, second.ip, after.ip]) {
    const last = Number(ip!.split('.')[3]);
    assert.ok(last >= POOL.start && last <= POOL.end, `${ip} is from the pool`);
  }
});
