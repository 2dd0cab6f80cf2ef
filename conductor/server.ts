// Starts a conductor: store, engine, API, periodic tasks; and stops it gracefully.
import type { Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import type Router from '@koa/router';
import { buildConfigDrive } from '../agent/disk/configdrive.ts';
import type { Logger } from '../shared/log.ts';
import { AgentClient } from './agent/client.ts';
import { createRamdiskRouter } from './agent/ramdisk-api.ts';
import { createApp } from './api/app.ts';
import { type BootServices, createBootRouter, httpBootUrls, startBootServices } from './boot/index.ts';
import type { ConductorConfig } from './config.ts';
import { createBootTargets } from './enroll/boot-target.ts';
import { discoveryRouter, type EnrollmentSettings } from './enroll/discovery.ts';
import { ImageCache } from './images/cache.ts';
import { NodeService } from './nodes/service.ts';
import type { PowerDriverRegistry } from './power/driver.ts';
import { createPowerRegistry } from './power/registry.ts';
import { createPowerSync } from './power/sync.ts';
import { createAgentWorkflow } from './provision/agent-workflow.ts';
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
  // The URL ramdisks use: configured, or the first boot interface's address, or the listen address.
  const bootAddr = config.boot.interfaces.map(ipv4Of).find(Boolean);
  let publicUrl =
    config.api.public_url?.replace(/\/$/, '') ??
    (bootAddr && config.api.port ? `http://${bootAddr}:${config.api.port}` : undefined);
  const cache = config.images.cache
    ? new ImageCache({ store, dir: resolve(config.images.cache_dir), log })
    : null;
  const agentClient = new AgentClient({ log: log.child({ component: 'agent-client' }) });
  let engineRef: ProvisionEngine | undefined;
  const agentWorkflow = createAgentWorkflow({
    clientFor: (node) => agentClient.forNode(node),
    imageUrl: (image) => (cache && publicUrl ? `${publicUrl}/images/${image.uuid}` : image.url),
    fastTrack: config.conductor.fast_track,
    configDrive: (node) => {
      // The OpenStack config drive: hostname and identity, plus what the deploy request gave.
      const info = node.instance_info;
      const extra = (info.configdrive ?? {}) as Record<string, unknown>;
      return buildConfigDrive({
        hostname: String(info.hostname ?? node.name ?? node.uuid),
        uuid: node.uuid,
        public_keys: extra.public_keys as Record<string, string> | undefined,
        network_data: extra.network_data as Record<string, unknown> | undefined,
        user_data: (extra.user_data as string | undefined) ?? null,
        meta_data: extra.meta_data as Record<string, unknown> | undefined,
      });
    },
  });
  const workflowFor =
    over.workflowFor ??
    ((node: NodeRecord) => {
      // Like Ironic: the deploy interface may be chosen per node (fake BMC + agent is the
      // developer's set-up); by default fake BMCs get the fake workflow.
      const chosen = node.properties.deploy_interface ?? (node.driver === 'fake' ? 'fake' : 'agent');
      return chosen === 'fake' ? fake : agentWorkflow;
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
  engineRef = engine;
  const nodes = new NodeService(store, log.child({ component: 'nodes' }));
  await engine.recover();

  const parts: ConductorParts = { config, store, engine, nodes, power, log };
  const enrollment: EnrollmentSettings = {
    policy: config.enrollment.policy,
    allowMacPrefixes: config.enrollment.allow_mac_prefixes,
    bmcUsername: config.enrollment.bmc_username,
    bmcPassword: config.enrollment.bmc_password,
  };
  // Filled in once the API listens, when the port is only known then.
  const urls = { kernel: '', initrd: '', api: '' };
  const targets = createBootTargets({ store, urls, enrollment, extraArgs: config.boot.kernel_args });
  const ramdiskDir = resolve(config.boot.ramdisk_dir);
  const routers: Router[] = [
    createRamdiskRouter({
      store,
      log,
      fastTrack: config.conductor.fast_track,
      heartbeatTimeoutS: config.conductor.heartbeat_timeout_s,
      lockHolder: `${config.conductor.id}:ramdisk`,
      onHeartbeat: (node) => {
        void engineRef
          ?.resume(node.uuid)
          .catch((e) => log.error({ err: e, node: node.uuid }, 'heartbeat processing failed'));
      },
    }),
    discoveryRouter({
      store,
      nodes,
      engine,
      log: log.child({ component: 'discovery' }),
      settings: enrollment,
    }),
    createBootRouter({
      lookup: (mac) => targets.lookup(mac),
      filesDir: ramdiskDir,
      loadersDir: config.boot.tftp_root,
      log: log.child({ component: 'boot-http' }),
    }),
    ...(cache ? [cache.router()] : []),
    ...(over.extraRouters?.(parts) ?? []),
  ];
  const app = createApp({
    store,
    nodes,
    engine,
    log,
    bodyLimit: config.api.body_limit,
    publicUrl: config.api.public_url,
    extraRouters: routers,
  });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.api.port, config.api.host, () => resolve(s));
    s.once('error', (e) => reject(e));
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.api.port;
  const host = config.api.host === '0.0.0.0' || config.api.host === '::' ? '127.0.0.1' : config.api.host;
  const url = config.api.public_url ?? `http://${host}:${port}`;
  publicUrl ??= bootAddr ? `http://${bootAddr}:${port}` : url;
  Object.assign(urls, {
    kernel: `${publicUrl}/boot/files/kernel`,
    initrd: `${publicUrl}/boot/files/initramfs`,
    api: publicUrl,
  });

  let boot: BootServices | null = null;
  if (config.boot.interfaces.length) {
    boot = await startBootServices(
      {
        dhcp: {
          mode: config.boot.dhcp_mode,
          interfaces: config.boot.interfaces,
          subnets: config.boot.subnets.map((s) => ({
            cidr: s.cidr,
            rangeStart: s.range_start,
            rangeEnd: s.range_end,
            router: s.router,
            dns: s.dns,
            leaseTime: s.lease_time_s,
          })),
          leaseFile: resolve(config.boot.lease_file),
        },
        tftp: { enabled: config.boot.tftp, root: config.boot.tftp_root },
      },
      { log, policy: (mac) => targets.policy(mac), urls: httpBootUrls(port) },
    ).catch(async (e) => {
      server.close();
      throw e;
    });
  }

  const timers: NodeJS.Timeout[] = [];
  const watchdog = setInterval(() => {
    engine.checkCallbackTimeouts().catch((e) => log.error({ err: e }, 'call-back watchdog failed'));
    engine.pollWaiting().catch((e) => log.error({ err: e }, 'polling waiting agents failed'));
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

  log.info(
    {
      url,
      public_url: publicUrl,
      db: store.kind,
      conductor: config.conductor.id,
      boot: config.boot.interfaces,
    },
    'conductor started',
  );

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
      await boot?.stop();
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

function ipv4Of(iface: string): string | undefined {
  return networkInterfaces()[iface]?.find((a) => a.family === 'IPv4')?.address;
}
