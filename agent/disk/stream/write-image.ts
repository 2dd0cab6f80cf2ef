// Streams one image from HTTP(S) onto a block device:
//   download (resumable, hashed, length-checked) → [gunzip | xz -dc | zstd -dc] → raw or qcow2 → disk
// The formats are told by magic bytes. Success is returned only after the checksum matched and
// the data was flushed to the device; any failure after the first byte reached the disk wipes
// its first and last MiB so the node can't boot half an image.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../../../shared/log.ts';
import type { TargetGuard } from '../guard.ts';
import { zeroRange } from '../zero.ts';
import { BlockWriter, DeviceTooSmallError } from './block-writer.ts';
import { decompressor, UnsupportedImageError } from './decompress.ts';
import {
  type Compression,
  type Container,
  detectCompression,
  detectContainer,
  MAGIC_BYTES,
} from './detect.ts';
import { type DownloadOptions, download } from './http-source.ts';
import { ProgressMeter, type ProgressSink } from './progress.ts';
import { Qcow2Stream } from './qcow2.ts';

export type HashAlgo = 'sha256' | 'sha512' | 'md5';

export interface WriteImageRequest {
  url: string;
  device: string;
  deviceBytes: number;
  guard: TargetGuard;
  checksum: { algo: HashAlgo; value: string };
  /** What the conductor says the image is; a different detected format is refused. */
  declaredFormat?: string | null;
  expectedBytes?: number | null;
  progress?: ProgressSink;
  log?: Logger;
  signal?: AbortSignal;
  /** Test and bench knobs. */
  direct?: boolean;
  download?: Partial<Pick<DownloadOptions, 'maxAttempts' | 'retryDelayMs' | 'dispatcher'>>;
}

export interface WriteImageResult {
  device: string;
  compression: Compression | null;
  format: Container;
  downloadedBytes: number;
  /** Size of the image on the disk (raw length or qcow2 virtual size). */
  imageBytes: number;
  digest: string;
  resumes: number;
  direct: boolean;
  seconds: number;
}

export class ChecksumMismatchError extends Error {
  readonly code = 'CHECKSUM_MISMATCH';
  constructor(url: string, algo: string, expected: string, actual: string) {
    super(
      `${algo} of ${url} is ${actual}, expected ${expected}; the image is corrupt or not the one registered`,
    );
    this.name = 'ChecksumMismatchError';
  }
}

async function peek(
  it: AsyncIterator<Buffer>,
  n: number,
): Promise<{ head: Buffer; rest: AsyncIterable<Buffer> }> {
  const got: Buffer[] = [];
  let len = 0;
  let done = false;
  while (len < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    got.push(r.value);
    len += r.value.length;
  }
  const head = Buffer.concat(got);
  const rest = (async function* () {
    if (head.length > 0) yield head;
    if (!done) {
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    }
  })();
  return { head, rest };
}

function checkDeclared(declared: string | null | undefined, detected: Container): void {
  if (detected === 'qcow2' || detected === 'raw') {
    if (declared && declared !== detected && declared !== 'iso') {
      throw new UnsupportedImageError(
        `image is ${detected} but the node's image is declared ${declared}; fix image_disk_format`,
      );
    }
    return;
  }
  throw new UnsupportedImageError(
    `${detected} images are not supported; convert to raw or qcow2 (qemu-img convert)`,
  );
}

export async function writeImage(req: WriteImageRequest): Promise<WriteImageResult> {
  const started = performance.now();
  const log = req.log;
  const meter = new ProgressMeter('download', req.progress);
  const writer = await BlockWriter.open(req.device, req.guard, {
    deviceBytes: req.deviceBytes,
    direct: req.direct,
  });
  let touched = false;
  const sink = {
    writeAt: (offset: number, data: Buffer) => {
      touched = true;
      return writer.writeAt(offset, data);
    },
  };
  let compression: Compression | null = null;
  let format: Container = 'raw';
  let imageBytes = 0;
  let downloaded = 0;
  // Aborted on any failure, so an unread response body never keeps a pooled connection busy.
  const stop = new AbortController();
  const signal = req.signal ? AbortSignal.any([req.signal, stop.signal]) : stop.signal;
  let dl: ReturnType<typeof download> | null = null;
  try {
    dl = download({
      url: req.url,
      hashAlgo: req.checksum.algo,
      expectedBytes: req.expectedBytes,
      signal,
      ...req.download,
      onTotal: (total) => {
        meter.total = total;
        log?.info({ url: req.url, device: req.device, total }, 'image download started');
      },
      onResume: (offset, attempt, reason) =>
        log?.warn({ url: req.url, offset, attempt, reason }, 'image download dropped; resuming with Range'),
    });
    // Count and report bytes as they come off the wire, before decompression.
    const chunks = dl.chunks;
    const counted = (async function* () {
      for await (const c of chunks) {
        downloaded += c.length;
        meter.update(downloaded);
        yield c;
      }
    })();
    const outer = await peek(counted[Symbol.asyncIterator](), MAGIC_BYTES);
    compression = detectCompression(outer.head);
    // Raw and uncompressed: the download size is the image size, so check it before writing.
    const total = meter.total;
    if (!compression && detectContainer(outer.head) === 'raw' && total !== null && total > req.deviceBytes) {
      throw new DeviceTooSmallError(req.device, total, req.deviceBytes);
    }
    const consume = async (source: AsyncIterable<Buffer>): Promise<void> => {
      const inner = await peek(source[Symbol.asyncIterator](), MAGIC_BYTES);
      format = detectContainer(inner.head);
      checkDeclared(req.declaredFormat, format);
      log?.info({ device: req.device, compression, format, direct: writer.direct }, 'writing image');
      if (format === 'qcow2') {
        const q = new Qcow2Stream(sink, { deviceBytes: req.deviceBytes, device: req.device });
        for await (const c of inner.rest) await q.push(c);
        const res = await q.end();
        imageBytes = res.virtualSize;
        await writer.flush();
        for (const [off, len] of res.zeroRanges) await zeroRange(req.device, req.guard, off, len);
      } else {
        let pos = 0;
        for await (const c of inner.rest) {
          await sink.writeAt(pos, c);
          pos += c.length;
        }
        imageBytes = pos;
      }
    };
    if (compression) {
      await pipeline(Readable.from(outer.rest), decompressor(compression), consume, { signal: req.signal });
    } else {
      await consume(outer.rest);
    }
    const result = await dl.result;
    meter.update(downloaded, true);
    if (result.digest.toLowerCase() !== req.checksum.value.toLowerCase()) {
      throw new ChecksumMismatchError(
        req.url,
        req.checksum.algo,
        req.checksum.value.toLowerCase(),
        result.digest,
      );
    }
    if (imageBytes === 0) throw new UnsupportedImageError(`image at ${req.url} is empty`);
    new ProgressMeter('flush', req.progress).update(downloaded, true);
    await writer.flush();
    await writer.close();
    const seconds = (performance.now() - started) / 1000;
    log?.info(
      { device: req.device, bytes: downloaded, imageBytes, seconds, resumes: result.resumes },
      'image written and verified',
    );
    return {
      device: req.device,
      compression,
      format,
      downloadedBytes: downloaded,
      imageBytes,
      digest: result.digest,
      resumes: result.resumes,
      direct: writer.direct,
      seconds,
    };
  } catch (e) {
    stop.abort(new Error('image write failed'));
    await dl?.chunks.return(undefined).catch(() => {});
    await writer.close();
    if (touched) {
      log?.error({ device: req.device, err: e }, 'image write failed; wiping the start and end of the disk');
      await wipeHalfImage(req).catch((we) =>
        log?.error({ device: req.device, err: we }, 'could not wipe half-written image'),
      );
    }
    throw e;
  }
}

/** First and last MiB: the boot sector, the primary GPT and the backup GPT. */
async function wipeHalfImage(req: WriteImageRequest): Promise<void> {
  const mib = 1024 * 1024;
  await zeroRange(req.device, req.guard, 0, Math.min(mib, req.deviceBytes), { noOffload: true });
  if (req.deviceBytes > 2 * mib) {
    await zeroRange(req.device, req.guard, req.deviceBytes - mib, mib, { noOffload: true });
  }
}
