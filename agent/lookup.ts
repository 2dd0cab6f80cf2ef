// Lookup: find out which node this machine is, as IPA does. `GET /v1/lookup?addresses=<MACs>` is
// retried with random exponential backoff (ipa-lookup-interval .. 60 s) until ipa-lookup-timeout;
// then the agent gives up and exits, and the ramdisk's init starts a fresh one.
import type { Logger } from '../shared/log.ts';
import { type LookupConfig, type LookupNode, LookupResponse, MASKED } from '../shared/wire/ipa.ts';
import { type IronicApiClient, ironicErrorMessage } from './ironic-api.ts';

export interface LookupResult {
  node: LookupNode;
  config: LookupConfig;
  /** The token to send back; null if the conductor handed none out (or only "******"). */
  token: string | null;
  /** The conductor answered "******": someone already fetched this boot's token. */
  tokenAlreadyRetrieved: boolean;
}

export interface LookupOptions {
  api: Pick<IronicApiClient, 'lookup'>;
  macs: readonly string[];
  nodeUuid?: string | null;
  timeoutS: number;
  intervalS: number;
  log: Logger;
  /** Seams for tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  now?: () => number;
}

export class LookupTimeoutError extends Error {
  constructor(seconds: number, last: string) {
    super(
      `lookup did not succeed within ${seconds} s (last: ${last}); check that the node is enrolled with one ` +
        'of these MACs as a port and is in a state that expects a ramdisk (cleaning, deploying, inspecting)',
    );
    this.name = 'LookupTimeoutError';
  }
}

const MAX_INTERVAL_S = 60;
const CONFLICT_DELAYS_S = [5, 10, 30];

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** tenacity's wait_random_exponential(min, max): uniform(min, clamp(2^(attempt-1), min, max)). */
export function backoffSeconds(attempt: number, minS: number, random: () => number): number {
  const high = Math.min(MAX_INTERVAL_S, Math.max(minS, 2 ** (attempt - 1)));
  return minS + random() * (high - minS);
}

/** Keep a token of ≥ 32 chars; "******" means it was handed out before. */
export function interpretToken(
  config: LookupConfig,
  log: Logger,
): { token: string | null; already: boolean } {
  const t = config.agent_token;
  if (typeof t !== 'string' || t === '') return { token: null, already: false };
  if (t === MASKED) {
    log.warn(
      {},
      'the agent token has already been retrieved by an earlier agent on this node; heartbeats and commands ' +
        'will be refused until the conductor power-cycles the node',
    );
    return { token: null, already: true };
  }
  if (t.length < 32) {
    log.warn({ length: t.length }, 'ignoring an agent token shorter than 32 characters');
    return { token: null, already: false };
  }
  return { token: t, already: false };
}

export async function lookupNode(opts: LookupOptions): Promise<LookupResult> {
  const sleep = opts.sleep ?? defaultSleep;
  const random = opts.random ?? Math.random;
  const now = opts.now ?? Date.now;
  const started = now();
  let attempt = 0;
  let conflicts = 0;
  let last = 'no attempt';
  for (;;) {
    attempt++;
    let waitS = backoffSeconds(attempt, opts.intervalS, random);
    try {
      const res = await opts.api.lookup(opts.macs, opts.nodeUuid);
      if (res.status === 200) {
        const parsed = LookupResponse.parse(JSON.parse(res.text));
        const { token, already } = interpretToken(parsed.config, opts.log);
        opts.log.info({ node: parsed.node.uuid, attempt }, 'lookup succeeded');
        return { node: parsed.node, config: parsed.config, token, tokenAlreadyRetrieved: already };
      }
      last = `HTTP ${res.status}: ${ironicErrorMessage(res.text)}`;
      if (res.status === 409) {
        waitS = CONFLICT_DELAYS_S[Math.min(conflicts, CONFLICT_DELAYS_S.length - 1)]!;
        conflicts++;
        opts.log.warn({ status: res.status, waitS }, 'lookup conflict (node locked); retrying');
      } else {
        opts.log.warn(
          { status: res.status, error: last, macs: opts.macs },
          'lookup failed; check if inspection has completed, or whether the node is enrolled with these MACs',
        );
      }
    } catch (err) {
      last = String((err as Error).message ?? err);
      opts.log.warn({ err: last }, 'lookup request failed; retrying');
    }
    const elapsedS = (now() - started) / 1000;
    if (elapsedS + waitS > opts.timeoutS) {
      // Use what is left of the budget for one last try rather than stopping early.
      const leftS = opts.timeoutS - elapsedS;
      if (leftS <= 0) throw new LookupTimeoutError(opts.timeoutS, last);
      waitS = leftS;
    }
    await sleep(waitS * 1000);
    if ((now() - started) / 1000 > opts.timeoutS + 1) throw new LookupTimeoutError(opts.timeoutS, last);
  }
}
