// The three erase tiers of IPA's clean steps, per disk:
//   metadata: wipefs on every partition and the disk, zero the first and last MiB (MBR, both
//             GPT copies, most superblocks), sgdisk --zap-all. Verified by reading those MiBs.
//   express:  the device zeroes itself (Write Zeroes offload via `blkdiscard --zeroout`) when it
//             can do so without the kernel writing every block, else an NVMe format, else the
//             metadata tier. Verified by sampling.
//   full:     NVMe format (crypto erase when the controller supports it), ATA security erase
//             (enhanced when supported) through hdparm, else a zero fill written by the agent
//             with progress. Verified by sampling; zero fill and NVMe user-data erase must read
//             back as zeros, a secure erase only has to have changed every sample.
// Every write goes through the TargetGuard; the selection rules live in devices.ts.
import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { run as defaultRun, type Runner } from '../../shared/exec.ts';
import type { Logger } from '../../shared/log.ts';
import type { TargetGuard } from './guard.ts';
import { deviceBytes, rescanPartitions } from './rescan.ts';
import { BlockWriter } from './stream/block-writer.ts';
import type { ProgressSink } from './stream/progress.ts';
import { ProgressMeter } from './stream/progress.ts';
import { zeroRange } from './zero.ts';

const MiB = 1024 * 1024;

export class EraseError extends Error {
  readonly code = 'ERASE_FAILED';
  constructor(
    readonly device: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${device}: ${message}`, options);
    this.name = 'EraseError';
  }
}

export interface EraseContext {
  guard: TargetGuard;
  run?: Runner;
  log?: Logger;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

export interface EraseOptions {
  /** Use ATA / NVMe secure erase when the drive supports it (IPA: agent_enable_*_secure_erase). */
  ataSecureErase?: boolean;
  nvmeSecureErase?: boolean;
  /** A failed secure erase falls back to zero fill instead of failing the step. */
  continueIfSecureEraseFailed?: boolean;
  /** Verification samples (default 256). */
  samples?: number;
}

export type EraseMethod =
  | 'metadata'
  | 'write-zeroes'
  | 'nvme-crypto-erase'
  | 'nvme-user-data-erase'
  | 'ata-enhanced-erase'
  | 'ata-erase'
  | 'zero-fill';

export interface EraseReport {
  device: string;
  method: EraseMethod;
  verified: string;
  seconds: number;
}

async function readAt(device: string, offset: number, length: number): Promise<Buffer> {
  const { open } = await import('node:fs/promises');
  const fh = await open(device, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

const isZero = (b: Buffer) => b.every((x) => x === 0);

async function dropCache(device: string, run: Runner): Promise<void> {
  // Read-back must come from the device, not from pages cached before the erase.
  await run('blockdev', ['--flushbufs', device]).catch(() => {});
}

// ---- metadata ----

export async function eraseMetadata(device: string, ctx: EraseContext): Promise<EraseReport> {
  const t0 = performance.now();
  const run = ctx.run ?? defaultRun;
  ctx.guard.assertWritable(device);
  const size = await deviceBytes(device, run);
  const parts = await rescanPartitions(device, run);
  // Partitions first, last to first, so filesystem signatures inside them go too.
  for (const p of [...parts].reverse()) {
    ctx.guard.assertWritable(p.path);
    await run('wipefs', ['--force', '--all', p.path]);
  }
  await run('wipefs', ['--force', '--all', device]);
  const head = Math.min(MiB, size);
  await zeroRange(device, ctx.guard, 0, head, { run, noOffload: true });
  if (size > 2 * MiB) await zeroRange(device, ctx.guard, size - MiB, MiB, { run, noOffload: true });
  await run('sgdisk', ['--zap-all', device]).catch((e) => {
    // sgdisk exits non-zero when there was nothing to zap; the zeroed MiBs already did the job.
    ctx.log?.debug({ device, err: e }, 'sgdisk --zap-all reported an error');
  });
  await rescanPartitions(device, run);
  await dropCache(device, run);
  const ok =
    isZero(await readAt(device, 0, head)) &&
    (size <= 2 * MiB || isZero(await readAt(device, size - MiB, MiB)));
  if (!ok)
    throw new EraseError(device, 'metadata wipe did not stick: the first or last MiB still holds data');
  const remaining = await run('wipefs', ['--no-act', device])
    .then((r) => r.stdout.trim())
    .catch(() => '');
  if (remaining) throw new EraseError(device, `signatures remain after wipefs: ${remaining}`);
  ctx.log?.info({ device }, 'disk metadata erased');
  return {
    device,
    method: 'metadata',
    verified: 'first and last MiB read back as zeros; wipefs finds no signature',
    seconds: (performance.now() - t0) / 1000,
  };
}

// ---- sampling ----

function sampleOffsets(size: number, n: number): number[] {
  const block = 4096;
  const blocks = Math.floor(size / block);
  const out = [0, Math.max(0, (blocks - 1) * block)];
  for (let i = 0; i < n && blocks > 2; i++) out.push(randomInt(0, blocks) * block);
  return out;
}

async function readSamples(device: string, offsets: number[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const o of offsets) out.push(await readAt(device, o, 4096));
  return out;
}

async function verifyZeroSamples(
  device: string,
  size: number,
  samples: number,
  run: Runner,
): Promise<string> {
  await dropCache(device, run);
  const offs = sampleOffsets(size, samples);
  const got = await readSamples(device, offs);
  const bad = got.findIndex((b) => !isZero(b));
  if (bad >= 0)
    throw new EraseError(device, `erase verification failed: 4 KiB at offset ${offs[bad]} is not zero`);
  return `${offs.length} sampled 4 KiB blocks read back as zeros`;
}

// ---- express ----

async function writeZeroesOffloaded(device: string): Promise<boolean> {
  const v = await readFile(`/sys/block/${basename(device)}/queue/write_zeroes_max_bytes`, 'utf8').catch(
    () => '0',
  );
  return Number(v.trim()) > 0;
}

export async function eraseExpress(
  device: string,
  ctx: EraseContext,
  opts: EraseOptions = {},
): Promise<EraseReport> {
  const t0 = performance.now();
  const run = ctx.run ?? defaultRun;
  ctx.guard.assertWritable(device);
  const size = await deviceBytes(device, run);
  if (await writeZeroesOffloaded(device)) {
    await run('blkdiscard', ['--force', '--zeroout', device], { timeoutMs: 6 * 3600_000 });
    await eraseMetadata(device, ctx);
    const verified = await verifyZeroSamples(device, size, opts.samples ?? 256, run);
    return { device, method: 'write-zeroes', verified, seconds: (performance.now() - t0) / 1000 };
  }
  if (device.startsWith('/dev/nvme') && opts.nvmeSecureErase !== false) {
    const nvme = await nvmeFormat(device, ctx, opts);
    if (nvme) return { ...nvme, seconds: (performance.now() - t0) / 1000 };
  }
  ctx.log?.info({ device }, 'no fast erase on this device; erasing metadata only');
  return eraseMetadata(device, ctx);
}

// ---- full ----

async function nvmeFormat(
  device: string,
  ctx: EraseContext,
  opts: EraseOptions,
): Promise<Omit<EraseReport, 'seconds'> | null> {
  const run = ctx.run ?? defaultRun;
  const ctrl = JSON.parse((await run('nvme', ['id-ctrl', device, '-o', 'json'])).stdout) as {
    oacs?: number;
    fna?: number;
  };
  if (((ctrl.oacs ?? 0) & 0x2) === 0) return null; // Format NVM not supported
  const crypto = ((ctrl.fna ?? 0) & 0x4) !== 0;
  const size = await deviceBytes(device, run);
  const before = await readSamples(device, sampleOffsets(size, 0));
  await run('nvme', ['format', device, '-s', crypto ? '2' : '1', '-f'], { timeoutMs: 6 * 3600_000 });
  await rescanPartitions(device, run);
  if (crypto) {
    await dropCache(device, run);
    const after = await readSamples(device, sampleOffsets(size, 0));
    if (after.some((b, i) => !isZero(b) && b.equals(before[i]!)))
      throw new EraseError(device, 'NVMe crypto erase left data unchanged');
    return { device, method: 'nvme-crypto-erase', verified: 'first and last 4 KiB changed or zero' };
  }
  return {
    device,
    method: 'nvme-user-data-erase',
    verified: await verifyZeroSamples(device, size, opts.samples ?? 256, run),
  };
}

export interface AtaSecurity {
  supported: boolean;
  enabled: boolean;
  locked: boolean;
  frozen: boolean;
  enhanced: boolean;
}

/** The "Security:" section of `hdparm -I`. */
export function parseHdparmSecurity(text: string): AtaSecurity | null {
  const i = text.indexOf('Security:');
  if (i < 0) return null;
  const sec = text.slice(i, text.indexOf('\n\n', i) > 0 ? text.indexOf('\n\n', i) : undefined);
  const line = (re: RegExp) => sec.split('\n').some((l) => re.test(l.trim()));
  return {
    supported: line(/^supported$/),
    enabled: line(/^enabled$/),
    locked: line(/^locked$/),
    frozen: line(/^frozen$/),
    enhanced: line(/^supported: enhanced erase$/),
  };
}

async function ataSecureErase(device: string, ctx: EraseContext): Promise<EraseMethod | null> {
  const run = ctx.run ?? defaultRun;
  const info = await run('hdparm', ['-I', device])
    .then((r) => r.stdout)
    .catch(() => '');
  let sec = parseHdparmSecurity(info);
  if (!sec?.supported) return null;
  if (sec.frozen) {
    throw new EraseError(
      device,
      'ATA security is frozen (the BIOS froze it at boot); suspend/resume the node or power-cycle it with the disk hot-plugged, or allow the zero-fill fallback',
    );
  }
  if (sec.locked) {
    for (const pw of ['NULL', '']) {
      await run('hdparm', ['--user-master', 'u', '--security-unlock', pw, device]).catch(() => {});
    }
    sec = parseHdparmSecurity((await run('hdparm', ['-I', device])).stdout);
    if (!sec || sec.locked) throw new EraseError(device, 'ATA security is locked with an unknown password');
  }
  if (!sec.enabled) await run('hdparm', ['--user-master', 'u', '--security-set-pass', 'NULL', device]);
  const method: EraseMethod = sec.enhanced ? 'ata-enhanced-erase' : 'ata-erase';
  await run(
    'hdparm',
    ['--user-master', 'u', sec.enhanced ? '--security-erase-enhanced' : '--security-erase', 'NULL', device],
    { timeoutMs: 24 * 3600_000 },
  );
  const after = parseHdparmSecurity((await run('hdparm', ['-I', device])).stdout);
  if (after?.enabled)
    throw new EraseError(device, 'ATA security still enabled after the erase; the erase did not complete');
  return method;
}

/** Zero every byte of the device through the aligned writer, reporting progress. */
export async function zeroFill(device: string, ctx: EraseContext): Promise<void> {
  const run = ctx.run ?? defaultRun;
  const size = await deviceBytes(device, run);
  const w = await BlockWriter.open(device, ctx.guard, { deviceBytes: size });
  const zero = Buffer.alloc(8 * MiB);
  const meter = new ProgressMeter('erase', ctx.progress);
  meter.total = size;
  try {
    for (let at = 0; at < size; at += zero.length) {
      if (ctx.signal?.aborted) throw new EraseError(device, 'erase aborted');
      await w.writeAt(at, zero.length <= size - at ? zero : zero.subarray(0, size - at));
      meter.update(Math.min(size, at + zero.length));
    }
    await w.flush();
    meter.update(size, true);
  } finally {
    await w.close();
  }
}

export async function eraseFull(
  device: string,
  ctx: EraseContext,
  opts: EraseOptions = {},
): Promise<EraseReport> {
  const t0 = performance.now();
  const run = ctx.run ?? defaultRun;
  ctx.guard.assertWritable(device);
  const size = await deviceBytes(device, run);
  const done = (r: Omit<EraseReport, 'seconds'>): EraseReport => {
    ctx.log?.info({ device, method: r.method }, 'disk erased');
    return { ...r, seconds: (performance.now() - t0) / 1000 };
  };
  try {
    if (device.startsWith('/dev/nvme') && opts.nvmeSecureErase !== false) {
      const r = await nvmeFormat(device, ctx, opts);
      if (r) return done(r);
    } else if (opts.ataSecureErase !== false && /^\/dev\/(sd|hd)/.test(device)) {
      const before = await readSamples(device, sampleOffsets(size, 0));
      const method = await ataSecureErase(device, ctx);
      if (method) {
        await dropCache(device, run);
        const after = await readSamples(device, sampleOffsets(size, 0));
        if (after.some((b, i) => !isZero(b) && b.equals(before[i]!)))
          throw new EraseError(device, 'ATA secure erase left data unchanged');
        return done({ device, method, verified: 'first and last 4 KiB changed or zero' });
      }
    }
  } catch (e) {
    if (!opts.continueIfSecureEraseFailed) throw e;
    ctx.log?.warn({ device, err: e }, 'secure erase failed; falling back to zero fill');
  }
  await zeroFill(device, ctx);
  const verified = await verifyZeroSamples(device, size, opts.samples ?? 256, run);
  return done({ device, method: 'zero-fill', verified });
}
