// Power-state sync (Ironic's _sync_power_states): every pass reads the power state of each node
// that has a BMC and isn't in maintenance or busy, records changes made outside Kiln (someone at
// the front panel, a crashed OS, a PDU) as drift events, and notes unreachable BMCs on the node.
// A failing BMC never fails the pass, and an error already on the node isn't written again, so a
// dead BMC costs one event rather than one per pass.
import { isKilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { NodeRecord, Store } from '../store/store.ts';
import type { PowerDriverRegistry } from './driver.ts';
import { credsForNode } from './registry.ts';

/** last_error written by the sync starts with this, so a later successful read knows it may clear it. */
export const SYNC_ERROR_PREFIX = 'power sync: ';
const ACTOR = 'power-sync';
const PAGE = 500;

export interface PowerSyncOptions {
  store: Store;
  registry: PowerDriverRegistry;
  log: Logger;
  /** BMCs queried at once. */
  concurrency?: number;
  /** Time between the end of one pass and the start of the next. */
  intervalMs?: number;
  /** Bound on one node's read, retries included. */
  nodeTimeoutMs?: number;
}

export interface PowerSyncResult {
  /** Nodes whose BMC was asked. */
  checked: number;
  /** Nodes whose stored power_state changed. */
  changed: number;
  /** Nodes whose BMC could not be read. */
  errors: number;
  /** Nodes left alone because they were reserved (busy). */
  skipped: number;
  ms: number;
}

export interface PowerSync {
  runOnce(): Promise<PowerSyncResult>;
  start(): void;
  /** Stop the timer, abort BMC calls in flight and wait for the current pass to end. */
  stop(): Promise<void>;
}

export function createPowerSync(opts: PowerSyncOptions): PowerSync {
  const { store, registry, log } = opts;
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  const intervalMs = opts.intervalMs ?? 60_000;
  const nodeTimeoutMs = opts.nodeTimeoutMs ?? 60_000;
  let stopping = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<unknown> | null = null;

  async function candidates(): Promise<NodeRecord[]> {
    const out: NodeRecord[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await store.nodes.list({ maintenance: false, limit: PAGE, marker });
      out.push(...page.filter((n) => n.bmc_address && !n.maintenance));
      if (page.length < PAGE) return out;
      marker = page[page.length - 1]!.uuid;
    }
  }

  async function syncNode(node: NodeRecord, result: PowerSyncResult): Promise<void> {
    let observed: string;
    try {
      const driver = registry.get(node.driver);
      const signal = AbortSignal.any([stopping.signal, AbortSignal.timeout(nodeTimeoutMs)]);
      observed = `power ${await driver.getPower(credsForNode(node), signal)}`;
    } catch (e) {
      if (stopping.signal.aborted) return;
      result.errors++;
      await recordError(node, e);
      return;
    }
    result.checked++;
    // Re-read: the node may have been reserved, put in maintenance or powered by Kiln meanwhile,
    // and then the new state is that action's to record, not ours.
    const fresh = await store.nodes.get(node.uuid);
    if (!fresh || fresh.reservation || fresh.maintenance) return;
    const clearError = fresh.last_error?.startsWith(SYNC_ERROR_PREFIX) ? { last_error: null } : {};
    if (fresh.power_state === observed) {
      if ('last_error' in clearError) await store.nodes.update(node.uuid, clearError);
      return;
    }
    await store.nodes.update(node.uuid, { power_state: observed, ...clearError });
    result.changed++;
    // The first reading of a new node is discovery, not drift.
    if (fresh.power_state === null) return;
    const message = `power state changed outside Kiln: ${fresh.power_state} → ${observed}`;
    log.warn({ node: node.uuid, from: fresh.power_state, to: observed }, 'power state drift');
    await store.events.add({
      node_uuid: node.uuid,
      event: 'power_state_drift',
      actor: ACTOR,
      result: 'info',
      from_state: fresh.power_state,
      to_state: observed,
      message,
    });
  }

  async function recordError(node: NodeRecord, e: unknown): Promise<void> {
    const reason = isKilnError(e) ? e.message : e instanceof Error ? e.message : String(e);
    const message = `${SYNC_ERROR_PREFIX}${reason}`;
    if (node.last_error === message) return;
    log.warn({ node: node.uuid, bmc: node.bmc_address, err: reason }, 'power sync could not read the BMC');
    const fresh = await store.nodes.get(node.uuid);
    if (!fresh || fresh.reservation || fresh.last_error === message) return;
    await store.nodes.update(node.uuid, { last_error: message });
    await store.events.add({
      node_uuid: node.uuid,
      event: 'power_sync_failed',
      actor: ACTOR,
      result: 'error',
      message: reason,
    });
  }

  async function runOnce(): Promise<PowerSyncResult> {
    const started = Date.now();
    const result: PowerSyncResult = { checked: 0, changed: 0, errors: 0, skipped: 0, ms: 0 };
    const all = await candidates();
    const nodes = all.filter((n) => !n.reservation);
    result.skipped = all.length - nodes.length;
    let next = 0;
    const worker = async () => {
      while (next < nodes.length && !stopping.signal.aborted) {
        const node = nodes[next++]!;
        try {
          await syncNode(node, result);
        } catch (e) {
          // A store error on one node must not end the pass for the others.
          log.error({ node: node.uuid, err: e }, 'power sync failed on a node');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, nodes.length) }, worker));
    result.ms = Date.now() - started;
    log.info(result, 'power sync pass done');
    return result;
  }

  function schedule(): void {
    timer = setTimeout(() => {
      timer = null;
      current = runOnce()
        .catch((e) => log.error({ err: e }, 'power sync pass failed'))
        .finally(() => {
          current = null;
          if (!stopping.signal.aborted) schedule();
        });
    }, intervalMs);
    timer.unref();
  }

  return {
    runOnce,
    start() {
      if (timer || current) return;
      stopping = new AbortController();
      schedule();
    },
    async stop() {
      stopping.abort();
      if (timer) clearTimeout(timer);
      timer = null;
      await current;
      // A later runOnce() or start() gets a live signal again.
      stopping = new AbortController();
    },
  };
}
