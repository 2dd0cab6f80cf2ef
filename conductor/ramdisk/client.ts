// The conductor's client for a ramdisk agent, with the rules of Ironic's agent_client so that it
// drives a stock ironic-python-agent as well as Kiln's: POST /v1/commands/?wait=…&agent_token=…,
// GETs without a token, 3 attempts on connection errors, a timed-out POST counted as accepted
// when the agent lists the command as RUNNING, 409 / "agent is busy" kept apart from failures.
import { Agent, type Dispatcher, request } from 'undici';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  CommandList,
  CommandRecord,
  checkWire,
  GetCleanStepsResult,
  GetDeployStepsResult,
  Inventory,
  PartitionUuids,
  type Step,
} from '../../shared/wire/ipa.ts';
import type { AgentCommands } from '../provision/agent-workflow.ts';

/** What the client needs of a node: where its agent is and the token it was given. */
export interface AgentTarget {
  uuid: string;
  name?: string | null;
  driver_internal_info: Record<string, unknown>;
}

export interface AgentClientOptions {
  log: Logger;
  /** Per-request timeout (Ironic's [agent]command_timeout, 60 s): wait=true commands must finish within it. */
  timeoutMs?: number;
  /** Attempts on connection errors (Ironic's max_command_attempts, 3). */
  maxAttempts?: number;
  retryDelayMs?: number;
  /** Poll mode (install_bootloader): interval and attempts (Ironic: 6 s × 100). */
  pollIntervalMs?: number;
  pollAttempts?: number;
  /** Replace the HTTP stack (tests). */
  dispatcher?: Dispatcher;
}

export interface CommandOptions {
  wait?: boolean;
  /** POST with wait=false, then poll the command list until this command is no longer RUNNING. */
  poll?: boolean;
}

const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
]);
const TIMEOUT_ERRORS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
/**
 * The handshake found the agent's certificate is not the pinned one (or no TLS at all). Never
 * retried: the same peer would answer the same way, and the request was not sent.
 */
const TLS_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

function errCode(e: unknown): string {
  const x = e as { code?: string; cause?: { code?: string } };
  return x.code ?? x.cause?.code ?? '';
}

/** True for the error raised when the agent is still running another command. */
export function isAgentBusy(e: unknown): boolean {
  return (
    typeof e === 'object' &&
    e !== null &&
    (e as { code?: string }).code === 'CONFLICT' &&
    (e as { details?: { agent_busy?: boolean } }).details?.agent_busy === true
  );
}

/** The certificate the node's agent sent with its heartbeat, or null if it serves plain HTTP. */
function pinnedCa(node: AgentTarget): string | null {
  const ca = node.driver_internal_info.agent_verify_ca;
  return typeof ca === 'string' && ca !== '' ? ca : null;
}

function label(node: AgentTarget): string {
  return node.name ? `${node.name} (${node.uuid})` : node.uuid;
}

/** Flatten get_*_steps' {"<kind>_steps": {"<Manager>": [...]}} into one list. */
export function flattenSteps(result: unknown, kind: 'clean' | 'deploy'): Step[] {
  const byManager = (result as Record<string, unknown> | null)?.[`${kind}_steps`];
  if (typeof byManager !== 'object' || byManager === null) return [];
  return Object.values(byManager as Record<string, Step[]>).flatMap((l) => (Array.isArray(l) ? l : []));
}

/**
 * Ironic's _get_completed_command: the last command, if it is the execute_<kind>_step for the
 * node's current step and it is no longer RUNNING; undefined means "not done yet".
 */
export function completedCommand(
  commands: readonly CommandRecord[],
  kind: 'clean' | 'deploy',
  current?: Pick<Step, 'step' | 'interface'> | null,
): CommandRecord | undefined {
  const last = commands.at(-1);
  if (!last || last.command_name !== `execute_${kind}_step`) return undefined;
  if (last.command_status === 'RUNNING') return undefined;
  const done = (last.command_result as Record<string, Step | undefined> | null)?.[`${kind}_step`];
  if (
    last.command_status === 'SUCCEEDED' &&
    current &&
    (!done || done.step !== current.step || done.interface !== current.interface)
  ) {
    return undefined;
  }
  return last;
}

export class AgentClient {
  /** One connection pool per node that sent a certificate, trusting that certificate only. */
  private readonly pinned = new Map<string, { ca: string; agent: Agent }>();
  private plain: Agent | null = null;
  private readonly timeoutMs: number;

  constructor(private readonly opts: AgentClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /**
   * The agent's base URL, or a clear error if the node has no live agent, or if its agent sent a
   * certificate but the URL is plain HTTP: that node is never spoken to unencrypted (its token
   * would cross the wire in clear and anyone could answer in the agent's name).
   */
  private base(node: AgentTarget): string {
    const url = node.driver_internal_info.agent_url;
    if (typeof url !== 'string' || url === '') {
      throw new KilnError(
        'AGENT_ERROR',
        `node ${label(node)} has no agent URL: its ramdisk has not heartbeated since it last booted; wait for a heartbeat or reboot it into the ramdisk`,
      );
    }
    const base = url.replace(/\/+$/, '');
    if (pinnedCa(node) !== null && !/^https:/i.test(base)) {
      throw new KilnError(
        'AGENT_ERROR',
        `node ${label(node)}: its agent sent a TLS certificate (agent_verify_ca) but its agent URL ${base} is plain HTTP; refusing to send commands unencrypted. Check what is between the conductor and the node, then reboot the node into the ramdisk so its agent heartbeats afresh`,
        { details: { node: node.uuid, agent_url: base } },
      );
    }
    return base;
  }

  /**
   * HTTPS agents present a self-signed certificate, sent with their heartbeat (agent_verify_ca):
   * their pool trusts that certificate alone (no system CAs), and node's TLS still checks that it
   * names the host or IP of the agent URL. A new certificate (the ramdisk rebooted) gets a new pool.
   */
  private dispatcher(node: AgentTarget): Dispatcher | undefined {
    if (this.opts.dispatcher) return this.opts.dispatcher;
    const ca = pinnedCa(node);
    const pool = (tls: { ca?: string }) =>
      new Agent({
        connect: { timeout: 10_000, ...tls },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        keepAliveTimeout: 4_000,
      });
    if (ca === null) {
      this.plain ??= pool({});
      return this.plain;
    }
    const had = this.pinned.get(node.uuid);
    if (had?.ca === ca) return had.agent;
    if (had) void had.agent.close();
    const agent = pool({ ca });
    this.pinned.set(node.uuid, { ca, agent });
    return agent;
  }

  private async send(
    node: AgentTarget,
    method: 'GET' | 'POST',
    path: string,
    what: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> {
    const url = `${this.base(node)}${path}`;
    const attempts = this.opts.maxAttempts ?? 3;
    let lastErr: unknown;
    for (let i = 1; i <= attempts; i++) {
      try {
        const res = await request(url, {
          method,
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
          dispatcher: this.dispatcher(node),
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        });
        const text = await res.body.text();
        let json: unknown = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch {
          json = { faultstring: text.slice(0, 500) };
        }
        return { status: res.statusCode, json };
      } catch (e) {
        lastErr = e;
        const code = errCode(e);
        if (TLS_ERRORS.has(code)) throw this.tlsFailure(node, what, code, e);
        if (!CONNECTION_ERRORS.has(code) || i === attempts) break;
        this.opts.log.warn({ node: node.uuid, what, attempt: i, code }, 'agent connection failed; retrying');
        await new Promise((r) => setTimeout(r, this.opts.retryDelayMs ?? 1000));
      }
    }
    throw Object.assign(
      new KilnError(
        'AGENT_ERROR',
        `${what} on node ${label(node)}: cannot reach the agent at ${this.base(node)} (${errCode(lastErr) || (lastErr as Error)?.message}); is the ramdisk still running?`,
        { cause: lastErr, details: { node: node.uuid, agent_url: this.base(node) } },
      ),
      { transport: errCode(lastErr) },
    );
  }

  private tlsFailure(node: AgentTarget, what: string, code: string, cause: unknown): KilnError {
    const base = this.base(node);
    const pinned = pinnedCa(node) !== null;
    return new KilnError(
      'AGENT_ERROR',
      pinned
        ? `${what} on node ${label(node)}: the agent at ${base} did not prove it holds the certificate it sent with its heartbeat (${code}); nothing was sent. Something between the conductor and the node may be impersonating it; if the ramdisk restarted, wait for its next heartbeat, else reboot the node into the ramdisk`
        : `${what} on node ${label(node)}: TLS with the agent at ${base} failed (${code}) and the node has no agent_verify_ca to trust; nothing was sent. Reboot the node into the ramdisk so its agent heartbeats its certificate`,
      { cause, details: { node: node.uuid, agent_url: base, tls: code } },
    );
  }

  private fail(node: AgentTarget, what: string, status: number, json: unknown): never {
    const faultstring = String(
      (json as { faultstring?: unknown } | null)?.faultstring ?? JSON.stringify(json),
    );
    const details = { node: node.uuid, agent_url: this.base(node), status, faultstring };
    if (status === 409 || /agent is busy/i.test(faultstring)) {
      throw new KilnError(
        'CONFLICT',
        `${what} on node ${label(node)}: the agent at ${this.base(node)} is busy (${faultstring}); retry after its current command finishes`,
        { details: { ...details, agent_busy: true } },
      );
    }
    throw new KilnError(
      'AGENT_ERROR',
      `${what} on node ${label(node)}: the agent at ${this.base(node)} answered HTTP ${status}: ${faultstring}`,
      { details },
    );
  }

  /** Run one command; returns the agent's result record (check command_status yourself). */
  async command(
    node: AgentTarget,
    name: string,
    params: Record<string, unknown>,
    opts: CommandOptions = {},
  ): Promise<CommandRecord> {
    const wait = Boolean(opts.wait) && !opts.poll;
    const token = node.driver_internal_info.agent_secret_token;
    const q = new URLSearchParams({ wait: String(wait) });
    if (typeof token === 'string' && token) q.set('agent_token', token);
    const what = `agent command ${name}`;
    let res: { status: number; json: unknown };
    try {
      res = await this.send(node, 'POST', `/v1/commands/?${q.toString()}`, what, { name, params });
    } catch (e) {
      // A POST that timed out may still have started the command: Ironic checks the list.
      if (TIMEOUT_ERRORS.has((e as { transport?: string }).transport ?? '')) {
        const last = (await this.listCommands(node)).at(-1);
        if (last && last.command_name === name.split('.').pop() && last.command_status === 'RUNNING') {
          this.opts.log.warn(
            { node: node.uuid, command: name },
            'agent command timed out but is running; continuing',
          );
          return last;
        }
      }
      throw e;
    }
    if (res.status >= 400) this.fail(node, what, res.status, res.json);
    const record = this.checked(node, what, CommandRecord, res.json, 'the command record');
    this.opts.log.debug(
      { node: node.uuid, command: name, status: record.command_status },
      'agent command sent',
    );
    if (opts.poll) return this.waitForCommand(node, name);
    return record;
  }

  async listCommands(node: AgentTarget): Promise<CommandRecord[]> {
    const res = await this.send(node, 'GET', '/v1/commands/', 'listing agent commands');
    if (res.status >= 400) this.fail(node, 'listing agent commands', res.status, res.json);
    return this.checked(node, 'listing agent commands', CommandList, res.json, 'the command list').commands;
  }

  /** The agent's answer checked against its wire schema; a malformed one is an AGENT_ERROR naming the field. */
  private checked<T>(
    node: AgentTarget,
    what: string,
    schema: Parameters<typeof checkWire<T>>[0],
    data: unknown,
    shape: string,
  ): T {
    const r = checkWire(schema, data);
    if (r.ok) return r.data;
    throw new KilnError(
      'AGENT_ERROR',
      `${what} on node ${label(node)}: the agent at ${this.base(node)} answered a malformed ${shape}: ${r.message}`,
      { details: { node: node.uuid, agent_url: this.base(node), issues: r.issues } },
    );
  }

  /** Poll until the last command called `name` is no longer RUNNING (Ironic's _wait_for_command). */
  async waitForCommand(node: AgentTarget, name: string): Promise<CommandRecord> {
    const short = name.split('.').pop()!;
    const attempts = this.opts.pollAttempts ?? 100;
    for (let i = 0; i < attempts; i++) {
      const cmds = await this.listCommands(node);
      const last = [...cmds].reverse().find((c) => c.command_name === short);
      if (last && last.command_status !== 'RUNNING') return last;
      await new Promise((r) => setTimeout(r, this.opts.pollIntervalMs ?? 6000));
    }
    throw new KilnError(
      'AGENT_ERROR',
      `agent command ${name} on node ${label(node)} (${this.base(node)}) did not finish after ${attempts} polls`,
    );
  }

  /** A sync command whose result the caller needs: FAILED becomes AGENT_ERROR. */
  private async syncResult(
    node: AgentTarget,
    name: string,
    params: Record<string, unknown>,
  ): Promise<unknown> {
    const rec = await this.command(node, name, params, { wait: true });
    if (rec.command_status !== 'SUCCEEDED') {
      const err = rec.command_error as { message?: string; details?: string } | null;
      throw new KilnError(
        'AGENT_ERROR',
        `agent command ${name} on node ${label(node)} (${this.base(node)}) ${rec.command_status}: ${err?.details || err?.message || 'no error given'}`,
        { details: { node: node.uuid, agent_url: this.base(node), command_error: rec.command_error } },
      );
    }
    return rec.command_result;
  }

  async getCleanSteps(node: AgentTarget, agentNode: unknown, ports: unknown[]) {
    const what = 'agent command clean.get_clean_steps';
    const raw = await this.syncResult(node, 'clean.get_clean_steps', { node: agentNode, ports });
    const r = this.checked(node, what, GetCleanStepsResult, raw, 'command_result');
    return { steps: flattenSteps(r, 'clean'), hardware_manager_version: r.hardware_manager_version };
  }

  executeCleanStep(
    node: AgentTarget,
    step: Step,
    agentNode: unknown,
    ports: unknown[],
    cleanVersion?: unknown,
  ) {
    return this.command(node, 'clean.execute_clean_step', {
      step,
      node: agentNode,
      ports,
      clean_version: cleanVersion ?? null,
    });
  }

  async getDeploySteps(node: AgentTarget, agentNode: unknown, ports: unknown[]) {
    const what = 'agent command deploy.get_deploy_steps';
    const raw = await this.syncResult(node, 'deploy.get_deploy_steps', { node: agentNode, ports });
    const r = this.checked(node, what, GetDeployStepsResult, raw, 'command_result');
    return { steps: flattenSteps(r, 'deploy'), hardware_manager_version: r.hardware_manager_version };
  }

  executeDeployStep(
    node: AgentTarget,
    step: Step,
    agentNode: unknown,
    ports: unknown[],
    deployVersion?: unknown,
  ) {
    return this.command(node, 'deploy.execute_deploy_step', {
      step,
      node: agentNode,
      ports,
      deploy_version: deployVersion ?? null,
    });
  }

  async getPartitionUuids(node: AgentTarget): Promise<PartitionUuids> {
    const r = (await this.syncResult(node, 'standby.get_partition_uuids', {})) ?? {};
    return this.checked(
      node,
      'agent command standby.get_partition_uuids',
      PartitionUuids,
      r,
      'command_result',
    );
  }

  installBootloader(node: AgentTarget, params: Record<string, unknown>): Promise<CommandRecord> {
    return this.command(node, 'image.install_bootloader', params, { poll: true });
  }

  async powerOff(node: AgentTarget): Promise<void> {
    await this.command(node, 'standby.power_off', {}, { wait: false });
  }

  async sync(node: AgentTarget): Promise<void> {
    await this.syncResult(node, 'standby.sync', {});
  }

  /** base64 tar.gz of the ramdisk's logs. */
  async collectLogs(node: AgentTarget): Promise<string> {
    const r = (await this.syncResult(node, 'log.collect_system_logs', {})) as { system_logs?: string } | null;
    return r?.system_logs ?? '';
  }

  async getHardwareInfo(node: AgentTarget): Promise<Inventory> {
    const r = await this.syncResult(node, 'poll.get_hardware_info', {});
    return this.checked(node, 'agent command poll.get_hardware_info', Inventory, r, 'inventory');
  }

  /** The per-node view the provision workflow uses. */
  forNode(node: AgentTarget): AgentCommands {
    return {
      getCleanSteps: async (agentNode, ports) => (await this.getCleanSteps(node, agentNode, ports)).steps,
      executeCleanStep: (step, agentNode, ports, v) => this.executeCleanStep(node, step, agentNode, ports, v),
      executeDeployStep: (step, agentNode, ports, v) =>
        this.executeDeployStep(node, step, agentNode, ports, v),
      listCommands: () => this.listCommands(node),
      getPartitionUuids: () => this.getPartitionUuids(node),
      installBootloader: (params) => this.installBootloader(node, params),
      getHardwareInfo: () => this.getHardwareInfo(node),
      powerOff: () => this.powerOff(node),
    };
  }

  async close(): Promise<void> {
    const pools = [...this.pinned.values()].map((p) => p.agent);
    if (this.plain) pools.push(this.plain);
    this.pinned.clear();
    this.plain = null;
    await Promise.all(pools.map((a) => a.close()));
  }
}
