// DHCP DORA/s at < 1% loss: Kiln (full mode, leases persisted to its file) against dnsmasq and
// kea-dhcp4 (memfile, persisted) on the same veth, measured with Kea's perfdhcp acting as a relay.
// Server and client live in separate namespaces. Run as root:
//   node --import tsx bench/dhcp.bench.ts [period-seconds]
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, destroy, linkNetns, type Netns, waitForLine } from '../test/support/netns.ts';

const PERIOD = Number(process.argv[2] ?? 5);
const RATES = [100, 250, 500, 1000, 2000, 3000, 4000, 6000, 8000, 12000];
const SRV = '10.231.0.1';
const CLI = '10.231.255.250';
const FIXTURE = join(import.meta.dirname, '..', 'test', 'boot', 'fixtures', 'boot-server.ts');

type Server = { name: string; start(dir: string): Promise<ChildProcess> };

function waitExit(c: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (c.exitCode !== null || c.signalCode !== null) return r();
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    c.once('exit', () => {
      clearTimeout(t);
      r();
    });
    c.kill('SIGTERM');
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function servers(srv: Netns): Server[] {
  return [
    {
      name: 'kiln',
      start: async (dir) => {
        const config = {
          logLevel: 'error',
          boot: {
            dhcp: {
              mode: 'full',
              interfaces: ['ks0'],
              leaseFile: join(dir, 'kiln-leases.jsonl'),
              subnets: [
                {
                  cidr: '10.231.0.0/16',
                  rangeStart: '10.231.1.0',
                  rangeEnd: '10.231.254.255',
                  leaseTime: 3600,
                },
              ],
            },
            tftp: { enabled: false, root: dir },
          },
        };
        const c = srv.spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(config)]);
        await waitForLine<{ event: string }>(c, (m) => m.event === 'ready');
        return c;
      },
    },
    {
      name: 'dnsmasq',
      start: async (dir) => {
        const conf = join(dir, 'dnsmasq.conf');
        writeFileSync(
          conf,
          [
            'port=0',
            'interface=ks0',
            'bind-interfaces',
            'no-resolv',
            'no-hosts',
            'no-ping',
            'user=root',
            'dhcp-authoritative',
            'dhcp-lease-max=200000',
            'dhcp-range=10.231.1.0,10.231.254.255,255.255.0.0,1h',
            `dhcp-leasefile=${join(dir, 'dnsmasq.leases')}`,
            `pid-file=${join(dir, 'dnsmasq.pid')}`,
            '',
          ].join('\n'),
        );
        const c = srv.spawn('dnsmasq', ['-k', '-C', conf]);
        await sleep(500);
        return c;
      },
    },
    {
      name: 'kea-dhcp4',
      start: async (dir) => {
        const conf = join(dir, 'kea.json');
        writeFileSync(
          conf,
          JSON.stringify({
            Dhcp4: {
              'interfaces-config': { interfaces: ['ks0'], 'dhcp-socket-type': 'udp' },
              'lease-database': {
                type: 'memfile',
                persist: true,
                name: join(dir, 'kea-leases4.csv'),
                'lfc-interval': 0,
              },
              'valid-lifetime': 3600,
              subnet4: [{ id: 1, subnet: '10.231.0.0/16', pools: [{ pool: '10.231.1.0 - 10.231.254.255' }] }],
              loggers: [{ name: 'kea-dhcp4', severity: 'ERROR', output_options: [{ output: 'stderr' }] }],
            },
          }),
        );
        const c = srv.spawn('kea-dhcp4', ['-c', conf], {
          env: { ...process.env, KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir },
        });
        await sleep(1500);
        return c;
      },
    },
  ];
}

interface Run {
  rate: number;
  achieved: number;
  loss: number;
}

function parsePerfdhcp(out: string): { achieved: number; sent: number; acks: number } {
  const achieved = Number(/Rate: ([\d.]+) 4-way exchanges\/second/.exec(out)?.[1] ?? 0);
  const sections = out.split('Statistics for: ');
  const num = (s: string | undefined, key: string) =>
    Number(new RegExp(`${key}: (\\d+)`).exec(s ?? '')?.[1] ?? 0);
  const dis = sections.find((s) => s.startsWith('DISCOVER-OFFER'));
  const req = sections.find((s) => s.startsWith('REQUEST-ACK'));
  return { achieved, sent: num(dis, 'sent packets'), acks: num(req, 'received packets') };
}

async function main(): Promise<void> {
  const srv = await createNetns('kbbs');
  const cli = await createNetns('kbbc');
  const results = new Map<string, { best?: Run; runs: Run[] }>();
  try {
    await linkNetns(
      { ns: srv, ifname: 'ks0', address: `${SRV}/16` },
      { ns: cli, ifname: 'kc0', address: `${CLI}/16` },
    );
    for (const s of servers(srv)) {
      const res: { best?: Run; runs: Run[] } = { runs: [] };
      results.set(s.name, res);
      for (const rate of RATES) {
        const dir = mkdtempSync(join(tmpdir(), `kiln-bench-${s.name}-`));
        const child = await s.start(dir);
        try {
          // Warm-up (JIT, caches, first lease-file writes), not counted; then up to two tries, the
          // better one counts: the box is shared and single runs are noisy.
          await cli.exec(
            'perfdhcp',
            ['-4', '-l', 'kc0', '-g', 'single', '-r', '200', '-R', '1000', '-p', '1', SRV],
            { timeoutMs: 30_000 },
          );
          let run: Run = { rate, achieved: 0, loss: 1 };
          for (let attempt = 0; attempt < 2 && run.loss >= 0.01; attempt++) {
            const r = await cli.exec(
              'perfdhcp',
              [
                '-4',
                '-l',
                'kc0',
                '-g',
                'single',
                '-r',
                String(rate),
                '-R',
                '60000',
                '-p',
                String(PERIOD),
                SRV,
              ],
              {
                timeoutMs: (PERIOD + 30) * 1000,
              },
            );
            const p = parsePerfdhcp(r.stdout);
            const loss = p.sent ? 1 - p.acks / p.sent : 1;
            if (loss < run.loss) run = { rate, achieved: p.acks / PERIOD, loss };
          }
          res.runs.push(run);
          console.log(
            `${s.name.padEnd(10)} rate ${String(rate).padStart(6)}/s → ${run.achieved.toFixed(0).padStart(6)} DORA/s, loss ${(run.loss * 100).toFixed(2)}%`,
          );
          if (run.loss < 0.01) res.best = run;
          else break;
        } finally {
          await waitExit(child);
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await destroy(cli, srv);
  }
  console.log(
    `\nDORA/s at < 1% loss (perfdhcp -g single, relay mode, ${PERIOD} s per step, offered rates ${RATES.join(', ')}):`,
  );
  const kiln = results.get('kiln')?.best?.achieved ?? 0;
  for (const [name, r] of results) {
    const v = r.best?.achieved ?? 0;
    console.log(
      `  ${name.padEnd(10)} ${v.toFixed(0).padStart(6)} DORA/s${name === 'kiln' ? '' : `   kiln/${name} = ${v ? (kiln / v).toFixed(2) : 'n/a'}`}`,
    );
  }
}

await main();
