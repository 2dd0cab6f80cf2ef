// The conductor's operator API (REST) as a koa app, built from its dependencies so tests can hand in their own.

import type Router from '@koa/router';
import Koa, { type Middleware } from 'koa';
import type { Logger } from '../../shared/log.ts';
import { KILN_VERSION } from '../../shared/version.ts';
import { authenticate } from '../auth/middleware.ts';
import type { EnrollmentSettings } from '../enroll/discovery.ts';
import type { NodeService } from '../nodes/service.ts';
import type { ProvisionEngine } from '../provision/engine.ts';
import type { Store } from '../store/store.ts';
import { accessLog, isReadingOwnBody, jsonBody } from './http.ts';
import { openApiDocument } from './openapi.ts';
import { restErrors } from './rest-errors.ts';
import { type ImagesRouterDeps, imagesRouter } from './routes/images.ts';
import { nodesRouter } from './routes/nodes.ts';
import { portsRouter } from './routes/ports.ts';
import { tokensRouter } from './routes/tokens.ts';
import { versionRouter } from './routes/version.ts';

export interface ApiDeps extends ImagesRouterDeps {
  store: Store;
  nodes: NodeService;
  engine: ProvisionEngine;
  log: Logger;
  bodyLimit?: number;
  publicUrl?: string;
  /** What discovery withholds and `POST /v1/nodes/{node}/bmc/approve` applies. */
  enrollment?: EnrollmentSettings;
  /** Check API tokens (the default); false only where the config allows it (loopback). */
  auth?: boolean;
  /** More routers on the operator API (tests). */
  extraRouters?: Router[];
}

/**
 * What both listeners' apps share: the error path for requests no route claims (REST-shaped;
 * the ramdisk and boot routers mount their own wire's error middleware inside them), the access
 * log, `guards` (authentication, rate limits: before any body is read), the body reader, routes.
 */
function buildApp(
  log: Logger,
  opts: {
    guards: Middleware[];
    afterBody?: Middleware[];
    routers: Router[];
    bodyLimit: number;
    openApi?: boolean;
  },
): Koa {
  const app = new Koa();
  app.proxy = false;
  // Koa would log errors on its own; the error middleware already logged each one once.
  app.silent = true;
  app.use(restErrors(log));
  app.use(accessLog(log));
  for (const g of opts.guards) app.use(g);
  const ownBody = opts.routers.filter(isReadingOwnBody);
  app.use(jsonBody(opts.bodyLimit, (ctx) => ownBody.some((r) => r.match(ctx.path, ctx.method).route)));
  for (const m of opts.afterBody ?? []) app.use(m);
  if (opts.openApi) {
    const doc = openApiDocument(KILN_VERSION);
    app.use(async (ctx, next) => {
      if (ctx.method === 'GET' && ctx.path === '/v1/openapi.json') {
        ctx.body = doc;
        return;
      }
      await next();
    });
  }
  for (const r of opts.routers) {
    app.use(r.routes());
    app.use(r.allowedMethods({ throw: true }));
  }
  return app;
}

/** The operator API: REST for the CLI and the web console, every request authenticated. */
export function createApp(deps: ApiDeps): Koa {
  const log = deps.log.child({ component: 'api' });
  return buildApp(log, {
    // Before any body is read: an unauthenticated client gets nothing but the 401.
    guards: [authenticate({ tokens: deps.auth === false ? null : deps.store.tokens, log })],
    routers: [
      versionRouter(deps.publicUrl),
      nodesRouter(deps),
      portsRouter(deps),
      imagesRouter(deps),
      tokensRouter(deps),
      ...(deps.extraRouters ?? []),
    ],
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    openApi: true,
  });
}

export interface ProvisioningAppDeps {
  log: Logger;
  /** Ramdisk lookup/heartbeat, inspection call-back, boot scripts and files, the image cache. */
  routers: Router[];
  /** The URL ramdisks use, for the version document's links. */
  publicUrl?: string;
  /** Flood limits, applied before anything else is done for a request. */
  guards?: Middleware[];
  /** Limits that need the parsed body (the MACs an inspection call-back names). */
  afterBody?: Middleware[];
  bodyLimit?: number;
}

/**
 * The provisioning endpoints: what ramdisks and netboot firmware talk to, on the provisioning
 * network. No operator route is reachable here; each endpoint authenticates the way its peer
 * can (agent token, signed image URL), see docs/security.md.
 */
export function createProvisioningApp(deps: ProvisioningAppDeps): Koa {
  return buildApp(deps.log.child({ component: 'provisioning' }), {
    guards: deps.guards ?? [],
    afterBody: deps.afterBody ?? [],
    routers: [versionRouter(deps.publicUrl), ...deps.routers],
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
  });
}
