// API benchmark: enroll 10,000 nodes through the REST API, then node list / show / create under
// concurrent load against a real conductor process (SQLite file store). Prints requests/s and
// p50/p99 latency per operation; GET / (no database) is the baseline of the HTTP stack itself.
//
//   npm run build && node --import tsx bench/api.bench.ts [--nodes 10000] [--seconds 5] [--concurrency 32]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { startConductorProcess } from '../test/support/processes.ts';

const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '32' },
  },
});
const NODES = Number(args.nodes);
const SECONDS = Number(args.seconds);
const CONC = Number(args.concurrency);

const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-api-'));
const c = await startConductorProcess(['--db', `sqlite:${join(dir, 'kiln.db')}`, '--log-level', 'warn']);
const pool = new Pool(c.url, { connections: CONC, pipelining: 1 });

async function req(method: string, path: string, body?: unknown): Promise<number> {
  const r = await pool.request({
    method: method as 'GET',
    path,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await r.body.text();
  return r.statusCode;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function load(name: string, op: (i: number) => Promise<number>, seconds = SECONDS) {
  const lat: number[] = [];
  let errors = 0;
  let i = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const n = i++;
      const t = performance.now();
      const status = await op(n);
      lat.push(performance.now() - t);
      if (status >= 400) errors++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONC }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return {
    name,
    requests: lat.length,
    rps: lat.length / elapsed,
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    errors,
  };
}

const mac = (i: number) =>
  `02:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255, 0].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

console.log(`enrolling ${NODES} nodes (concurrency ${CONC}) ...`);
const uuids: string[] = [];
const t0 = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: CONC }, async () => {
    while (next < NODES) {
      const i = next++;
      const r = await pool.request({
        method: 'POST',
        path: '/v1/nodes',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          name: `bench-${i}`,
          bmc_address: `ipmi://admin@10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
          bmc_password: 'pw',
          ports: [mac(i)],
        }),
      });
      const body = (await r.body.json()) as { uuid: string };
      if (r.statusCode !== 201) throw new Error(`enroll ${i}: HTTP ${r.statusCode} ${JSON.stringify(body)}`);
      uuids.push(body.uuid);
    }
  }),
);
const enrollS = (performance.now() - t0) / 1000;
console.log(
  `enrolled ${NODES} nodes in ${enrollS.toFixed(1)} s (${(NODES / enrollS).toFixed(0)} nodes/s, each with a port)`,
);

let created = NODES;
const results = [
  await load('GET / (baseline, no DB)', () => req('GET', '/')),
  await load('GET /v1/nodes?limit=100', (i) =>
    req('GET', `/v1/nodes?limit=100&marker=${uuids[(i * 97) % uuids.length]}`),
  ),
  await load('GET /v1/nodes/{uuid}', (i) => req('GET', `/v1/nodes/${uuids[(i * 7919) % uuids.length]}`)),
  await load('POST /v1/nodes', () => {
    const i = created++;
    return req('POST', '/v1/nodes', { name: `bench-${i}`, bmc_address: 'fake://b', ports: [mac(i)] });
  }),
];

console.log(`\n${NODES} nodes in the store, ${CONC} concurrent clients, ${SECONDS} s per row\n`);
console.log(
  `${'operation'.padEnd(28)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'errors'.padStart(7)}`,
);
for (const r of results) {
  console.log(
    `${r.name.padEnd(28)} ${r.rps.toFixed(0).padStart(9)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)} ${String(r.errors).padStart(7)}`,
  );
}
const base = results[0]!.rps;
console.log(
  `\nratio to the no-DB baseline: ${results
    .slice(1)
    .map((r) => `${r.name.split(' ')[0]} ${r.name.split(' ')[1]}: ${(r.rps / base).toFixed(2)}`)
    .join(', ')}`,
);

await pool.close();
await c.stop();
rmSync(dir, { recursive: true, force: true });
