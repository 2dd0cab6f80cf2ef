// The provisioning engine: turns operator actions and ramdisk call-backs into transitions of the
// state table (shared/states.ts), each under the node's reservation, and runs the work of the new
// state in the background. Like Ironic's conductor, the API call returns once the first
// transition is committed; the rest shows up in provision_state, last_error and the events.
import { randomUUID } from 'node:crypto';
import { isKilnError, KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  allowedActions,
  BUSY_STATES,
  findTransition,
  type ProvisionAction,
  type ProvisionEvent,
  ProvisionState,
  WAIT_STATES,
} from '../../shared/states.ts';
import type { ProvisionRequest } from '../../shared/wire/api.ts';
import { nodeLabel, resolveNode } from '../nodes/service.ts';
import type { BmcPowerAction, PowerDriverRegistry } from '../power/driver.ts';
import { credsForNode } from '../power/registry.ts';
import type { NodePatch, NodeRecord, Store } from '../store/store.ts';
import type { PhaseResult, Task, Workflow } from './workflow.ts';

export interface EngineOptions {
  store: Store;
  power: PowerDriverRegistry;
  log: Logger;
  /** Picks the workflow for a node (fake nodes → fake workflow, real BMCs → agent workflow). */
  workflowFor(node: NodeRecord): Workflow;
  /** Stable conductor name; reservations are "<id>:<random>". */
  conductorId: string;
  automatedClean?: boolean;
  callbackTimeoutS?: number;
}

const S = ProvisionState;

/** The phase of work that a state stands for, and how that phase reports a failure. */
const PHASE_OF: Partial<Record<ProvisionState, 'inspect' | 'clean' | 'deploy'>> = {
  [S.inspecting]: 'inspect',
  [S.inspectWait]: 'inspect',
  [S.cleaning]: 'clean',
  [S.cleanWait]: 'clean',
  [S.deploying]: 'deploy',
  [S.waitCallBack]: 'deploy',
};

/** The name of each phase in messages. */
const PHASE_NAME = { inspect: 'inspection', clean: 'cleaning', deploy: 'deployment' } as const;

/**
 * What to tell the operator to do after a failure, as commands they can paste: each names the
 * node and uses only actions that shared/states.ts allows from the failed state.
 */
function nextStep(state: ProvisionState, node: NodeRecord): string | undefined {
  const n = node.name ?? node.uuid;
  const image = node.instance_info.image_name ?? node.instance_info.image_uuid;
  switch (state) {
    case S.enroll:
      return `fix the BMC address or credentials ('kiln node update ${n} --bmc-address …'), then 'kiln node manage ${n}' again`;
    case S.inspectFailed:
      return `retry with 'kiln node inspect ${n}' or go back with 'kiln node manage ${n}'`;
    case S.cleanFailed:
      return `run 'kiln node manage ${n}' and then 'kiln node provide ${n}' to retry cleaning`;
    case S.deployFailed:
      return `retry with 'kiln node deploy ${n} --image ${image ?? 'IMAGE'}' or release the node with 'kiln node undeploy ${n}'`;
    case S.error:
      return `retry with 'kiln node undeploy ${n}'`;
    default:
      return undefined;
  }
}

/** last_error of an aborted wait: an abort is a failure the operator asked for, so say whose. */
function abortError(node: NodeRecord, to: ProvisionState, actor: string): string {
  const phase = PHASE_OF[node.provision_state];
  const what = phase ? PHASE_NAME[phase] : node.provision_state;
  const next = nextStep(to, node);
  return `${what} aborted by ${actor} on node ${nodeLabel(node)}${next ? `; ${next}` : ''}`;
}

export class ProvisionEngine {
  private readonly running = new Set<Promise<void>>();
  private readonly log: Logger;

  constructor(private readonly opts: EngineOptions) {
    this.log = opts.log.child({ component: 'engine' });
  }

  private newHolder(): string {
    return `${this.opts.conductorId}:${randomUUID().slice(0, 8)}`;
  }

  /** Start an operator action. Resolves once the node has left its current state. */
  async act(ident: string, req: ProvisionRequest, actor: string): Promise<NodeRecord> {
    const node = await resolveNode(this.opts.store, ident);
    const action: ProvisionAction = req.target;
    if (node.maintenance) {
      throw new KilnError(
        'IN_MAINTENANCE',
        `node ${nodeLabel(node)} is in maintenance${node.maintenance_reason ? ` (${node.maintenance_reason})` : ''}; clear it with 'kiln node maintenance ${node.name ?? node.uuid} off' first`,
      );
    }
    const t = findTransition(node.provision_state, action);
    if (!t) {
      const allowed = allowedActions(node.provision_state);
      throw new KilnError(
        'INVALID_STATE',
        `node ${nodeLabel(node)} is ${node.provision_state}: '${action}' is not allowed there; allowed: ${allowed.join(', ') || 'none (wait for the current action to finish)'}`,
        { details: { provision_state: node.provision_state, action, allowed_actions: allowed } },
      );
    }
    const patch: NodePatch = { last_error: action === 'abort' ? abortError(node, t.to, actor) : null };
    if (action === 'deploy' || action === 'rebuild')
      patch.instance_info = await this.instanceInfoFor(node, req);
    if (action === 'clean' && req.clean_steps) {
      patch.driver_internal_info = { ...node.driver_internal_info, clean_steps: req.clean_steps };
    }
    const holder = this.newHolder();
    await this.opts.store.nodes.reserve(node.uuid, holder);
    let moved: NodeRecord;
    try {
      moved = await this.opts.store.nodes.transition({
        uuid: node.uuid,
        from: node.provision_state,
        to: t.to,
        target: t.target ?? null,
        reservation: holder,
        patch,
        event: {
          node_uuid: node.uuid,
          event: action,
          actor,
          result: 'ok',
          from_state: node.provision_state,
          to_state: t.to,
          message: null,
        },
      });
    } catch (e) {
      await this.opts.store.nodes.release(node.uuid, holder);
      throw e;
    }
    this.log.info(
      { node: node.uuid, action, from: node.provision_state, to: t.to, actor },
      'provision state changed',
    );
    if (BUSY_STATES.includes(moved.provision_state)) {
      this.track(this.work(moved, holder, actor));
    } else {
      await this.opts.store.nodes.release(node.uuid, holder);
    }
    return moved;
  }

  private async instanceInfoFor(node: NodeRecord, req: ProvisionRequest): Promise<Record<string, unknown>> {
    const info: Record<string, unknown> = { ...node.instance_info };
    const imageRef = req.image ?? (info.image_uuid as string | undefined);
    if (!imageRef) {
      throw new KilnError(
        'VALIDATION_FAILED',
        `deploying node ${nodeLabel(node)} needs an image: pass --image NAME`,
        {
          details: [{ path: 'image', message: 'required for deploy' }],
        },
      );
    }
    const image =
      (await this.opts.store.images.get(imageRef)) ?? (await this.opts.store.images.getByName(imageRef));
    if (!image) {
      throw new KilnError(
        'NOT_FOUND',
        `image ${imageRef} not found; register it with 'kiln image add' or list them with 'kiln image list'`,
      );
    }
    info.image_uuid = image.uuid;
    info.image_name = image.name;
    if (req.hostname !== undefined) info.hostname = req.hostname;
    if (req.configdrive !== undefined) info.configdrive = req.configdrive;
    return info;
  }

  /** Wait for all background work (tests and graceful shutdown). */
  async drain(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running]);
  }

  private track(p: Promise<void>): void {
    this.running.add(p);
    p.finally(() => this.running.delete(p));
  }

  private makeTask(node: NodeRecord, holder: string, actor: string): Task {
    const store = this.opts.store;
    const task: Task = {
      node,
      holder,
      store,
      actor,
      log: this.log.child({ node: node.uuid }),
      power: () => {
        if (task.node.driver === 'none' || !task.node.bmc_address) {
          throw new KilnError(
            'BMC_UNSUPPORTED',
            `node ${nodeLabel(task.node)} has no BMC; set one with 'kiln node update ${task.node.name ?? task.node.uuid} --bmc-address ipmi://USER@HOST'`,
          );
        }
        return { driver: this.opts.power.get(task.node.driver), creds: credsForNode(task.node) };
      },
      update: async (patch) => {
        task.node = await store.nodes.update(task.node.uuid, patch);
        return task.node;
      },
      note: async (event, message) => {
        await store.events.add({ node_uuid: task.node.uuid, event, actor, result: 'info', message });
      },
    };
    return task;
  }

  /** Move the node under `holder` and log it. */
  private async step(
    task: Task,
    event: ProvisionEvent,
    patch: NodePatch = {},
    message: string | null = null,
  ): Promise<NodeRecord> {
    const from = task.node.provision_state;
    const t = findTransition(from, event);
    if (!t) throw new KilnError('INTERNAL', `no transition from ${from} on ${event}`);
    const keepsTarget = BUSY_STATES.includes(t.to) || WAIT_STATES.includes(t.to);
    task.node = await this.opts.store.nodes.transition({
      uuid: task.node.uuid,
      from,
      to: t.to,
      target: t.target ?? (keepsTarget ? task.node.target_provision_state : null),
      reservation: task.holder,
      patch,
      event: {
        node_uuid: task.node.uuid,
        event,
        actor: task.actor,
        result: event === 'fail' ? 'error' : 'ok',
        from_state: from,
        to_state: t.to,
        message,
      },
    });
    this.log.info({ node: task.node.uuid, event, from, to: t.to }, 'provision state changed');
    return task.node;
  }

  /** Run the work of the state the node is in, following 'done' transitions until it rests. */
  private async work(node: NodeRecord, holder: string, actor: string): Promise<void> {
    const task = this.makeTask(node, holder, actor);
    try {
      for (;;) {
        const state = task.node.provision_state;
        if (state === S.verifying) {
          const { driver, creds } = task.power();
          await driver.validate(creds);
          const power = await driver.getPower(creds);
          await this.step(task, 'done', { power_state: `power ${power}` });
        } else if (state === S.deleting) {
          await this.workflowFor(task).tearDown(task);
          // The instance is gone: like Ironic, forget its image, hostname and config drive so the
          // next deploy starts from nothing (properties, extra and inventory are the node's and stay).
          // Only after a teardown that worked: a failed one keeps them for the retried undeploy.
          // Undeploy always cleans; with automated cleaning off the cleaning phase passes straight through.
          await this.step(task, 'clean', { instance_info: {} });
        } else if (
          state === S.cleaning &&
          this.opts.automatedClean === false &&
          task.node.target_provision_state === S.available
        ) {
          await this.step(task, 'done', {}, 'automated cleaning is disabled in the conductor configuration');
        } else if (PHASE_OF[state] && BUSY_STATES.includes(state)) {
          const phase = PHASE_OF[state]!;
          const result: PhaseResult = await this.workflowFor(task)[phase](task);
          await this.finishPhase(task, result);
        } else {
          break;
        }
        if (
          WAIT_STATES.includes(task.node.provision_state) ||
          !BUSY_STATES.includes(task.node.provision_state)
        )
          break;
      }
    } catch (e) {
      await this.failTask(task, e);
    } finally {
      await this.opts.store.nodes
        .release(task.node.uuid, holder)
        .catch((e) => this.log.error({ err: e, node: task.node.uuid }, 'could not release reservation'));
    }
  }

  private workflowFor(task: Task): Workflow {
    return this.opts.workflowFor(task.node);
  }

  private async finishPhase(task: Task, result: PhaseResult): Promise<void> {
    if (result === 'wait') {
      await this.step(task, 'wait');
      return;
    }
    const cleaning = task.node.provision_state === S.cleaning || task.node.provision_state === S.cleanWait;
    const manual = cleaning && task.node.target_provision_state === S.manageable;
    await this.step(task, manual ? 'done-manual' : 'done');
  }

  private async failTask(task: Task, e: unknown): Promise<void> {
    const reason = isKilnError(e) || e instanceof Error ? e.message : String(e);
    const from = task.node.provision_state;
    const t = findTransition(from, 'fail');
    const next = t ? nextStep(t.to, task.node) : undefined;
    const lastError = `${from} failed on node ${nodeLabel(task.node)}: ${reason}${next ? `. Next: ${next}` : ''}`;
    this.log.warn({ node: task.node.uuid, state: from, err: reason }, 'provision work failed');
    if (!t) {
      await this.opts.store.nodes.update(task.node.uuid, { last_error: lastError }).catch(() => {});
      return;
    }
    try {
      // As Ironic does, a failure forgets the agent: its token is not handed to whatever runs
      // next, and a retry boots a fresh ramdisk instead of trusting a half-finished one.
      const fresh = (await this.opts.store.nodes.get(task.node.uuid)) ?? task.node;
      await this.step(
        task,
        'fail',
        { last_error: lastError, driver_internal_info: withoutAgent(fresh.driver_internal_info) },
        reason,
      );
    } catch (e2) {
      this.log.error({ node: task.node.uuid, err: e2 }, 'could not record failure');
    }
  }

  /**
   * The conductor looks in on a node waiting for its agent (the watchdog's poll): take the lock
   * without waiting (a locked node is simply looked at next time, as in Ironic) and let the
   * workflow see what the agent did. The node stays in its wait state until the work is done or
   * fails, so finding a step still running writes nothing.
   */
  async resume(nodeUuid: string, actor = 'agent'): Promise<boolean> {
    const node = await this.opts.store.nodes.get(nodeUuid);
    if (!node || node.maintenance || !WAIT_STATES.includes(node.provision_state)) return false;
    if (!this.opts.workflowFor(node).resume) return false;
    const holder = this.newHolder();
    try {
      await this.opts.store.nodes.reserve(node.uuid, holder);
    } catch (e) {
      if (isKilnError(e) && e.code === 'NODE_LOCKED') return false;
      throw e;
    }
    const fresh = await this.opts.store.nodes.get(node.uuid).catch(() => undefined);
    const p = this.continueUnderLock(fresh ?? node, holder, actor);
    this.track(p);
    await p;
    return true;
  }

  /**
   * A heartbeat, in one straight line under one reservation: record what the agent reported
   * (the `record` patch, computed from the node as it is under the lock), then, for a node in a
   * wait state, let the workflow continue, still under the same reservation, in the background.
   * A heartbeat that reports a command still making progress (Kiln's negotiated progress
   * extension) needs no question to the agent: the workflow is not consulted until the agent
   * stops reporting progress. Resolves once the heartbeat is recorded.
   */
  async heartbeat(
    nodeUuid: string,
    record: (node: NodeRecord) => Partial<NodeRecord>,
    opts: { commandRunning: boolean; resume: boolean; actor?: string },
  ): Promise<'locked' | 'gone' | 'recorded' | 'continuing'> {
    const holder = this.newHolder();
    try {
      await this.opts.store.nodes.reserve(nodeUuid, holder);
    } catch (e) {
      if (isKilnError(e) && e.code === 'NODE_LOCKED') return 'locked';
      if (isKilnError(e) && e.code === 'NOT_FOUND') return 'gone';
      throw e;
    }
    let node: NodeRecord;
    try {
      const current = await this.opts.store.nodes.get(nodeUuid);
      if (!current) {
        await this.opts.store.nodes.release(nodeUuid, holder).catch(() => {});
        return 'gone';
      }
      node = await this.opts.store.nodes.update(nodeUuid, record(current));
    } catch (e) {
      await this.opts.store.nodes.release(nodeUuid, holder).catch(() => {});
      throw e;
    }
    const waiting =
      opts.resume &&
      !opts.commandRunning &&
      !node.maintenance &&
      WAIT_STATES.includes(node.provision_state) &&
      Boolean(this.opts.workflowFor(node).resume);
    if (!waiting) {
      await this.opts.store.nodes.release(nodeUuid, holder);
      return 'recorded';
    }
    this.track(this.continueUnderLock(node, holder, opts.actor ?? 'agent'));
    return 'continuing';
  }

  /** Let the workflow look at a waiting node whose reservation `holder` holds; releases it. */
  private async continueUnderLock(node: NodeRecord, holder: string, actor: string): Promise<void> {
    const task = this.makeTask(node, holder, actor);
    try {
      if (!WAIT_STATES.includes(node.provision_state)) return;
      const workflow = this.opts.workflowFor(node);
      const result = await workflow.resume!(task, PHASE_OF[node.provision_state]!);
      if (result === 'done') await this.finishPhase(task, 'done');
    } catch (e) {
      await this.failTask(task, e);
    } finally {
      await this.opts.store.nodes.release(node.uuid, holder).catch(() => {});
    }
  }

  /** Operator power action. Synchronous: returns once the BMC did it. */
  async setPower(ident: string, target: string, actor: string): Promise<NodeRecord> {
    const node = await resolveNode(this.opts.store, ident);
    const holder = this.newHolder();
    await this.opts.store.nodes.reserve(node.uuid, holder);
    const task = this.makeTask(node, holder, actor);
    try {
      const { driver, creds } = task.power();
      const action = POWER_ACTION[target];
      if (!action) throw new KilnError('VALIDATION_FAILED', `unknown power target ${target}`);
      if (target === 'soft rebooting') {
        await driver.setPower(creds, 'soft');
        await pollPowerUntil(driver, creds, 'off', 120_000);
        await driver.setPower(creds, 'on');
      } else {
        await driver.setPower(creds, action);
      }
      const now = await driver.getPower(creds);
      const patch: NodePatch = { power_state: `power ${now}` };
      // A node that goes down loses its ramdisk, and with it the agent's token (Ironic does the same).
      if (action !== 'on') patch.driver_internal_info = withoutAgent(task.node.driver_internal_info);
      await task.update(patch);
      await this.opts.store.events.add({
        node_uuid: node.uuid,
        event: 'power',
        actor,
        result: 'ok',
        message: `${target}: now power ${now}`,
      });
      return task.node;
    } catch (e) {
      await this.opts.store.events.add({
        node_uuid: node.uuid,
        event: 'power',
        actor,
        result: 'error',
        message: `${target} failed: ${(e as Error).message}`,
      });
      throw e;
    } finally {
      await this.opts.store.nodes.release(node.uuid, holder);
    }
  }

  /** Read the power state from the BMC and record it (and any drift) on the node. */
  async readPower(ident: string, actor: string): Promise<NodeRecord> {
    const node = await resolveNode(this.opts.store, ident);
    const task = this.makeTask(node, '', actor);
    const { driver, creds } = task.power();
    const now = `power ${await driver.getPower(creds)}`;
    if (now === node.power_state) return node;
    return this.opts.store.nodes.update(node.uuid, { power_state: now });
  }

  /**
   * After a restart: free this conductor's locks and fail the nodes whose work died with the
   * previous process, so none is stuck in a busy state forever.
   */
  async recover(): Promise<number> {
    const freed = await this.opts.store.nodes.releaseAll(`${this.opts.conductorId}:`);
    let failed = 0;
    for (const state of BUSY_STATES) {
      for (const node of await this.opts.store.nodes.list({ provision_state: state, limit: 100_000 })) {
        if (node.reservation) continue;
        const holder = this.newHolder();
        try {
          await this.opts.store.nodes.reserve(node.uuid, holder);
        } catch {
          continue;
        }
        const task = this.makeTask(node, holder, 'conductor');
        await this.failTask(task, new Error(`the conductor restarted while the node was ${state}`));
        await this.opts.store.nodes.release(node.uuid, holder);
        failed++;
      }
    }
    if (freed || failed) this.log.warn({ freed, failed }, 'recovered after restart');
    return failed;
  }

  /**
   * Look at every node waiting on a live agent without waiting for its next heartbeat (which
   * can be minutes away): a finished or failed step moves on at once, and an agent that died or
   * restarted mid-step is noticed within one watchdog period.
   */
  async pollWaiting(): Promise<number> {
    let polled = 0;
    for (const state of WAIT_STATES) {
      for (const node of await this.opts.store.nodes.list({ provision_state: state, limit: 100_000 })) {
        if (node.reservation || node.maintenance || !node.driver_internal_info.agent_url) continue;
        if (await this.resume(node.uuid, 'conductor')) polled++;
      }
    }
    return polled;
  }

  /** Fail nodes whose ramdisk has been silent longer than the call-back timeout. */
  async checkCallbackTimeouts(now = Date.now()): Promise<number> {
    const limitMs = (this.opts.callbackTimeoutS ?? 1800) * 1000;
    let failed = 0;
    for (const state of WAIT_STATES) {
      for (const node of await this.opts.store.nodes.list({ provision_state: state, limit: 100_000 })) {
        if (node.reservation || node.maintenance) continue;
        const hb = Date.parse(String(node.driver_internal_info.agent_last_heartbeat ?? '')) || 0;
        const since = Math.max(Date.parse(node.provision_updated_at ?? node.updated_at) || 0, hb);
        if (now - since < limitMs) continue;
        const holder = this.newHolder();
        try {
          await this.opts.store.nodes.reserve(node.uuid, holder);
        } catch {
          continue;
        }
        const task = this.makeTask(node, holder, 'conductor');
        await this.failTask(
          task,
          new Error(
            `no call-back from the ramdisk for ${Math.round((now - since) / 1000)} s (limit ${limitMs / 1000} s); check the node's console: did it PXE-boot the ramdisk, and can it reach the conductor API?`,
          ),
        );
        await this.opts.store.nodes.release(node.uuid, holder);
        failed++;
      }
    }
    return failed;
  }
}

const POWER_ACTION: Record<string, BmcPowerAction> = {
  'power on': 'on',
  'power off': 'off',
  'soft power off': 'soft',
  rebooting: 'reboot',
  'soft rebooting': 'soft',
};

/** driver_internal_info without the agent's URL and token: the ramdisk that held them is gone. */
export function withoutAgent(info: Record<string, unknown>): Record<string, unknown> {
  const {
    agent_url: _u,
    agent_secret_token: _t,
    agent_secret_token_pregenerated: _g,
    // A stock IPA makes a new self-signed certificate every boot: forget the pinned one too.
    agent_verify_ca: _c,
    agent_progress: _p,
    ...rest
  } = info;
  return rest;
}

// The engine's own wait for 'soft rebooting' (off, then on); the drivers' wait after a power
// request they accepted is power/wait.ts.
async function pollPowerUntil(
  driver: { getPower: (c: never) => Promise<'on' | 'off'> },
  creds: unknown,
  want: 'on' | 'off',
  timeoutMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if ((await driver.getPower(creds as never)) === want) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new KilnError('BMC_ERROR', `node did not reach power ${want} within ${timeoutMs / 1000} s`);
}
