// Bounded retries with exponential backoff for BMC calls. BMCs drop UDP packets and stall under
// load, so a transient failure deserves another try; a rejected password does not, and retrying
// it could lock the account. The caller decides which is which.
import { isKilnError, KilnError } from '../../shared/errors.ts';

export interface RetryPolicy {
  /** Total attempts, including the first. */
  tries: number;
  /** Wait before the second attempt; doubles each time, with ±20 % jitter so a rack doesn't retry in step. */
  backoffMs: number;
}

export class AttemptsExhausted extends KilnError {
  constructor(
    readonly tries: number,
    readonly last: unknown,
  ) {
    super('RETRIES_EXHAUSTED', `gave up after ${tries} tries`, { cause: last });
  }
}

/** The last failure behind a RETRIES_EXHAUSTED, or the error itself. */
export function lastFailure(e: unknown): { exhausted: boolean; failure: unknown } {
  return isKilnError(e) && e.code === 'RETRIES_EXHAUSTED'
    ? { exhausted: true, failure: (e as AttemptsExhausted).last }
    : { exhausted: false, failure: e };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Run `attempt` until it succeeds, `retryable` says no, or the tries run out (then AttemptsExhausted
 * wraps the last error). A non-retryable error is rethrown as it is.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  retryable: (err: unknown) => boolean,
  attempt: (n: number) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  let last: unknown;
  for (let n = 1; n <= policy.tries; n++) {
    signal?.throwIfAborted();
    try {
      return await attempt(n);
    } catch (e) {
      if (signal?.aborted || !retryable(e)) throw e;
      last = e;
      if (n < policy.tries) {
        const base = policy.backoffMs * 2 ** (n - 1);
        await sleep(Math.round(base * (0.8 + Math.random() * 0.4)), signal);
      }
    }
  }
  throw new AttemptsExhausted(policy.tries, last);
}
