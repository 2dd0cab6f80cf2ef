// The operator API's monitoring routes. GET /metrics is Prometheus' text format and needs a token
// like every other read (reader role). GET /healthz and /readyz are for load balancers and
// service managers, which hold no token: they are public and say one word, nothing more.
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Store } from '../store/store.ts';
import type { Metrics } from './metrics.ts';

export function metricsRouter(metrics: Metrics): Router {
  const r = new Router();
  r.get('/metrics', async (ctx) => {
    const { contentType, body } = await metrics.scrape();
    ctx.set('Cache-Control', 'no-store');
    ctx.type = contentType;
    ctx.body = body;
  });
  return r;
}

/** Why the conductor is not ready, in one word: "starting", "stopping"; null when it is. */
export type Readiness = () => string | null;

export interface HealthDeps {
  store: Store;
  ready: Readiness;
  /** How long the store query may take before the conductor is reported not ready; default 2 s. */
  storeTimeoutMs?: number;
}

/** Resolves true if a trivial store query answers in time. */
async function storeAnswers(store: Store, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), timeoutMs);
  });
  try {
    return await Promise.race([store.nodes.count({ maintenance: true }).then(() => true), late]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export function healthRouter(deps: HealthDeps): Router {
  const r = new Router();
  const plain = (ctx: Context, status: number, word: string) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.status = status;
    ctx.type = 'text/plain';
    ctx.body = word;
  };
  // The process answers: that is all liveness means (a wedged store is readiness' business).
  r.get('/healthz', (ctx) => plain(ctx, 200, 'ok'));
  r.get('/readyz', async (ctx) => {
    const why =
      deps.ready() ?? ((await storeAnswers(deps.store, deps.storeTimeoutMs ?? 2000)) ? null : 'store');
    if (why) plain(ctx, 503, why);
    else plain(ctx, 200, 'ready');
  });
  return r;
}
