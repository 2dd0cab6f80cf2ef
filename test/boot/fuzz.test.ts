// Fuzzing the running DHCP and TFTP servers over a veth: ≥100,000 random and mutated packets.
// The servers must neither crash nor stop serving: a good client is checked every 10,000 packets
// by the fuzzer itself, and real udhcpc/curl clients are checked after the storm.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createNetns, destroy, linkNetns, type Netns, waitForLine } from '../support/netns.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const SRV = '10.231.0.1';
const CLI = '10.231.0.250';
const GOOD_MAC = '02:00:00:00:99:01';
const COUNT = 100_000;
let srv: Netns | undefined;
let cli: Netns | undefined;
let server: ChildProcess | undefined;
let dir = '';
let root = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-fuzz-'));
  root = join(dir, 'tftp');
  mkdirSync(root);
  copyFileSync('/usr/lib/ipxe/undionly.kpxe', join(root, 'undionly.kpxe'));
  srv = await createNetns('kbs');
  cli = await createNetns('kbc');
  await linkNetns(
    { ns: srv, ifname: 'ks0', address: `${SRV}/24` },
    { ns: cli, ifname: 'kc0', address: `${CLI}/24` },
  );
  // udhcpc after the storm uses the reserved MAC too: the fuzzer will have used up the pool.
  await cli.exec('ip', ['link', 'set', 'kc0', 'address', GOOD_MAC]);
  const config = {
    logLevel: 'fatal',
    boot: {
      dhcp: {
        mode: 'full',
        interfaces: ['ks0'],
        leaseFile: join(dir, 'leases.jsonl'),
        subnets: [
          {
            cidr: '10.231.0.0/24',
            rangeStart: '10.231.0.100',
            rangeEnd: '10.231.0.200',
            // The fuzzer exhausts the pool within seconds; the good client keeps a reservation.
            reservations: [{ mac: GOOD_MAC, ip: '10.231.0.42' }],
          },
        ],
      },
      tftp: { root },
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
  await destroy(cli, srv);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test(`${COUNT} fuzzed DHCP and TFTP packets: no crash, good clients served throughout`, {
  timeout: 120_000,
}, async () => {
  const fileSha = createHash('sha256')
    .update(readFileSync(join(root, 'undionly.kpxe')))
    .digest('hex');
  const seed = Number(process.env.KILN_FUZZ_SEED ?? Date.now() % 1_000_000);
  const r = await cli!.exec(
    process.execPath,
    [
      '--import',
      'tsx',
      join(FIXTURES, 'fuzz-sender.ts'),
      SRV,
      CLI,
      String(COUNT),
      String(seed),
      'undionly.kpxe',
      fileSha,
      GOOD_MAC,
    ],
    { timeoutMs: 110_000 },
  );
  assert.equal(r.code, 0, `fuzzer failed (seed ${seed}): ${r.stderr.slice(-2000)}`);
  const tally = JSON.parse(r.stdout.trim());
  assert.equal(tally.sent, COUNT);
  assert.equal(server!.exitCode, null, `server died (seed ${seed})`);
  assert.equal(tally.badDhcp, 0, `good DHCP client went unanswered during the fuzz (seed ${seed})`);
  assert.equal(tally.badTftp, 0, `good TFTP download failed during the fuzz (seed ${seed})`);
  assert.equal(tally.goodDhcp, COUNT / 10_000);

  const statsLine = waitForLine<{
    event: string;
    dhcp: { received: number; malformed: number };
    tftp: { requests: number; refused: number; completed: number };
  }>(server!, (m) => m.event === 'stats');
  server!.kill('SIGUSR2');
  const stats = await statsLine;
  assert.ok(
    stats.dhcp.received > tally.dhcp / 2,
    `server saw ${stats.dhcp.received} of ${tally.dhcp} DHCP packets`,
  );
  assert.ok(stats.dhcp.malformed > 0);
  console.error(JSON.stringify({ seed, tally, stats }));
  assert.ok(stats.tftp.refused > 0);
  assert.ok(stats.tftp.completed >= tally.goodTftp, 'the good downloads completed on the server side too');

  // Real clients after the storm.
  const u = await cli!.exec('busybox', [
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
  assert.match(u.stdout, /LEASE ip=10\.231\.0\.42 .*boot_file=undionly\.kpxe/, u.stdout + u.stderr);
  assert.equal(server!.exitCode, null);
  const out = join(dir, 'after.bin');
  const c = await cli!.exec('curl', ['-sS', '--max-time', '20', '-o', out, `tftp://${SRV}/undionly.kpxe`]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), fileSha);
});
