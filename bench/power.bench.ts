// Power driver benchmark: one power-status round trip per driver, each next to a real peer doing
// the same thing in the same run, then a power-sync pass over many nodes at several concurrencies.
//   node --import tsx bench/power.bench.ts [--calls N] [--nodes N]
// Peers: plain `ipmitool … chassis power status` (what the ipmi driver wraps) against ipmi_sim,
// and OpenStack's sushy (python3-sushy, Ironic's Redfish library) against the same emulator.
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { parseArgs, promisify } from 'node:util';
import type { BmcCredentials } from '../conductor/power/driver.ts';
import { FakePowerDriver } from '../conductor/power/fake.ts';
import { IpmiPowerDriver } from '../conductor/power/ipmi.ts';
import { RedfishPowerDriver } from '../conductor/power/redfish.ts';
import { createPowerRegistry } from '../conductor/power/registry.ts';
import { createPowerSync } from '../conductor/power/sync.ts';
import { openSqliteStore } from '../conductor/store/sqlite.ts';
import { parseBmcAddress } from '../shared/bmc.ts';
import { silentLogger } from '../shared/log.ts';
import { startIpmiSim } from '../test/support/ipmi-sim.ts';

const pexec = promisify(execFile);
const { values } = parseArgs({
  options: { calls: { type: 'string', default: '50' }, nodes: { type: 'string', default: '200' } },
});
const CALLS = Number(values.calls);
const NODES = Number(values.nodes);
const PASSWORD = 'bench-secret';

interface Stats {
  mean: number;
  p50: number;
  p99: number;
}

function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p50: at(0.5), p99: at(0.99) };
}

const fmt = (s: Stats) =>
  `mean ${s.mean.toFixed(2)} ms  p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms`;

async function timeCalls(n: number, fn: () => Promise<unknown>): Promise<Stats> {
  await fn(); // warm-up: first connection, JIT
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return stats(ms);
}

async function startEmulator(systems: number): Promise<{ port: number; stop: () => Promise<void> }> {
  // A separate process, so the emulator doesn't share the benchmark's event loop.
  const ids = Array.from({ length: systems }, (_, i) => String(i + 1)).join(',');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'tools/redfish-bmc/main.ts', '--port', '0', '--systems', ids],
    {
      env: { ...process.env, REDFISH_BMC_PASSWORD: PASSWORD },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /:(\d+)\/redfish\/v1/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (c) => reject(new Error(`emulator exited ${c}`)));
  });
  return {
    port,
    stop: async () => {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await done;
    },
  };
}

const SUSHY_LOOP = `
import json, sys, time, sushy
from sushy import auth
url, pw, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = sushy.Sushy(url + '/redfish/v1', auth=auth.BasicAuth('admin', pw))
system = s.get_system('/redfish/v1/Systems/1')
out = []
for i in range(n + 1):
    t = time.perf_counter()
    system.refresh(force=True)
    _ = system.power_state
    out.append((time.perf_counter() - t) * 1000)
print(json.dumps(out[1:]))
`;

async function main(): Promise<void> {
  console.log(`power bench: ${CALLS} calls per driver, sync over ${NODES} nodes (node ${process.version})`);

  // --- ipmi driver vs plain ipmitool, both against ipmi_sim
  const sim = await startIpmiSim({ password: PASSWORD });
  const ipmi = new IpmiPowerDriver();
  const ipmiCreds: BmcCredentials = {
    bmc: parseBmcAddress(`ipmi://${sim.user}@127.0.0.1:${sim.port}`),
    password: PASSWORD,
  };
  const kilnIpmi = await timeCalls(CALLS, () => ipmi.getPower(ipmiCreds));
  const plain = await timeCalls(CALLS, () =>
    pexec(
      'ipmitool',
      [
        '-I',
        'lanplus',
        '-C',
        '3',
        '-H',
        '127.0.0.1',
        '-p',
        String(sim.port),
        '-U',
        sim.user,
        '-E',
        'chassis',
        'power',
        'status',
      ],
      { env: { ...process.env, IPMI_PASSWORD: PASSWORD } },
    ),
  );
  console.log('\npower status round trip');
  console.log(`  kiln ipmi driver → ipmi_sim     ${fmt(kilnIpmi)}`);
  console.log(`  plain ipmitool   → ipmi_sim     ${fmt(plain)}`);
  console.log(
    `  ratio kiln/ipmitool             mean ${(kilnIpmi.mean / plain.mean).toFixed(2)}  p50 ${(kilnIpmi.p50 / plain.p50).toFixed(2)}`,
  );

  // --- redfish driver vs sushy, both against the emulator
  const emu = await startEmulator(Math.max(NODES, 1));
  const redfish = new RedfishPowerDriver();
  const rfCreds: BmcCredentials = {
    bmc: parseBmcAddress(`redfish+http://admin@127.0.0.1:${emu.port}/redfish/v1/Systems/1`),
    password: PASSWORD,
  };
  const kilnRf = await timeCalls(CALLS * 4, () => redfish.getPower(rfCreds));
  const { stdout } = await pexec('/usr/bin/python3', [
    '-c',
    SUSHY_LOOP,
    `http://127.0.0.1:${emu.port}`,
    PASSWORD,
    String(CALLS * 4),
  ]);
  const sushyStats = stats(JSON.parse(stdout));
  console.log(`  kiln redfish driver → emulator  ${fmt(kilnRf)}`);
  console.log(`  sushy (python3)     → emulator  ${fmt(sushyStats)}`);
  console.log(
    `  ratio kiln/sushy                mean ${(kilnRf.mean / sushyStats.mean).toFixed(2)}  p50 ${(kilnRf.p50 / sushyStats.p50).toFixed(2)}`,
  );

  const fake = new FakePowerDriver();
  const fakeStats = await timeCalls(CALLS * 20, () =>
    fake.getPower({ bmc: parseBmcAddress('fake://x'), password: null }),
  );
  console.log(`  kiln fake driver                ${fmt(fakeStats)}`);

  // --- sync passes
  console.log(`\npower sync pass (SQLite in memory)`);
  const syncRun = async (label: string, driver: string, address: (i: number) => string, count: number) => {
    for (const concurrency of [1, 8, 32]) {
      const store = await openSqliteStore(':memory:');
      for (let i = 0; i < count; i++) {
        await store.nodes.create({
          uuid: randomUUID(),
          driver,
          bmc_address: address(i),
          bmc_password: PASSWORD,
          power_state: 'power on',
        });
      }
      const registry = createPowerRegistry();
      const sync = createPowerSync({ store, registry, log: silentLogger(), concurrency });
      await sync.runOnce(); // warm-up pass (connections, first writes)
      const r = await sync.runOnce();
      console.log(
        `  ${label.padEnd(28)} concurrency ${String(concurrency).padStart(2)}: ${count} nodes in ${r.ms} ms = ${((count / r.ms) * 1000).toFixed(0)} nodes/s (errors ${r.errors})`,
      );
      await registry.close();
      await store.close();
    }
  };
  await syncRun(
    'redfish → emulator',
    'redfish',
    (i) => `redfish+http://admin@127.0.0.1:${emu.port}/redfish/v1/Systems/${i + 1}`,
    NODES,
  );
  // One ipmi_sim answers for every node; a quarter of the nodes keeps the run short.
  const ipmiNodes = Math.max(1, Math.round(NODES / 4));
  await syncRun('ipmi → ipmi_sim', 'ipmi', () => `ipmi://${sim.user}@127.0.0.1:${sim.port}`, ipmiNodes);
  await syncRun('fake', 'fake', (i) => `fake://bmc-${i}`, NODES);

  await redfish.close();
  await emu.stop();
  await sim.stop();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
