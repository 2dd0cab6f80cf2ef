// Downloads an image as a stream of Buffers, resuming a dropped connection with an HTTP Range
// request (If-Range pins the resumed bytes to the same entity when the server gave an ETag or
// Last-Modified). The checksum is computed here, over the bytes as downloaded, and carries on
// across resumes, so no second pass over the image is ever needed.
import { createHash, type Hash } from 'node:crypto';
import { Agent, type Dispatcher, request } from 'undici';

export class DownloadError extends Error {
  readonly code = 'DOWNLOAD_FAILED';
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DownloadError';
  }
}

export interface DownloadOptions {
  url: string;
  /** Algorithm for the running checksum (sha256, sha512, md5). */
  hashAlgo: string;
  /** Byte count the image must have, when the caller knows it (beyond Content-Length). */
  expectedBytes?: number | null;
  /** Attempts per download, counting the first (default 5). */
  maxAttempts?: number;
  retryDelayMs?: number;
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** Called once the image's total size is known (Content-Length / Content-Range). */
  onTotal?: (total: number | null) => void;
  onResume?: (offset: number, attempt: number, reason: string) => void;
}

export interface DownloadResult {
  bytes: number;
  digest: string;
  resumes: number;
}

/** One shared connection pool for the agent: keep-alive, connect/headers/body timeouts. */
export const imageDispatcher = new Agent({
  connect: { timeout: 30_000 },
  headersTimeout: 60_000,
  bodyTimeout: 60_000,
  keepAliveTimeout: 30_000,
  connections: 4,
});

const RETRYABLE_CODES = new Set([
  'UND_ERR_SOCKET',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
]);

function retryable(e: unknown): boolean {
  if (e instanceof DownloadError) return e.retryable;
  const code = (e as { code?: string }).code;
  return code !== undefined && RETRYABLE_CODES.has(code);
}

/**
 * The reason a server gave with an error status, when it gave a short one: Kiln's image cache
 * names the origin that failed, which is what the operator needs to see in last_error.
 */
async function serverReason(body: Dispatcher.ResponseData['body']): Promise<string | null> {
  let text = '';
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      text += chunk.toString('utf8');
      if (text.length > 4096) {
        body.destroy();
        break;
      }
    }
  } catch {
    return null;
  }
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown }; error_message?: unknown };
    const m = j.error?.message ?? j.error_message;
    return typeof m === 'string' ? m.slice(0, 500) : null;
  } catch {
    return null;
  }
}

function totalFrom(status: number, headers: Record<string, string | string[] | undefined>): number | null {
  if (status === 206) {
    const m = /\/(\d+)$/.exec(String(headers['content-range'] ?? ''));
    return m ? Number(m[1]) : null;
  }
  const len = headers['content-length'];
  return len === undefined ? null : Number(len);
}

/**
 * Yields the image's bytes in order. `result` is filled in when the generator finishes, after
 * the byte count was checked against Content-Length and expectedBytes.
 */
export function download(opts: DownloadOptions): {
  chunks: AsyncGenerator<Buffer>;
  result: Promise<DownloadResult>;
} {
  let resolve!: (r: DownloadResult) => void;
  let reject!: (e: unknown) => void;
  const result = new Promise<DownloadResult>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  result.catch(() => {});
  const chunks = (async function* () {
    try {
      const hash = createHash(opts.hashAlgo);
      const r = yield* fetchAll(opts, hash);
      resolve({ ...r, digest: hash.digest('hex') });
    } catch (e) {
      reject(e);
      throw e;
    }
  })();
  return { chunks, result };
}

async function* fetchAll(
  opts: DownloadOptions,
  hash: Hash,
): AsyncGenerator<Buffer, Omit<DownloadResult, 'digest'>> {
  const max = opts.maxAttempts ?? 5;
  let offset = 0;
  let total: number | null = null;
  let validator: string | null = null;
  let resumes = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      const headers: Record<string, string> = {};
      if (offset > 0) {
        headers.range = `bytes=${offset}-`;
        if (validator) headers['if-range'] = validator;
      }
      const res = await request(opts.url, {
        dispatcher: opts.dispatcher ?? imageDispatcher,
        headers,
        signal: opts.signal,
      });
      if (res.statusCode >= 400) {
        const why = await serverReason(res.body);
        throw new DownloadError(
          `GET ${opts.url} answered HTTP ${res.statusCode}${why ? `: ${why}` : ''}`,
          res.statusCode >= 500 || res.statusCode === 408 || res.statusCode === 429,
        );
      }
      if (offset > 0 && res.statusCode !== 206) {
        // A 200 here means the server ignored Range, or If-Range found a changed image. The
        // bytes already hashed and written can't be taken back, so this attempt can't go on.
        await res.body.dump();
        throw new DownloadError(
          `GET ${opts.url} could not resume at byte ${offset} (HTTP ${res.statusCode}: no Range support or the image changed); retry the deploy`,
          false,
        );
      }
      if (offset === 0) {
        total = totalFrom(res.statusCode, res.headers);
        const etag = res.headers.etag;
        const lastModified = res.headers['last-modified'];
        // Weak ETags can't be used with If-Range (RFC 9110 13.1.5).
        validator =
          typeof etag === 'string' && !etag.startsWith('W/')
            ? etag
            : typeof lastModified === 'string'
              ? lastModified
              : null;
        const expected = opts.expectedBytes ?? null;
        if (expected !== null && total !== null && expected !== total) {
          await res.body.dump();
          throw new DownloadError(
            `GET ${opts.url}: server says ${total} bytes, the image should have ${expected}`,
            false,
          );
        }
        opts.onTotal?.(total ?? expected);
      }
      const limit = opts.expectedBytes ?? total;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (limit !== null && offset + chunk.length > limit) {
          res.body.destroy();
          throw new DownloadError(
            `GET ${opts.url} sent at least ${offset + chunk.length} bytes, more than the expected ${limit}; the image is not the one announced`,
            false,
          );
        }
        hash.update(chunk);
        offset += chunk.length;
        yield chunk;
      }
      if (total !== null && offset < total) {
        throw new DownloadError(`GET ${opts.url} ended at byte ${offset} of ${total}`, true);
      }
      if (opts.expectedBytes != null && offset !== opts.expectedBytes) {
        throw new DownloadError(
          `GET ${opts.url} delivered ${offset} bytes, expected ${opts.expectedBytes}; the image is truncated`,
          false,
        );
      }
      return { bytes: offset, resumes };
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      if (!retryable(e) || attempt >= max) {
        if (e instanceof DownloadError) throw e;
        throw new DownloadError(
          `GET ${opts.url} failed at byte ${offset} after ${attempt} attempt(s): ${(e as Error).message}`,
          false,
          { cause: e },
        );
      }
      if (offset > 0 && total === null) {
        throw new DownloadError(
          `GET ${opts.url} dropped at byte ${offset} and the size is unknown, so it can't be resumed safely`,
          false,
          { cause: e },
        );
      }
      resumes++;
      opts.onResume?.(offset, attempt, (e as Error).message);
      await new Promise((r) => setTimeout(r, (opts.retryDelayMs ?? 1000) * attempt));
    }
  }
}
