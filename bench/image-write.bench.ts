// Image streaming throughput: Kiln's writer (HTTP → sha256 → [zstd -dc] → O_DIRECT block writes →
// fdatasync) against `curl | dd oflag=direct` (and `curl | zstd -d | dd`) on the same image,
// the same HTTP server and the same loop device, in one run. Prints MB/s for both, the ratio
// (goal ≥ 0.95) and the writer's peak RSS (VmHWM of the child process it runs in; goal ≤ 100 MB).
//
// The loop device and the image live on tmpfs: the target then costs only memory bandwidth, so
// the figure measures each pipeline's own overhead (syscalls, copies, hashing) rather than the
// speed of this machine's virtual disk, and nothing is absorbed by a page cache (the writer and
// dd both use O_DIRECT on the loop device; both end with a flush).
// A second peer line does the same work as Kiln (`curl | tee >(sha256sum) | dd`).
// The baseline uses `iflag=fullblock`: without it dd writes the short reads it gets from a pipe,
// which O_DIRECT rejects. The baseline does not hash; Kiln's writer does (sha256).
//
//   node --import tsx bench/image-write.bench.ts [--gib 2] [--rounds 3] [--dir /dev/shm]
// KILN_BENCH_NODE_FLAGS="--max-semi-space-size=1" passes node flags to the writer child.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { execa } from 'execa';

const { values } = parseArgs({
  options: {
    gib: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    dir: { type: 'string', default: '/dev/shm' },
  },
});

/** The writer child: only the writer is bundled into it, so its RSS is the writer's. */
const CHILD = String.raw`
import { readFile } from 'node:fs/promises';
import { writeImage } from './agent/disk/stream/write-image.ts';
import { TargetGuard } from './agent/disk/guard.ts';
const status = async () => readFile('/proc/self/status', 'utf8');
const kb = (s, re) => Number(re.exec(s)?.[1] ?? 0) * 1024;
const a = JSON.parse(process.argv[2]);
const startRss = kb(await status(), /VmRSS:\s+(\d+) kB/);
const r = await writeImage({
  url: a.url, device: a.device, deviceBytes: a.bytes,
  guard: new TargetGuard([a.device]),
  checksum: { algo: 'sha256', value: a.sha256 },
});
process.stdout.write(JSON.stringify({ seconds: r.seconds, direct: r.direct, hwm: kb(await status(), /VmHWM:\s+(\d+) kB/), startRss }) + '\n');
process.exit(0);
`;

interface ChildArgs {
  url: string;
  device: string;
  bytes: number;
  sha256: string;
}

const MiB = 1024 * 1024;
const GIB = Number(values.gib);
const ROUNDS = Number(values.rounds);
const size = GIB * 1024 * MiB;
const dir = await mkdtemp(join(values.dir!, 'kiln-bench-'));
const { startImageServer } = await import('../test/support/image-server.ts');
const { createLoopDevice } = await import('../test/support/loopdev.ts');

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(c as Buffer);
  return h.digest('hex');
}

/** Half random, half zeros per 4 MiB: compresses about 2:1, like a mostly-full OS image. */
async function makeImage(path: string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (let at = 0; at < size; at += 4 * MiB) await fh.write(randomBytes(2 * MiB), 0, 2 * MiB, at);
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
}

/**
 * The writer child runs as an esbuild bundle under plain node, as the agent ships: under tsx the
 * TypeScript loader alone adds ~55 MB of RSS that the agent on a ramdisk never carries.
 */
const childBundle = join(dir, 'writer-child.mjs');
await build({
  stdin: {
    contents: CHILD,
    resolveDir: new URL('..', import.meta.url).pathname,
    loader: 'ts',
    sourcefile: 'writer-child.ts',
  },
  outfile: childBundle,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
});

function runChild(
  args: ChildArgs,
): Promise<{ seconds: number; direct: boolean; hwm: number; startRss: number }> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(
      process.execPath,
      [
        ...(process.env.KILN_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
        childBundle,
        JSON.stringify(args),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`writer child exited ${code}`));
      if (process.env.KILN_BENCH_DEBUG) console.error(out.trim());
      resolve(JSON.parse(out));
    });
  });
}

async function timeShell(cmd: string): Promise<number> {
  const t0 = performance.now();
  await execa('bash', ['-o', 'pipefail', '-c', cmd]);
  return (performance.now() - t0) / 1000;
}

const server = await startImageServer();
const loop = await createLoopDevice(size + 64 * MiB, { dir: values.dir });
try {
  const raw = join(dir, 'image.raw');
  console.error(`making a ${GIB} GiB image in ${values.dir} ...`);
  await makeImage(raw);
  const zst = `${raw}.zst`;
  await execa('zstd', ['-q', '-3', '-T0', '-f', raw, '-o', zst]);
  const images = [
    {
      name: 'raw',
      path: raw,
      peer: (url: string) =>
        `curl -sS ${url} | dd of=${loop.path} bs=4M iflag=fullblock oflag=direct conv=fsync status=none`,
    },
    {
      name: 'zstd',
      path: zst,
      peer: (url: string) =>
        `curl -sS ${url} | zstd -dc | dd of=${loop.path} bs=4M iflag=fullblock oflag=direct conv=fsync status=none`,
    },
  ];
  for (const img of images) {
    server.serve(img.name, img.path);
    const digest = await sha256(img.path);
    const url = server.url(img.name);
    const kiln: number[] = [];
    const peer: number[] = [];
    const hashed: number[] = [];
    let hwm = 0;
    let startRss = 0;
    let direct = false;
    for (let r = 0; r < ROUNDS; r++) {
      const k = await runChild({ url, device: loop.path, bytes: loop.bytes, sha256: digest });
      kiln.push(k.seconds);
      hwm = Math.max(hwm, k.hwm);
      startRss = k.startRss;
      direct = k.direct;
      peer.push(await timeShell(img.peer(url)));
      // The same work Kiln does: also hash the downloaded bytes.
      hashed.push(
        await timeShell(
          img.peer(url).replace(`curl -sS ${url} |`, `curl -sS ${url} | tee >(sha256sum >/dev/null) |`),
        ),
      );
    }
    const best = (xs: number[]) => Math.min(...xs);
    const kMBs = size / MiB / best(kiln);
    const pMBs = size / MiB / best(peer);
    console.log(
      `${img.name.padEnd(5)} ${GIB} GiB image (${((await stat(img.path)).size / MiB).toFixed(
        0,
      )} MiB on the wire): kiln ${kMBs.toFixed(0)} MiB/s (sha256, O_DIRECT=${direct}) | ${img.name === 'raw' ? 'curl|dd' : 'curl|zstd -d|dd'} ${pMBs.toFixed(0)} MiB/s | ratio ${(kMBs / pMBs).toFixed(3)} | kiln peak RSS ${(hwm / MiB).toFixed(1)} MiB (${(startRss / MiB).toFixed(1)} MiB before the write) | best of ${ROUNDS}: kiln ${kiln.map((s) => s.toFixed(2)).join('/')} s, peer ${peer.map((s) => s.toFixed(2)).join('/')} s`,
    );
    const hMBs = size / MiB / best(hashed);
    console.log(
      `${''.padEnd(5)} same work (peer also sha256s via tee): peer ${hMBs.toFixed(0)} MiB/s | ratio ${(kMBs / hMBs).toFixed(3)} | ${hashed.map((s) => s.toFixed(2)).join('/')} s`,
    );
  }
} finally {
  await server.close();
  await loop.destroy();
  await rm(dir, { recursive: true, force: true });
}
