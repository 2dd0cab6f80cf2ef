// A Store decorator that times what only the store sees whole: how long a deploy, clean or
// inspection took (from the transition into its busy state to the one that ends it, whichever
// code path, engine or call-back, made each move), and how long taking a node lock takes and how
// often it is refused. Everything else passes through untouched.
//
// Start times are kept in memory: an operation in flight when the conductor restarts is not
// timed (recovery fails busy nodes; a node found waiting finishes untimed). That loses a few
// samples per restart and never records a wrong one.
import { isKilnError } from '../../shared/errors.ts';
import { type ProvisionState, ProvisionState as S } from '../../shared/states.ts';
import type { NodeStore, Store } from '../store/store.ts';
import type { Metrics, ProvisionOperation } from './metrics.ts';

interface Operation {
  name: ProvisionOperation;
  /** Entering this state starts the clock. */
  start: ProvisionState;
  /** States the operation passes through while it runs. */
  during: readonly ProvisionState[];
  ok: readonly ProvisionState[];
  failed: readonly ProvisionState[];
}

const OPERATIONS: readonly Operation[] = [
  {
    name: 'deploy',
    start: S.deploying,
    during: [S.deploying, S.waitCallBack],
    ok: [S.active],
    failed: [S.deployFailed],
  },
  {
    name: 'clean',
    start: S.cleaning,
    during: [S.cleaning, S.cleanWait],
    // provide ends in available, a manual clean in manageable.
    ok: [S.available, S.manageable],
    failed: [S.cleanFailed],
  },
  {
    name: 'inspect',
    start: S.inspecting,
    during: [S.inspecting, S.inspectWait],
    ok: [S.manageable],
    failed: [S.inspectFailed],
  },
];

/** Per node, the operation running and when it started; fed every committed transition. */
export class ProvisionTimer {
  private readonly running = new Map<string, { op: Operation; startedAt: number }>();

  constructor(
    private readonly metrics: Metrics,
    private readonly now: () => number = () => performance.now(),
  ) {}

  moved(uuid: string, to: ProvisionState): void {
    const cur = this.running.get(uuid);
    if (cur) {
      const result = cur.op.ok.includes(to) ? 'ok' : cur.op.failed.includes(to) ? 'failed' : null;
      if (result) {
        this.metrics.observeProvision(cur.op.name, result, (this.now() - cur.startedAt) / 1000);
        this.running.delete(uuid);
      } else if (!cur.op.during.includes(to)) {
        // Left the operation some other way (no such move today); drop rather than guess.
        this.running.delete(uuid);
      }
    }
    if (!this.running.has(uuid)) {
      const op = OPERATIONS.find((o) => o.start === to);
      if (op) this.running.set(uuid, { op, startedAt: this.now() });
    }
  }

  forget(uuid: string): void {
    this.running.delete(uuid);
  }

  /** Nodes with an operation being timed (for tests and debugging). */
  get size(): number {
    return this.running.size;
  }
}

function meteredNodes(nodes: NodeStore, metrics: Metrics, timer: ProvisionTimer): NodeStore {
  return {
    ...nodes,
    reserve: async (uuid, holder) => {
      const end = metrics.reserveDuration.startTimer();
      try {
        const node = await nodes.reserve(uuid, holder);
        end({ result: 'ok' });
        return node;
      } catch (e) {
        const locked = isKilnError(e) && e.code === 'NODE_LOCKED';
        end({ result: locked ? 'locked' : 'error' });
        if (locked) metrics.reserveLocked.inc();
        throw e;
      }
    },
    // Only a committed move is timed: a refused transition (INVALID_STATE, NODE_LOCKED) throws first.
    transition: async (req) => {
      const node = await nodes.transition(req);
      timer.moved(req.uuid, req.to);
      return node;
    },
    delete: async (uuid) => {
      await nodes.delete(uuid);
      timer.forget(uuid);
    },
  };
}

/** `store`, with provision durations and node-lock waits recorded in `metrics`. */
export function meteredStore(store: Store, metrics: Metrics, timer = new ProvisionTimer(metrics)): Store {
  return { ...store, nodes: meteredNodes(store.nodes, metrics, timer) };
}
