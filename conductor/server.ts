// Starts a conductor: store, engine, API, periodic tasks; and stops it gracefully.
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import type Router from '@koa/router';
import { buildConfigDrive } from '../shared/configdrive.ts';
import { KilnError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { AgentClient } from './agent/client.ts';
import { createRamdiskRouter } from './agent/ramdisk-api.ts';
import { createApp } from './api/app.ts';
import { RAMDISK_FILES } from './boot/http.ts';
import {
  type BootServices,
  type BootServicesConfig,
  createBootRouter,
  httpBootUrls,
  prepareLoaders,
  startBootServices,
} from './boot/index.ts';
import type { BootScriptInput } from './boot/ipxe/script.ts';
import {
  apiBinding,
  bindProblem,
  bootAddresses,
  derivePublicUrl,
  type Problem,
  runChecks,
} from './checks.ts';
import { type ConductorConfig, subnetConfig } from './config.ts';
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
  /** The API URL ramdisks are given (ipa-api-url, kernel and initramfs). */
  publicUrl: string;
  /** What the start-up checks found (each also logged as a warning). */
  problems: Problem[];
  server: Server;
  close(): Promise<void>;
}

/** The boot settings of the conductor's config, as the boot services and the boot HTTP router take them. */
export function bootSettings(config: ConductorConfig): {
  services: BootServicesConfig;
  /** Boot services run when they have an interface or a TFTP address to serve. */
  enabled: boolean;
  filesDir: string;
  loadersDir: string;
  script: { attempts: number; retryDelay: number };
} {
  const { dhcp, tftp, ...boot } = config.boot;
  return {
    services: {
      dhcp: {
        mode: dhcp.mode,
        interfaces: boot.interfaces,
        subnets: dhcp.subnets.map(subnetConfig),
        leaseFile: resolve(dhcp.lease_file),
        loaders: {
          bios: dhcp.loaders.bios ?? undefined,
          efiX64: dhcp.loaders.efi_x64 ?? undefined,
          efiArm64: dhcp.loaders.efi_arm64 ?? undefined,
        },
        ipxeUserClasses: dhcp.ipxe_user_classes,
        ports: dhcp.ports,
      },
      tftp: {
        enabled: tftp.enabled,
        root: tftp.root,
        addresses: tftp.addresses,
        port: tftp.port,
        maxBlksize: tftp.max_blksize,
        maxWindowsize: tftp.max_windowsize,
        timeoutMs: tftp.timeout_ms,
        retries: tftp.retries,
        maxTransfers: tftp.max_transfers,
      },
    },
    enabled: boot.interfaces.length > 0 || (tftp.enabled && (tftp.addresses?.length ?? 0) > 0),
    filesDir: resolve(boot.ramdisk_dir),
    loadersDir: tftp.root,
    script: { attempts: boot.ramdisk_attempts, retryDelay: boot.ramdisk_retry_delay_s },
  };
}

export async function startConductor(
  config: ConductorConfig,
  log: Logger,
  over: ConductorOverrides = {},
): Promise<RunningConductor> {
  const boot = bootSettings(config);
  // The checks warn at every start; `kiln conductor --check` runs the same ones and fails on any.
  const addrs = await bootAddresses(config);
  const problems = await runChecks(config, { apiPort: false, bootAddresses: addrs });
  for (const p of problems) log.warn({ check: p.check, fix: p.fix }, p.message);
  const store = over.store ?? (await openStore(config.database.url));
  const registry = over.power ? null : createPowerRegistry({ log });
  const power = over.power ?? registry!;
  const fake = createFakeWorkflow();
  // The URL ramdisks use (see derivePublicUrl); the port is only known for sure once listening.
  const bootAddrs = Object.values(addrs.addresses);
  let publicUrl = derivePublicUrl(config, config.api.port, bootAddrs);
  const cache = config.images.cache
    ? new ImageCache({ store, dir: resolve(config.images.cache_dir), log })
    : null;
  const agentClient = new AgentClient({ log: log.child({ component: 'agent-client' }) });
  let engineRef: ProvisionEngine | undefined;
  const agentWorkflow = createAgentWorkflow({
    clientFor: (node) => agentClient.forNode(node),
    imageUrl: (image) => (cache ? `${publicUrl}/images/${image.uuid}` : image.url),
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
  // The HTTP loader route (UEFI HTTP boot, also with your own DHCP) follows configured loaders
  // that link out of the TFTP root; the boot services do the same for TFTP when they run.
  const httpLoaders =
    boot.enabled && config.boot.tftp.enabled
      ? null
      : await prepareLoaders(boot.services.dhcp.loaders ?? {}, boot.loadersDir);
  const lookup = async (mac: string): Promise<BootScriptInput> => {
    const t = await targets.lookup(mac);
    return t.action === 'ramdisk' ? { ...t, ...boot.script } : t;
  };
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
      lookup,
      filesDir: boot.filesDir,
      loadersDir: boot.loadersDir,
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

  // What was opened so far, closed again if the start fails (the process must be able to exit).
  const undo = async () => {
    httpLoaders?.release();
    await registry?.close();
    if (!over.store) await store.close();
  };
  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(config.api.port, config.api.host, () => resolve(s));
      s.once('error', (e: NodeJS.ErrnoException) => {
        const p = bindProblem(e.code ?? e.message, apiBinding(config));
        reject(new KilnError('CONFLICT', `${p.message}; ${p.fix}`, { cause: e }));
      });
    });
  } catch (e) {
    await undo();
    throw e;
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.api.port;
  const host = config.api.host === '0.0.0.0' || config.api.host === '::' ? '127.0.0.1' : config.api.host;
  const url = config.api.public_url ?? `http://${host}:${port}`;
  publicUrl = derivePublicUrl(config, port, bootAddrs);
  Object.assign(urls, {
    kernel: `${publicUrl}/boot/files/${RAMDISK_FILES.kernel}`,
    initrd: `${publicUrl}/boot/files/${RAMDISK_FILES.initrd}`,
    api: publicUrl,
  });

  let bootServices: BootServices | null = null;
  if (boot.enabled) {
    try {
      bootServices = await startBootServices(boot.services, {
        log,
        policy: (mac) => targets.policy(mac),
        urls: httpBootUrls(port),
      });
    } catch (e) {
      await new Promise((r) => server.close(r));
      await undo();
      throw e;
    }
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
      problems: problems.length,
    },
    'conductor started',
  );

  let closed = false;
  return {
    ...parts,
    url,
    publicUrl,
    problems,
    server,
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearInterval(t);
      await sync?.stop();
      await bootServices?.stop();
      httpLoaders?.release();
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
