// Request counts and latency for the provisioning listener, as koa middleware. The route kind
// comes from the path alone, before any router runs, so a flood of made-up paths lands in one
// `other` series instead of minting new ones. The response is recorded when it is done (sent in
// full or cut off), so its status is the final one whichever middleware set it (a 429 from the
// rate limits, an error mapped by the error middleware) and an image's time is its transfer's.
import type { Context, Middleware } from 'koa';
import type { Metrics, RouteKind } from './metrics.ts';

const KINDS: [RegExp, RouteKind][] = [
  [/^\/v1\/lookup\/?$/, 'lookup'],
  [/^\/v1\/heartbeat\/[^/]+\/?$/, 'heartbeat'],
  [/^\/v1\/continue\/?$/, 'continue'],
  [/^\/boot\/ipxe\/?$/, 'boot_script'],
  [/^\/boot\/(files|loaders)\/[^/]+$/, 'boot_file'],
  [/^\/images\/[^/]+$/, 'image'],
];

export function routeKind(path: string): RouteKind {
  for (const [re, kind] of KINDS) if (re.test(path)) return kind;
  return 'other';
}

export function httpMetrics(metrics: Metrics): Middleware {
  return async (ctx: Context, next) => {
    const started = performance.now();
    const route = routeKind(ctx.path);
    // 'close' comes once per response, after 'finish' or when the client went away first
    // (code "aborted": a status never sent in full says nothing about the request).
    ctx.res.once('close', () => {
      const code = ctx.res.writableFinished ? String(ctx.res.statusCode) : 'aborted';
      metrics.httpRequests.inc({ route, code });
      metrics.httpDuration.observe({ route }, (performance.now() - started) / 1000);
    });
    await next();
  };
}
