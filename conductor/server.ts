// Starts a conductor: store, engine, API, periodic tasks; and stops it gracefully.
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';
import { buildConfigDrive } from '../shared/configdrive.ts';
import { KilnError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { createApp, createProvisioningApp } from './api/app.ts';
import { uiRouter } from './api/routes/ui.ts';
import { type ApiTls, apiTls } from './api/tls.ts';
import { RAMDISK_FILES } from './boot/http.ts';
import {
  type BootServices,
  type BootServicesConfig,
  createBootRouter,
  httpBootUrls,
  type NetbootUrls,
  prepareLoaders,
  startBootServices,
} from './boot/index.ts';
import type { BootScriptInput } from './boot/ipxe/script.ts';
import {
  apiBinding,
  type Binding,
  bindProblem,
  bootAddresses,
  derivePublicUrl,
  type Problem,
  provisioningBinding,
  runChecks,
} from './checks.ts';
import { type ConductorConfig, subnetConfig } from './config.ts';
import { type BootUrls, createBootTargets } from './enroll/boot-target.ts';
import { discoveryRouter, type EnrollmentSettings } from './enroll/discovery.ts';
import { EventBus } from './events/bus.ts';
import { observeStore } from './events/observe.ts';
import { eventsStreamRouter } from './events/stream-route.ts';
import { ImageCache } from './images/cache.ts';
import { macKeys, rateLimit, sourceKey } from './limits/http.ts';
import { httpMetrics } from './metrics/http.ts';
import { Metrics } from './metrics/metrics.ts';
import { meteredPowerRegistry } from './metrics/power.ts';
import { healthRouter, metricsRouter } from './metrics/routes.ts';
import { meteredStore } from './metrics/store.ts';
import { NodeService } from './nodes/service.ts';
import type { PowerDriverRegistry } from './power/driver.ts';
import { createPowerRegistry } from './power/registry.ts';
import { createPowerSync } from './power/sync.ts';
import { createAgentWorkflow } from './provision/agent-workflow.ts';
import { ProvisionEngine } from './provision/engine.ts';
import { createFakeWorkflow } from './provision/fake-workflow.ts';
import type { Workflow } from './provision/workflow.ts';
import { AgentClient } from './ramdisk/client.ts';
import { createRamdiskRouter } from './ramdisk/ramdisk-api.ts';
import type { SecretBox } from './secrets/box.ts';
import { loadOrCreateKey } from './secrets/key.ts';
import { openStore } from './store/open.ts';
import { resealAll, sealStore } from './store/sealed.ts';
import type { NodeRecord, Store } from './store/store.ts';

/** The web console's build (npm run build): dist/ui beside this file's folder, from source and from the bundle alike. */
const UI_DIR = fileURLToPath(new URL('../dist/ui/', import.meta.url));

export interface ConductorOverrides {
  /** An undecorated store (its secrets are sealed under `secrets` all the same). */
  store?: Store;
  /** The key that seals secrets at rest; by default loaded from (or made at) secrets.key_file. */
  secrets?: SecretBox;
  power?: PowerDriverRegistry;
  /** Workflow per node; by default fake nodes get the fake workflow and real BMCs the agent one. */
  workflowFor?: (node: NodeRecord) => Workflow;
  /** More routers on the provisioning listener (tests). */
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
  /** The operator API (https:// unless api.tls.mode is off). */
  url: string;
  /** The provisioning endpoints' URL ramdisks are given (ipa-api-url, kernel and initramfs). */
  publicUrl: string;
  /** The operator API's certificate (PEM) and its SHA-256 fingerprint, when it speaks TLS. */
  tls: { certPem: string; fingerprint256: string } | null;
  /** What the start-up checks found (each also logged as a warning). */
  problems: Problem[];
  /** The operator API's server. */
  server: Server;
  /** The provisioning endpoints' server. */
  provisioningServer: Server;
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
        rateLimit: {
          perMacPerS: dhcp.rate_limit.per_mac_per_s,
          burst: dhcp.rate_limit.burst,
          newClientsPerS: dhcp.rate_limit.new_clients_per_s,
          maxOfferedFraction: dhcp.rate_limit.max_offered_fraction,
        },
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

/** Every URL the conductor hands out, known before anything is served. */
export interface ConductorUrls {
  /** Where the operator API is reached from this host (what the CLI and tests call). */
  url: string;
  /** The API URL ramdisks are given (ipa-api-url, kernel and initramfs); see derivePublicUrl. */
  publicUrl: string;
  /** What iPXE scripts boot. */
  ramdisk: BootUrls;
  /** What DHCP answers point netboot clients to (scripts, UEFI HTTP boot loaders). */
  netboot: NetbootUrls;
}

/**
 * The URLs for the bound ports (also when a configured port is 0): the operator API on
 * `apiPort`, the provisioning endpoints on `provisioningPort`.
 */
export function conductorUrls(
  config: ConductorConfig,
  ports: { api: number; provisioning: number },
  bootAddrs: string[],
): ConductorUrls {
  const h = config.api.host === '0.0.0.0' || config.api.host === '::' ? '127.0.0.1' : config.api.host;
  const host = h.includes(':') ? `[${h}]` : h;
  const scheme = config.api.tls.mode === 'off' ? 'http' : 'https';
  const publicUrl = derivePublicUrl(config, ports.provisioning, bootAddrs);
  return {
    url: (config.api.public_url ?? `${scheme}://${host}:${ports.api}`).replace(/\/$/, ''),
    publicUrl,
    ramdisk: {
      kernel: `${publicUrl}/boot/files/${RAMDISK_FILES.kernel}`,
      initrd: `${publicUrl}/boot/files/${RAMDISK_FILES.initrd}`,
      api: publicUrl,
    },
    netboot: httpBootUrls(ports.provisioning),
  };
}

/** The start-up checks: each problem is logged as a warning (`kiln conductor --check` fails on them). */
async function startupChecks(
  config: ConductorConfig,
  log: Logger,
): Promise<{ problems: Problem[]; bootAddrs: string[] }> {
  const addrs = await bootAddresses(config);
  const problems = await runChecks(config, { apiPort: false, bootAddresses: addrs });
  for (const p of problems) log.warn({ check: p.check, fix: p.fix }, p.message);
  return { problems, bootAddrs: Object.values(addrs.addresses) };
}

/**
 * A listening socket, bound before anything else starts, so that the port (also an ephemeral
 * one) is known when the URLs are made, and a conductor that cannot have its ports touches
 * nothing: no store opened, no recovery run against another conductor's nodes. Requests that
 * arrive before the app is attached are answered 503.
 */
async function bind(
  binding: Binding,
  tls: ApiTls | null,
): Promise<{
  server: Server;
  port: number;
  serve(handler: RequestListener): void;
  close(): Promise<void>;
}> {
  let handler: RequestListener = (_req, res) => {
    res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' });
    res.end('the conductor is starting\n');
  };
  const listener: RequestListener = (req, res) => handler(req, res);
  const server: Server = tls
    ? (createTlsServer({ cert: tls.certPem, key: tls.keyPem }, listener) as unknown as Server)
    : createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const p = bindProblem(e.code ?? e.message, binding);
      reject(new KilnError('CONFLICT', `${p.message}; ${p.fix}`, { cause: e }));
    });
    server.listen(binding.port, binding.host, () => resolve());
  });
  const addr = server.address();
  return {
    server,
    port: typeof addr === 'object' && addr ? addr.port : binding.port,
    serve: (h) => {
      handler = h;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections?.();
      }),
  };
}

/** The workflow each node gets: by default fake BMCs the fake one, real BMCs the agent one. */
function createWorkflows(
  config: ConductorConfig,
  deps: { publicUrl: string; cache: ImageCache | null; log: Logger },
): (node: NodeRecord) => Workflow {
  const fake = createFakeWorkflow();
  const agentClient = new AgentClient({ log: deps.log.child({ component: 'agent-client' }) });
  const agentWorkflow = createAgentWorkflow({
    clientFor: (node) => agentClient.forNode(node),
    // Through the cache, a URL signed for this node and image, valid as long as the node may
    // wait for its ramdisk: the cache endpoint is on the provisioning network.
    imageUrl: (image, node) =>
      deps.cache
        ? deps.cache.signedUrl(deps.publicUrl, image.uuid, node.uuid, config.conductor.callback_timeout_s)
        : image.url,
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
  return (node) => {
    // Like Ironic: the deploy interface may be chosen per node (fake BMC + agent is the
    // developer's set-up); by default fake BMCs get the fake workflow.
    const chosen = node.properties.deploy_interface ?? (node.driver === 'fake' ? 'fake' : 'agent');
    return chosen === 'fake' ? fake : agentWorkflow;
  };
}

function enrollmentSettings(config: ConductorConfig): EnrollmentSettings {
  return {
    policy: config.enrollment.policy,
    allowMacPrefixes: config.enrollment.allow_mac_prefixes,
    bmcUsername: config.enrollment.bmc_username,
    bmcPassword: config.enrollment.bmc_password,
  };
}

/** The routers beside the REST API: ramdisk lookup/heartbeat, discovery, boot files and scripts, images. */
function createRouters(
  parts: ConductorParts,
  deps: {
    boot: ReturnType<typeof bootSettings>;
    targets: ReturnType<typeof createBootTargets>;
    enrollment: EnrollmentSettings;
    cache: ImageCache | null;
    extra: Router[];
  },
): Router[] {
  const { config, store, engine, nodes, log } = parts;
  const { boot, targets } = deps;
  const lookup = async (mac: string): Promise<BootScriptInput> => {
    const t = await targets.lookup(mac);
    return t.action === 'ramdisk' ? { ...t, ...boot.script } : t;
  };
  return [
    createRamdiskRouter({
      store,
      log,
      fastTrack: config.conductor.fast_track,
      heartbeatTimeoutS: config.conductor.heartbeat_timeout_s,
      lockHolder: `${config.conductor.id}:ramdisk`,
      heartbeats: engine,
      callbackHost: config.provisioning.callback_host,
    }),
    discoveryRouter({
      store,
      nodes,
      engine,
      log: log.child({ component: 'discovery' }),
      settings: deps.enrollment,
    }),
    createBootRouter({
      lookup,
      filesDir: boot.filesDir,
      loadersDir: boot.loadersDir,
      log: log.child({ component: 'boot-http' }),
    }),
    ...(deps.cache ? [deps.cache.router()] : []),
    ...deps.extra,
  ];
}

/** The call-back watchdog, polling of waiting agents, and power sync; stop() ends them. */
function startPeriodicTasks(parts: ConductorParts): { stop(): Promise<void> } {
  const { config, engine, store, power, log } = parts;
  const watchdog = setInterval(() => {
    engine.checkCallbackTimeouts().catch((e) => log.error({ err: e }, 'call-back watchdog failed'));
    engine.pollWaiting().catch((e) => log.error({ err: e }, 'polling waiting agents failed'));
  }, config.conductor.watchdog_interval_s * 1000);
  watchdog.unref();
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
  return {
    async stop() {
      clearInterval(watchdog);
      await sync?.stop();
    },
  };
}

/**
 * Start a conductor, in this order: checks, the API socket (so every URL is known from here
 * on), store and power drivers, engine (with recovery), boot targets and routers, the API app,
 * boot services, periodic tasks. A failing step closes what the earlier ones opened.
 */
export async function startConductor(
  config: ConductorConfig,
  log: Logger,
  over: ConductorOverrides = {},
): Promise<RunningConductor> {
  const boot = bootSettings(config);
  const { problems, bootAddrs } = await startupChecks(config, log);
  const tls = await apiTls(config, log);
  const api = await bind(apiBinding(config), tls);
  // What was opened so far, closed again (last first) if the start fails: the process must be able to exit.
  const opened: (() => unknown)[] = [() => api.close()];
  const undo = async () => {
    for (const close of opened.reverse()) await close();
  };
  const prov = await bind(provisioningBinding(config), null).catch(async (e) => {
    await undo();
    throw e;
  });
  opened.push(() => prov.close());
  const urls = conductorUrls(config, { api: api.port, provisioning: prov.port }, bootAddrs);

  try {
    const box =
      over.secrets ?? (await loadOrCreateKey(resolve(config.secrets.key_file), { env: process.env, log }));
    const raw = over.store ?? (await openStore(config.database.url));
    if (!over.store) opened.push(() => raw.close());
    // Secrets written before sealing existed are sealed now, before anything reads them.
    const resealed = await resealAll(raw, box);
    if (resealed.changed) log.info({ ...resealed }, 'sealed plain-text secrets found in the database');
    // Decorators, innermost first: the event stream sees only sealed values; metrics time what commits.
    const metrics = new Metrics({ store: raw, log: log.child({ component: 'metrics' }) });
    const bus = new EventBus(log.child({ component: 'events' }));
    const store = meteredStore(
      sealStore(observeStore(raw, bus, { log: log.child({ component: 'events' }) }), box),
      metrics,
    );
    let readiness: string | null = 'starting';
    const registry = over.power ? null : createPowerRegistry({ log });
    if (registry) opened.push(() => registry.close());
    const power = meteredPowerRegistry(over.power ?? registry!, metrics);
    const cache = config.images.cache
      ? new ImageCache({
          store,
          dir: resolve(config.images.cache_dir),
          log,
          allowedHosts: config.images.allowed_hosts,
          // Derived from the secrets key: every conductor sharing the key accepts the same URLs.
          signingKey: box.derive('image-urls'),
          metrics,
        })
      : null;
    const engine = new ProvisionEngine({
      store,
      power,
      log,
      workflowFor: over.workflowFor ?? createWorkflows(config, { publicUrl: urls.publicUrl, cache, log }),
      conductorId: config.conductor.id,
      automatedClean: config.conductor.automated_clean,
      callbackTimeoutS: config.conductor.callback_timeout_s,
    });
    const nodes = new NodeService(store, log.child({ component: 'nodes' }));
    await engine.recover();
    const parts: ConductorParts = { config, store, engine, nodes, power, log };

    const enrollment = enrollmentSettings(config);
    const targets = createBootTargets({
      store,
      urls: urls.ramdisk,
      enrollment,
      extraArgs: config.boot.kernel_args,
    });
    // The HTTP loader route (UEFI HTTP boot, also with your own DHCP) follows configured loaders
    // that link out of the TFTP root; the boot services do the same for TFTP when they run.
    const httpLoaders =
      boot.enabled && config.boot.tftp.enabled
        ? null
        : await prepareLoaders(boot.services.dhcp.loaders ?? {}, boot.loadersDir);
    if (httpLoaders) opened.push(() => httpLoaders.release());
    const app = createApp({
      store,
      nodes,
      engine,
      log,
      bodyLimit: config.api.body_limit,
      publicUrl: config.api.public_url,
      auth: config.api.auth === 'token',
      imageAllowedHosts: config.images.allowed_hosts,
      enrollment,
      extraRouters: [
        eventsStreamRouter({ store, bus, log }),
        metricsRouter(metrics),
        healthRouter({ store, ready: () => readiness }),
        uiRouter({ dir: UI_DIR }),
      ],
    });
    api.serve(app.callback());
    const limit = config.provisioning.rate_limit;
    const provisioningApp = createProvisioningApp({
      log,
      publicUrl: urls.publicUrl,
      // A flood from one machine, or for one MAC, must not starve the others.
      guards: [
        httpMetrics(metrics),
        rateLimit({
          perSecond: limit.per_source_per_s,
          burst: limit.burst,
          key: sourceKey,
          what: 'source address',
        }),
      ],
      // Per MAC, once the body is read: the inspection call-back names its MACs there.
      afterBody: [
        rateLimit({ perSecond: limit.per_source_per_s, burst: limit.burst, key: macKeys, what: 'MAC' }),
      ],
      routers: createRouters(parts, {
        boot,
        targets,
        enrollment,
        cache,
        extra: over.extraRouters?.(parts) ?? [],
      }),
    });
    prov.serve(provisioningApp.callback());

    const bootServices: BootServices | null = boot.enabled
      ? await startBootServices(boot.services, {
          log,
          policy: (mac) => targets.policy(mac),
          urls: urls.netboot,
        })
      : null;
    const periodic = startPeriodicTasks(parts);
    metrics.watchBoot(() =>
      bootServices
        ? { dhcp: bootServices.dhcp?.stats ?? null, tftp: bootServices.tftp?.stats ?? null }
        : null,
    );
    readiness = null;

    log.info(
      {
        url: urls.url,
        public_url: urls.publicUrl,
        auth: config.api.auth,
        tls_fingerprint: tls?.fingerprint256 ?? null,
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
      url: urls.url,
      publicUrl: urls.publicUrl,
      tls: tls ? { certPem: tls.certPem, fingerprint256: tls.fingerprint256 } : null,
      problems,
      server: api.server,
      provisioningServer: prov.server,
      async close() {
        if (closed) return;
        closed = true;
        readiness = 'stopping';
        await periodic.stop();
        await bootServices?.stop();
        httpLoaders?.release();
        await registry?.close();
        await api.close();
        await prov.close();
        // Let running work reach its next committed state; whatever can't is failed by recover() on restart.
        await Promise.race([engine.drain(), new Promise((r) => setTimeout(r, 10_000))]);
        if (!over.store) await store.close();
        log.info('conductor stopped');
      },
    };
  } catch (e) {
    await undo();
    throw e;
  }
}
