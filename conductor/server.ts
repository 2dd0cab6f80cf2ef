// Starts a conductor: store, engine, API, periodic tasks; and stops it gracefully.
import type { Server } from 'node:http';
import type Router from '@koa/router';
import type { Logger } from '../shared/log.ts';
import { createApp } from './api/app.ts';
import type { ConductorConfig } from './config.ts';
import { NodeService } from './nodes/service.ts';
import type { PowerDriverRegistry } from './power/driver.ts';
import { createPowerRegistry } from './power/registry.ts';
import { createPowerSync } from './power/sync.ts';
import { ProvisionEngine } from './provision/engine.ts';
import { createFakeWorkflow } from './provision/fake-workflow.ts';
import type { Workflow } from './provision/workflow.ts';
import { openStore } from './store/open.ts';
import type { NodeRecord, Store } from './store/store.ts';

export interface ConductorOverrides {
  store?: Store;
  power?: PowerDriverRegistry;
  /** Workflow per node; by default fake nodes get the fake workflow and real BMCs the agent one. */
  workflowFor?: (node: NodeRecord) => Workflow;
  extraRouters?: (ctx: ConductorParts) => Router[];
}

export interface ConductorParts {
  config: ConductorConfig;
  store: Store;
  engine: ProvisionEngine;
  nodes: NodeService;
  power: PowerDriverRegistry;
  log: Logger;
}

export interface RunningConductor extends ConductorParts {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startConductor(
  config: ConductorConfig,
  log: Logger,
  over: ConductorOverrides = {},
): Promise<RunningConductor> {
  const store = over.store ?? (await openStore(config.database.url));
  const registry = over.power ? null : createPowerRegistry({ log });
  const power = over.power ?? registry!;
  const fake = createFakeWorkflow();
  const workflowFor =
    over.workflowFor ??
    ((node: NodeRecord) => {
      if (node.driver === 'fake' || node.properties.deploy_interface === 'fake') return fake;
      return fake;
    });
  const engine = new ProvisionEngine({
    store,
    power,
    log,
    workflowFor,
    conductorId: config.conductor.id,
    automatedClean: config.conductor.automated_clean,
    callbackTimeoutS: config.conductor.callback_timeout_s,
  });
  const nodes = new NodeService(store, log.child({ component: 'nodes' }));
  await engine.recover();

  const parts: ConductorParts = { config, store, engine, nodes, power, log };
  const app = createApp({
    store,
    nodes,
    engine,
    log,
    bodyLimit: config.api.body_limit,
    publicUrl: config.api.public_url,
    extraRouters: over.extraRouters?.(parts),
  });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.api.port, config.api.host, () => resolve(s));
    s.once('error', (e) => reject(e));
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.api.port;
  const host = config.api.host === '0.0.0.0' || config.api.host === '::' ? '127.0.0.1' : config.api.host;
  const url = config.api.public_url ?? `http://${host}:${port}`;

  const timers: NodeJS.Timeout[] = [];
  const watchdog = setInterval(() => {
    engine.checkCallbackTimeouts().catch((e) => log.error({ err: e }, 'call-back watchdog failed'));
  }, config.conductor.watchdog_interval_s * 1000);
  timers.push(watchdog);
  const sync =
    config.conductor.power_sync_interval_s > 0
      ? createPowerSync({
          store,
          registry: power,
          log: log.child({ component: 'power-sync' }),
          concurrency: config.conductor.power_sync_concurrency,
          intervalMs: config.conductor.power_sync_interval_s * 1000,
        })
      : null;
  sync?.start();
  for (const t of timers) t.unref();

  log.info({ url, db: store.kind, conductor: config.conductor.id }, 'conductor started');

  let closed = false;
  return {
    ...parts,
    url,
    server,
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearInterval(t);
      await sync?.stop();
      await registry?.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections?.();
      });
      // Let running work reach its next committed state; whatever can't is failed by recover() on restart.
      await Promise.race([engine.drain(), new Promise((r) => setTimeout(r, 10_000))]);
      if (!over.store) await store.close();
      log.info('conductor stopped');
    },
  };
}
