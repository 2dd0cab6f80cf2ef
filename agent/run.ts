// The agent's life, in IPA's order: discover the API version, look the node up by its MACs,
// start serving the command API, then heartbeat until the machine goes down. Without an API URL
// the agent only serves its API (IPA's standalone mode). Everything the outside world touches
// (HTTP, exec, power) is injectable so the CLI, tests and the ramdisk share this one path.
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import type { Runner } from '../shared/exec.ts';
import { createLogger, type Logger } from '../shared/log.ts';
import type { InventoryInterface, KilnProgress } from '../shared/wire/ipa.ts';
import { callbackUrl, detectAdvertiseHost } from './advertise.ts';
import type { TokenState } from './api/app.ts';
import { CommandExecutor } from './commands/executor.ts';
import { collectSystemLogs, logExtension } from './commands/log.ts';
import { pollExtension } from './commands/poll.ts';
import { implementPstoreStep } from './commands/pstore.ts';
import { CommandRegistry } from './commands/registry.ts';
import { standbyExtension } from './commands/standby.ts';
import { stepsExtension } from './commands/step-commands.ts';
import { StepTable } from './commands/steps.ts';
import { implementTestSteps, testExtension } from './commands/test-commands.ts';
import type { CommandExtension } from './commands/types.ts';
import type { AgentSettings, PowerAction } from './config.ts';
import { decideDeviceAccess, describeDeviceAccess, inKilnRamdisk } from './device-access.ts';
import { run as defaultRun } from './exec.ts';
import { Heartbeater } from './heartbeat.ts';
import { type HttpClient, request } from './http.ts';
import { callInspector } from './inspect.ts';
import { collectInventory } from './inventory/index.ts';
import { physicalNics } from './inventory/interfaces.ts';
import { IronicApiClient } from './ironic-api.ts';
import { LogBuffer } from './log-buffer.ts';
import { LookupTimeoutError, lookupNode } from './lookup.ts';
import type { AgentPlugin, PluginContext } from './plugins.ts';
import { type AgentTls, autoTls } from './tls.ts';
import { AGENT_VERSION } from './version.ts';

export interface StepTables {
  clean: StepTable;
  deploy: StepTable;
}

export interface RunAgentOptions {
  settings: AgentSettings;
  /** Defaults to a JSON logger on stdout that also feeds log.collect_system_logs. */
  log?: Logger;
  run?: Runner;
  http?: HttpClient;
  /** Overrides settings.powerAction. */
  powerOff?: () => Promise<void>;
  /** More command extensions (the disk engine's standby/image commands). */
  extensions?: readonly CommandExtension[];
  /** Hook to implement clean/deploy steps (the disk engine's erase_devices, write_image, ...). */
  configureSteps?: (tables: StepTables) => void;
  /** Plugins loaded after lookup, before the command API opens (see agent/plugins.ts). */
  loadPlugins?: (ctx: PluginContext) => Promise<readonly AgentPlugin[]>;
  /**
   * Running in the Kiln ramdisk? Default: its marker file exists. Outside it, destructive steps
   * write only to settings.allowDevices.
   */
  inRamdisk?: boolean;
  /** The pstore directory erase_pstore empties, or null for none (default: from /proc/mounts). */
  pstoreDir?: () => Promise<string | null>;
}

export interface AgentHandle {
  /** Resolves with the process exit code when the agent stops. */
  readonly done: Promise<number>;
  stop(code?: number): Promise<void>;
  /** Set once the API listens. */
  readonly state: { nodeUuid: string | null; callbackUrl: string | null; port: number | null };
  /** The clean and deploy steps the agent runs (and advertises), complete once the API listens. */
  readonly steps: StepTables;
}

function overrideNic(mac: string, i: number): InventoryInterface {
  return {
    name: `kiln${i}`,
    mac_address: mac,
    ipv4_address: null,
    ipv6_address: null,
    has_carrier: true,
    lldp: null,
    vendor: null,
    product: null,
    client_id: null,
    biosdevname: null,
    speed_mbps: null,
    driver: null,
  };
}

function listen(server: Server | TlsServer, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: false }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function defaultPowerOff(run: Runner, log: Logger): Promise<void> {
  try {
    await run('poweroff', ['-f']);
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'poweroff failed; asking the kernel directly');
    await writeFile('/proc/sysrq-trigger', 'o');
  }
}

/**
 * The power action in effect: the one asked for, else poweroff only in the Kiln ramdisk. On a
 * workstation a conductor's standby.power_off must end the agent, not the machine.
 */
export function resolvePowerAction(asked: PowerAction | null, inRamdisk: boolean): PowerAction {
  return asked ?? (inRamdisk ? 'poweroff' : 'exit');
}

export function runAgent(opts: RunAgentOptions): AgentHandle {
  const s = opts.settings;
  const buffer = new LogBuffer(opts.log ? null : process.stdout);
  const log =
    opts.log ??
    createLogger({ name: 'kiln-agent', level: s.debug ? 'debug' : undefined, destination: buffer });
  const run = opts.run ?? defaultRun;
  const http = opts.http ?? request;
  const state: AgentHandle['state'] = { nodeUuid: null, callbackUrl: null, port: null };
  const tokens: TokenState = { token: s.agentToken, required: s.agentTokenRequired };
  let api: IronicApiClient | null = null;
  // Decided by the conductor's GET / document; re-read because a failed discovery is retried later.
  const withProgress = () => api?.current()?.extensions.has('progress') ?? false;
  let heartbeater: Heartbeater | null = null;
  let server: Server | TlsServer | null = null;
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => {
    finish = r;
  });
  let stopping = false;
  const MAX_LOG = 8 * 1024 * 1024;
  // The file spans agent restarts (a crashed predecessor's last words); memory is the fallback.
  const agentLog = async () => {
    if (s.logFile) {
      try {
        const text = await readFile(s.logFile, 'utf8');
        return text.length > MAX_LOG ? text.slice(-MAX_LOG) : text;
      } catch (e) {
        log.warn(
          { file: s.logFile, err: (e as Error).message },
          'cannot read the agent log file; sending this run only',
        );
      }
    }
    return buffer.text();
  };

  const stop = async (code = 0) => {
    if (stopping) return;
    stopping = true;
    heartbeater?.stop();
    if (server) {
      server.closeAllConnections?.();
      await new Promise<void>((r) => server!.close(() => r()));
    }
    log.info({ code }, 'agent stopped');
    finish(code);
  };

  const access = decideDeviceAccess({
    inRamdisk: opts.inRamdisk ?? inKilnRamdisk(),
    allowDevices: s.allowDevices,
  });
  const powerAction = resolvePowerAction(s.powerAction, access.inRamdisk);
  const powerOff =
    opts.powerOff ??
    (async () => {
      if (powerAction === 'poweroff') await defaultPowerOff(run, log);
      else if (powerAction === 'exit') await stop(0);
      else log.warn({}, 'power off requested; power action is "none", staying up');
    });
  const tables: StepTables = { clean: new StepTable('clean'), deploy: new StepTable('deploy') };
  implementPstoreStep(tables.clean, { inRamdisk: access.inRamdisk, pstoreDir: opts.pstoreDir });
  if (s.testCommands) implementTestSteps(tables);
  opts.configureSteps?.(tables);
  const inventory = async () => {
    const inv = await collectInventory({
      log,
      run,
      settings: { collectLldp: s.collectLldp, lldpTimeoutS: s.lldpTimeoutS, bootif: s.bootif },
    });
    // Development: several agents on one machine stand for machines with these NICs.
    if (s.macs.length) inv.interfaces = s.macs.map((mac, i) => overrideNic(mac, i));
    return inv;
  };
  const registry = new CommandRegistry([
    stepsExtension(tables.clean),
    stepsExtension(tables.deploy),
    standbyExtension({ run, powerOff }),
    logExtension({ run, agentLog }),
    pollExtension(inventory),
    ...(s.testCommands ? [testExtension] : []),
    ...(opts.extensions ?? []),
  ]);
  const executor = new CommandExecutor({
    registry,
    log,
    onAsyncDone: () => heartbeater?.force(),
  });
  const startedAt = Date.now();

  const installPlugins = async () => {
    if (!opts.loadPlugins) return;
    try {
      for (const p of await opts.loadPlugins({ access })) {
        for (const e of p.extensions ?? []) registry.add(e);
        p.configureSteps?.(tables);
        log.info({ plugin: p.name }, 'plugin loaded');
      }
    } catch (e) {
      // Without the plugin the agent still answers; its commands and steps report "not implemented".
      log.error({ err: (e as Error).message ?? String(e) }, 'agent plugin failed to load');
    }
  };

  const serve = async (tls: AgentTls | null = null) => {
    await installPlugins();
    // koa is loaded only now, after the lookup: it is most of the agent's start-up cost.
    const { createAgentApp } = await import('./api/app.ts');
    const app = createAgentApp({
      executor,
      tokens: () => tokens,
      startedAt,
      version: AGENT_VERSION,
      withProgress,
      log,
    });
    server = tls
      ? createTlsServer({ cert: tls.certPem, key: tls.keyPem }, app.callback())
      : createServer(app.callback());
    try {
      await listen(server, s.listenHost, s.listenPort);
    } catch (e) {
      // IPA's default "::" fails on kernels without IPv6; fall back to IPv4 rather than die.
      const code = (e as { code?: string }).code;
      if (s.listenHost !== '::' || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw e;
      log.warn({ code }, 'no IPv6 on this machine; listening on 0.0.0.0');
      await listen(server, '0.0.0.0', s.listenPort);
    }
    const addr = server.address();
    state.port = typeof addr === 'object' && addr ? addr.port : s.listenPort;
    log.info({ host: s.listenHost, port: state.port, tls: tls !== null }, 'agent API listening');
  };

  const main = async (): Promise<void> => {
    log.info({ version: AGENT_VERSION, api: s.apiUrl }, 'kiln agent starting');
    log[access.allowed === null ? 'info' : 'warn'](
      { allow_devices: access.allowed },
      describeDeviceAccess(access),
    );
    if (s.hardwareInitializationDelayS > 0)
      await new Promise((r) => setTimeout(r, s.hardwareInitializationDelayS * 1000));
    let nodeUuid: string | null = null;
    if (s.inspectionCallbackUrl) {
      const inv = await inventory();
      let logs: string | undefined;
      try {
        logs = (await collectSystemLogs({ run, agentLog })).archive.toString('base64');
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'could not collect logs for inspection');
      }
      nodeUuid = await callInspector({
        url: s.inspectionCallbackUrl,
        inventory: inv,
        bootif: s.bootif,
        logs,
        http,
        log,
        insecure: s.insecure,
      });
    }
    if (!s.apiUrl) {
      log.warn({}, 'no ipa-api-url: serving the agent API without lookup or heartbeats (standalone)');
      if (tokens.token) log.info({}, 'standalone: commands need the agent token given at start');
      else
        log.error(
          {},
          'standalone without an agent token: every command will be refused (401); set KILN_AGENT_TOKEN or --agent-token-file (at least 32 characters) and restart',
        );
      await serve();
      return;
    }
    api = new IronicApiClient({
      apiUrl: s.apiUrl,
      http,
      log,
      insecure: s.insecure,
      globalRequestId: s.globalRequestId,
      fixedVersion: s.ironicApiVersion,
    });
    const macs = s.macs.length ? s.macs : (await physicalNics()).map((n) => n.mac);
    if (macs.length === 0)
      log.warn({}, 'no MAC addresses to look up with (no physical NIC found; use --mac)');
    const found = await lookupNode({
      api,
      macs,
      nodeUuid,
      timeoutS: s.lookupTimeoutS,
      intervalS: s.lookupIntervalS,
      log,
    });
    state.nodeUuid = found.node.uuid;
    if (found.token) tokens.token = found.token;
    if (found.config.agent_token_required) tokens.required = true;
    const host =
      s.advertiseHost ??
      (await detectAdvertiseHost({
        apiUrl: s.apiUrl,
        run,
        attempts: s.ipLookupAttempts,
        delayS: s.ipLookupTimeoutS,
        log,
      }));
    if (!tokens.token)
      log.error(
        { node: found.node.uuid },
        'no agent token known for this boot: every command will be refused (401); reboot the node into the ramdisk so the conductor hands out a fresh token',
      );
    const tls = autoTls({
      enabled: s.autoTls,
      apiVersion: (await api.apiInfo()).version,
      advertiseHost: host,
      log,
    });
    await serve(tls);
    state.callbackUrl = callbackUrl(
      tls ? 'https' : s.advertiseProtocol,
      host,
      s.advertisePort || state.port!,
    );
    heartbeater = new Heartbeater({
      api,
      nodeUuid: found.node.uuid,
      callbackUrl: state.callbackUrl,
      token: () => tokens.token,
      verifyCa: tls?.certPem ?? null,
      heartbeatTimeoutS: found.config.heartbeat_timeout,
      log,
      progress: (): KilnProgress | null => executor.current()?.progress ?? null,
      progressNegotiated: withProgress,
      progressIntervalMs: 2000,
    });
    heartbeater.start();
    log.info({ node: found.node.uuid, callback_url: state.callbackUrl }, 'heartbeating');
  };

  main().catch(async (err) => {
    if (err instanceof LookupTimeoutError) log.error({ err: err.message }, 'lookup timed out; exiting');
    else log.error({ err: (err as Error).message ?? String(err) }, 'agent failed');
    await stop(1);
  });

  return { done, stop, state, steps: tables };
}
