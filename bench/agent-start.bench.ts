// Agent start-up: process spawn → first lookup request received by the conductor. The peer is a
// trivial `node -e` HTTP client sending the same lookup GET (what Node itself costs to start and
// make one request). Kiln's agent also does IPA's version discovery (GET /) first. Prints the
// median and p90 of both, and the ratio. Goal: Kiln ≤ 300 ms.
//
//   node --import tsx bench/agent-start.bench.ts [--runs 15]
import { type ChildProcess, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { AGENT_BUNDLE, buildAgent } from '../test/agent/helpers.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const RUNS = Number(values.runs);

await buildAgent();
const size = statSync(AGENT_BUNDLE).size;

let onLookup: (() => void) | null = null;
const server = createServer((req, res) => {
  if (req.url?.startsWith('/v1/lookup')) {
    onLookup?.();
    onLookup = null;
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error_message": "{\\"faultstring\\": \\"Resource could not be found.\\"}"}');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ default_version: { id: 'v1', version: '1.68', min_version: '1.1' } }));
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const lookupUrl = `${api}/v1/lookup?addresses=02:00:00:00:00:01`;

async function time(start: () => ChildProcess): Promise<number> {
  const seen = new Promise<number>((r) => {
    onLookup = () => r(performance.now());
  });
  const t0 = performance.now();
  const p = start();
  const t1 = await seen;
  await new Promise<void>((r) => {
    if (p.exitCode !== null) return r();
    p.once('exit', () => r());
    p.kill('SIGKILL');
  });
  return t1 - t0;
}

const kiln = () =>
  spawn(
    process.execPath,
    [
      AGENT_BUNDLE,
      '--cmdline-file',
      '/dev/null',
      '--api-url',
      api,
      '--mac',
      '02:00:00:00:00:01',
      '--listen-port',
      '0',
    ],
    { stdio: 'ignore' },
  );
const peer = () =>
  spawn(process.execPath, ['-e', `fetch(${JSON.stringify(lookupUrl)}).then((r) => r.text())`], {
    stdio: 'ignore',
  });

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return {
    median: s[Math.floor(s.length / 2)]!,
    p90: s[Math.min(s.length - 1, Math.floor(s.length * 0.9))]!,
  };
};

const k: number[] = [];
const b: number[] = [];
// Interleave so that machine noise hits both alike; one warm-up of each first.
await time(kiln);
await time(peer);
for (let i = 0; i < RUNS; i++) {
  k.push(await time(kiln));
  b.push(await time(peer));
}
server.close();
const ks = stats(k);
const bs = stats(b);
console.log(`agent bundle: ${(size / 1024 / 1024).toFixed(2)} MiB (${size} bytes)`);
console.log(`runs: ${RUNS}`);
console.log(
  `kiln agent  start → first lookup: median ${ks.median.toFixed(0)} ms, p90 ${ks.p90.toFixed(0)} ms`,
);
console.log(
  `node -e GET start → lookup:       median ${bs.median.toFixed(0)} ms, p90 ${bs.p90.toFixed(0)} ms`,
);
console.log(`ratio (kiln / node -e, median): ${(ks.median / bs.median).toFixed(2)}`);
