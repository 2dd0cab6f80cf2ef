// TFTP throughput for a 30 MiB file: Kiln's server against tftp-hpa's in.tftpd at the same blksize
// (lock-step), then Kiln with windowsize (RFC 7440; in.tftpd 5.2 ignores the option, so its row
// is lock-step again, which is what a client gets from it). Clients: curl and atftp in their own
// namespace. Run as root: node --import tsx bench/tftp.bench.ts
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, destroy, linkNetns, type Netns, waitForLine } from '../test/support/netns.ts';

const SRV = '10.231.0.1';
const SIZE = 30 << 20;
const REPEAT = 3;
const FIXTURE = join(import.meta.dirname, '..', 'test', 'boot', 'fixtures', 'boot-server.ts');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stop(c: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (c.exitCode !== null || c.signalCode !== null) return r();
    c.once('exit', () => r());
    c.kill('SIGTERM');
  });
}

interface Case {
  label: string;
  cmd: string;
  args: (out: string) => string[];
}

const cases: Case[] = [
  {
    label: 'curl blksize 1468 (lock-step)',
    cmd: 'curl',
    args: (o) => ['-sS', '--tftp-blksize', '1468', '-o', o, `tftp://${SRV}/big.bin`],
  },
  {
    label: 'atftp blksize 1468 (lock-step)',
    cmd: 'atftp',
    args: (o) => ['--option', 'blksize 1468', '-g', '-r', 'big.bin', '-l', o, SRV],
  },
  {
    label: 'atftp blksize 1468 windowsize 8',
    cmd: 'atftp',
    args: (o) => [
      '--option',
      'blksize 1468',
      '--option',
      'windowsize 8',
      '-g',
      '-r',
      'big.bin',
      '-l',
      o,
      SRV,
    ],
  },
  {
    label: 'atftp blksize 1468 windowsize 32',
    cmd: 'atftp',
    args: (o) => [
      '--option',
      'blksize 1468',
      '--option',
      'windowsize 32',
      '-g',
      '-r',
      'big.bin',
      '-l',
      o,
      SRV,
    ],
  },
];

async function measure(cli: Netns, dir: string, c: Case, want: string): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < REPEAT; i++) {
    const out = join(dir, 'out.bin');
    rmSync(out, { force: true });
    const t0 = process.hrtime.bigint();
    const r = await cli.exec(c.cmd, c.args(out), { timeoutMs: 300_000 });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.code !== 0) throw new Error(`${c.label} failed: ${r.stderr}`);
    if (createHash('sha256').update(readFileSync(out)).digest('hex') !== want)
      throw new Error(`${c.label}: wrong bytes`);
    best = Math.min(best, secs);
  }
  return SIZE / (1 << 20) / best;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-tftp-bench-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  const data = randomBytes(SIZE);
  writeFileSync(join(root, 'big.bin'), data);
  const want = createHash('sha256').update(data).digest('hex');
  const srv = await createNetns('kbts');
  const cli = await createNetns('kbtc');
  const table: Array<{ label: string; kiln: number; hpa: number }> = [];
  try {
    await linkNetns(
      { ns: srv, ifname: 'ks0', address: `${SRV}/24` },
      { ns: cli, ifname: 'kc0', address: '10.231.0.2/24' },
    );
    const kilnCfg = {
      logLevel: 'error',
      boot: { dhcp: { mode: 'off', interfaces: [] }, tftp: { root, addresses: [SRV], maxWindowsize: 64 } },
    };
    const results = new Map<string, Map<string, number>>();
    for (const server of ['kiln', 'in.tftpd']) {
      const child =
        server === 'kiln'
          ? srv.spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(kilnCfg)])
          : srv.spawn('in.tftpd', ['-L', '-a', `${SRV}:69`, '-s', root]);
      if (server === 'kiln') await waitForLine<{ event: string }>(child, (m) => m.event === 'ready');
      else await sleep(500);
      const m = new Map<string, number>();
      results.set(server, m);
      try {
        for (const c of cases) {
          const mibs = await measure(cli, dir, c, want);
          m.set(c.label, mibs);
          console.log(`${server.padEnd(9)} ${c.label.padEnd(34)} ${mibs.toFixed(1).padStart(6)} MiB/s`);
        }
      } finally {
        await stop(child);
      }
    }
    for (const c of cases)
      table.push({
        label: c.label,
        kiln: results.get('kiln')!.get(c.label)!,
        hpa: results.get('in.tftpd')!.get(c.label)!,
      });
  } finally {
    await destroy(cli, srv);
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nTFTP, 30 MiB file over a veth, best of ${REPEAT} (MiB/s):`);
  console.log(`  ${'client'.padEnd(34)} ${'kiln'.padStart(7)} ${'in.tftpd'.padStart(9)}  kiln/in.tftpd`);
  for (const r of table)
    console.log(
      `  ${r.label.padEnd(34)} ${r.kiln.toFixed(1).padStart(7)} ${r.hpa.toFixed(1).padStart(9)}  ${(r.kiln / r.hpa).toFixed(2)}`,
    );
}

await main();
