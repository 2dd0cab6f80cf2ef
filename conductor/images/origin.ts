// Requests to an image's origin server, made with Node's own http/https client.
// undici is not used on this path: when an origin closes the connection right after the body
// (python's http.server, HTTP/1.0 servers) while the body is paused because the agent reads
// slowly, undici 7.x throws an uncatchable assertion from its parser (nodejs/undici#5360,
// still present in 7.30.3) and takes the whole conductor down with it. Node's client handles
// the same sequence as an ordinary end of stream.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { hasErrorCode } from '../../shared/errors.ts';
import { imageUrlProblem, maskUrl } from './url-policy.ts';

export { maskUrl } from './url-policy.ts';

export class OriginError extends Error {
  readonly code = 'IMAGE_ORIGIN_FAILED';
  constructor(
    message: string,
    /** The origin's HTTP status, when it answered at all. */
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'OriginError';
  }
}

export interface OriginRequest {
  url: string;
  headers?: Record<string, string>;
  /** Milliseconds without a byte (connect, headers) before the request is abandoned. */
  idleTimeoutMs: number;
  /**
   * Also abandon the body after this long without a byte. Left out for pass-through to a
   * reader: a paused socket is idle because the reader is slow, not because the origin is.
   */
  bodyIdleTimeoutMs?: number;
  maxRedirects?: number;
  /**
   * images.allowed_hosts: the URL and every redirect target must be http(s) on one of these
   * (empty: any host). A redirect is followed only after it passes, so an allowed origin can't
   * send the cache on to a host the operator did not allow.
   */
  allowedHosts?: readonly string[];
}

/**
 * GET the URL; resolves with the response once headers arrive (any status, redirects followed).
 * The caller owns the returned stream and must consume or destroy it.
 */
export function getOrigin(req: OriginRequest): Promise<IncomingMessage> {
  return follow(req.url, req, req.maxRedirects ?? 5);
}

function follow(url: string, req: OriginRequest, redirectsLeft: number): Promise<IncomingMessage> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.reject(new OriginError(`image URL ${maskUrl(url)} is not a valid URL`, null));
  }
  const problem = imageUrlProblem(url, req.allowedHosts ?? []);
  if (problem) {
    const hop = url === req.url ? '' : ` (a redirect from the origin of ${maskUrl(req.url)})`;
    return Promise.reject(new OriginError(`${problem}${hop}; the cache fetched nothing`, null));
  }
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const auth = u.username
      ? `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`
      : undefined;
    const r = send(
      u,
      // agent: false — one connection per request. Node 20's global agent keeps connections
      // alive, and an origin that closes one right after an answer (404 with a length, then
      // FIN) leaves a dead socket in the pool for the next request to fail on ("socket hang
      // up"). Image downloads are few and long, so pooling buys nothing here.
      { method: 'GET', headers: req.headers ?? {}, auth, timeout: req.idleTimeoutMs, agent: false },
      (res) => {
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if (status >= 300 && status < 400 && status !== 304 && location) {
          res.resume();
          if (redirectsLeft <= 0) {
            reject(new OriginError(`image origin ${maskUrl(url)} redirected too many times`, status));
            return;
          }
          follow(new URL(location, u).toString(), req, redirectsLeft - 1).then(resolve, reject);
          return;
        }
        const bodyIdle = req.bodyIdleTimeoutMs;
        if (bodyIdle !== undefined) {
          res.setTimeout(bodyIdle, () =>
            res.destroy(
              new OriginError(`image origin ${maskUrl(url)} sent nothing for ${bodyIdle} ms`, status),
            ),
          );
        } else {
          res.setTimeout(0);
        }
        resolve(res);
      },
    );
    r.on('timeout', () =>
      r.destroy(
        new OriginError(`image origin ${maskUrl(url)} did not answer within ${req.idleTimeoutMs} ms`, null),
      ),
    );
    r.on('error', (e) =>
      reject(
        hasErrorCode(e, 'IMAGE_ORIGIN_FAILED')
          ? e
          : new OriginError(`image origin ${maskUrl(url)} is unreachable: ${(e as Error).message}`, null),
      ),
    );
    r.end();
  });
}
