// The conductor's HTTP API as a koa app, built from its dependencies so tests can hand in their own.

import type Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from '../../shared/log.ts';
import { KILN_VERSION } from '../../shared/version.ts';
import type { NodeService } from '../nodes/service.ts';
import type { ProvisionEngine } from '../provision/engine.ts';
import type { Store } from '../store/store.ts';
import { accessLog, isReadingOwnBody, jsonBody } from './http.ts';
import { openApiDocument } from './openapi.ts';
import { restErrors } from './rest-errors.ts';
import { imagesRouter } from './routes/images.ts';
import { nodesRouter } from './routes/nodes.ts';
import { portsRouter } from './routes/ports.ts';
import { versionRouter } from './routes/version.ts';

export interface ApiDeps {
  store: Store;
  nodes: NodeService;
  engine: ProvisionEngine;
  log: Logger;
  bodyLimit?: number;
  publicUrl?: string;
  /** Routers contributed by other services (ramdisk lookup/heartbeat, boot scripts, image cache). */
  extraRouters?: Router[];
}

export function createApp(deps: ApiDeps): Koa {
  const app = new Koa();
  app.proxy = false;
  // Koa would log errors on its own; the error middleware already logged each one once.
  app.silent = true;
  const log = deps.log.child({ component: 'api' });
  // The REST wire's error path, and the answer for anything no route claims. The ramdisk and
  // boot routers mount their own wire's error middleware inside them (readsOwnBody, bootErrors).
  app.use(restErrors(log));
  app.use(accessLog(log));
  const routers = [
    versionRouter(deps.publicUrl),
    nodesRouter(deps),
    portsRouter(deps),
    imagesRouter(deps),
    ...(deps.extraRouters ?? []),
  ];
  const ownBody = routers.filter(isReadingOwnBody);
  app.use(
    jsonBody(deps.bodyLimit ?? 1024 * 1024, (ctx) =>
      ownBody.some((r) => r.match(ctx.path, ctx.method).route),
    ),
  );
  const doc = openApiDocument(KILN_VERSION);
  app.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/v1/openapi.json') {
      ctx.body = doc;
      return;
    }
    await next();
  });
  for (const r of routers) {
    app.use(r.routes());
    app.use(r.allowedMethods({ throw: true }));
  }
  return app;
}
