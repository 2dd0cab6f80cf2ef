// Ramdisk boot benchmark: builds the ramdisk (cached base layer) for each compression and boots it
// under QEMU (TCG, 1 GiB) several times, timing QEMU start -> /init -> first agent request ->
// lookup -> first heartbeat, and the kernel's own initramfs unpack time. Then sets the initramfs
// size against ironic-python-agent's diskimage-builder ramdisk.
//
//   node --import tsx bench/ramdisk-boot.bench.ts [--compression zstd,xz,gzip] [--runs 3] [--cache DIR]
//
// The IPA ramdisk cannot be downloaded or booted here, so its size is a quoted figure (printed as
// such), not a measurement from this run.
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildRamdisk, type Compression, defaultCacheDir } from '../ramdisk-build/index.ts';
import { buildAgent } from '../test/agent/helpers.ts';
import { startFakeIronic } from '../test/ramdisk/fake-ironic.ts';
import { CONDUCTOR_IP, freePort, startVm } from '../test/ramdisk/vm.ts';

/** IPA's DIB ramdisk (tinyipa aside): roughly 400 MB compressed initramfs, as commonly quoted. */
const IPA_DIB_RAMDISK_BYTES = 400e6;
const MAC = '52:54:00:6b:69:6d';

const { values } = parseArgs({
  options: {
    compression: { type: 'string', default: 'zstd' },
    runs: { type: 'string', default: '3' },
    cache: { type: 'string', default: defaultCacheDir() },
  },
});
const compressions = String(values.compression).split(',') as Compression[];
const runs = Number(values.runs);

interface Run {
  init: number;
  unpack: number;
  firstRequest: number;
  lookup: number;
  heartbeat: number;
}

const tmp = mkdtempSync(join(tmpdir(), 'kiln-ramdisk-bench-'));
const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
};
const s = (ms: number) => (ms / 1000).toFixed(1).padStart(7);

/** Kernel timestamps ([ 1.234]) of the unpack start and of "Freeing initrd memory". */
function unpackSeconds(console: string): number {
  const ts = (re: RegExp) => Number(re.exec(console)?.[1] ?? Number.NaN);
  return ts(/\[\s*([\d.]+)\] Freeing initrd memory/) - ts(/\[\s*([\d.]+)\] Trying to unpack rootfs image/);
}

async function bootOnce(kernel: string, initramfs: string, n: number): Promise<Run> {
  const ironic = await startFakeIronic({ knownMac: MAC });
  const disk = join(tmp, `disk-${n}.img`);
  writeFileSync(disk, '');
  truncateSync(disk, 64 * 1024 * 1024);
  const vm = startVm({
    kernel,
    initramfs,
    append: `ipa-api-url=http://${CONDUCTOR_IP} BOOTIF=${MAC}`,
    mac: MAC,
    disk,
    conductorPort: ironic.port,
    agentPort: await freePort(),
    consoleLog: join(tmp, `console-${n}.log`),
  });
  try {
    const init = await vm.waitForConsole(/Run \/init as init process/, 180_000);
    const first = await ironic.waitFor((r) => r.userAgent.startsWith('kiln-agent'), 180_000, 'agent request');
    const lookup = await ironic.waitFor((r) => r.path === '/v1/lookup', 60_000, 'lookup');
    const hb = await ironic.waitFor((r) => r.path.startsWith('/v1/heartbeat/'), 60_000, 'heartbeat');
    const t0 = vm.startedAt;
    return {
      init: init - t0,
      unpack: unpackSeconds(vm.console()) * 1000,
      firstRequest: first.at - t0,
      lookup: lookup.at - t0,
      heartbeat: hb.at - t0,
    };
  } finally {
    await vm.stop();
    await ironic.close();
  }
}

try {
  const agent = await buildAgent(join(tmp, 'agent.mjs'));
  const rows: string[] = [];
  const sizes: { c: Compression; size: number; cpio: number }[] = [];
  for (const c of compressions) {
    const built = await buildRamdisk({
      outDir: join(tmp, `out-${c}`),
      agentPath: agent,
      cacheDir: String(values.cache),
      compression: c,
    });
    console.log(`\n${c}:\n${built.sizeTable}`);
    sizes.push({ c, size: built.manifest.initramfs.size, cpio: built.manifest.initramfs.uncompressedSize });
    const results: Run[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await bootOnce(built.kernel, built.initramfs, i);
      console.log(
        `${c} run ${i + 1}: /init ${s(r.init)} s, unpack ${s(r.unpack)} s, first request ${s(r.firstRequest)} s, heartbeat ${s(r.heartbeat)} s`,
      );
      results.push(r);
    }
    const m = (k: keyof Run) => s(median(results.map((r) => r[k])));
    rows.push(
      `${c.padEnd(6)} ${(built.manifest.initramfs.size / 1e6).toFixed(1).padStart(8)} ${m('unpack')} ${m('init')} ${m('firstRequest')} ${m('lookup')} ${m('heartbeat')}`,
    );
  }
  console.log(`\nmedian of ${runs} boots, seconds from QEMU start (TCG, -cpu max, 1 GiB):`);
  console.log('comp    size MB  unpack   /init  1st req  lookup  heartbt');
  for (const r of rows) console.log(r);
  console.log('\ninitramfs size vs ironic-python-agent DIB ramdisk (quoted ~400 MB, not measured here):');
  for (const x of sizes) {
    console.log(
      `  kiln ${x.c.padEnd(5)} ${(x.size / 1e6).toFixed(1).padStart(6)} MB (cpio ${(x.cpio / 1e6).toFixed(1)} MB)` +
        `  IPA DIB ~${(IPA_DIB_RAMDISK_BYTES / 1e6).toFixed(0)} MB  ratio ${(IPA_DIB_RAMDISK_BYTES / x.size).toFixed(1)}x smaller`,
    );
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
