// A Store decorator that tells the event bus what just changed, after the write succeeded:
//   - every stored event (node.event; node.state when it moved the provision state; node.error
//     when it records a failure);
//   - a node write that changed power_state (node.power), the agent's progress (node.progress) or
//     set last_error (node.error).
// What a node looked like before a write is remembered from every record that passes through
// (the engine reads a node before it writes it), so telling a change needs no extra read.
// Publishing never fails a write nor waits on anything: errors are logged and dropped.
import type { Logger } from '../../shared/log.ts';
import type {
  EventRecord,
  NodePatch,
  NodeRecord,
  NodeStore,
  Store,
  TransitionRequest,
} from '../store/store.ts';
import { type EventBus, messagesForEvent } from './bus.ts';
import { ProgressTracker } from './progress.ts';

interface Seen {
  name: string | null;
  power_state: string | null;
  last_error: string | null;
  /** JSON of driver_internal_info.agent_progress, to tell a new snapshot from the same one. */
  progress: string;
}

export interface ObserveOptions {
  log?: Logger;
  /** Clock for progress rates (tests). */
  now?: () => number;
}

const progressKey = (n: NodeRecord) => JSON.stringify(n.driver_internal_info?.agent_progress ?? null);

export function observeStore(store: Store, bus: EventBus, opts: ObserveOptions = {}): Store {
  const seen = new Map<string, Seen>();
  const progress = new ProgressTracker(opts.now);
  const safely = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (e) {
      opts.log?.warn({ err: e }, `could not publish ${what} to the event stream`);
    }
  };
  const remember = (n: NodeRecord | undefined): void => {
    if (!n) return;
    seen.set(n.uuid, {
      name: n.name,
      power_state: n.power_state,
      last_error: n.last_error,
      progress: progressKey(n),
    });
  };

  /** Compare a written node with what it was; `patch` says what the writer meant to change. */
  const changed = (after: NodeRecord, patch: NodePatch, errorEventToo: boolean): void => {
    const before = seen.get(after.uuid);
    remember(after);
    const ref = { node: after.uuid, name: after.name, at: after.updated_at };
    const differs = <K extends keyof Seen>(k: K, now: Seen[K], inPatch: boolean) =>
      before ? before[k] !== now : inPatch;
    if (differs('power_state', after.power_state, patch.power_state !== undefined)) {
      bus.publish({
        type: 'node.power',
        eventId: null,
        data: { ...ref, from: before?.power_state ?? null, to: after.power_state },
      });
    }
    // A write that also stores an error event says it there (with an id); once is enough.
    if (
      after.last_error !== null &&
      !errorEventToo &&
      differs('last_error', after.last_error, patch.last_error !== undefined)
    ) {
      bus.publish({ type: 'node.error', eventId: null, data: { ...ref, last_error: after.last_error } });
    }
    const key = progressKey(after);
    if (differs('progress', key, patch.driver_internal_info !== undefined)) {
      const snap = progress.snapshot(
        ref,
        after.driver_internal_info.agent_progress,
        after.driver_internal_info,
      );
      if (snap) bus.publish({ type: 'node.progress', eventId: null, data: snap });
      else progress.forget(after.uuid);
    }
  };

  const publishEvent = (ev: EventRecord, target: string | null) => {
    for (const m of messagesForEvent(ev, { name: seen.get(ev.node_uuid)?.name ?? null, target }))
      bus.publish(m);
  };

  /**
   * A transition's event row is not returned by the write; read it afterwards, without holding
   * the caller up (streams read the events table themselves; this only makes them prompt).
   */
  const publishTransitionEvent = (req: TransitionRequest) => {
    store.events
      .list(req.uuid, { limit: 5 })
      .then((recent) => {
        const ev = recent
          .reverse()
          .find((e) => e.event === req.event.event && e.to_state === (req.event.to_state ?? req.to));
        if (ev) safely('a transition', () => publishEvent(ev, req.target));
      })
      .catch((e) => opts.log?.warn({ err: e, node: req.uuid }, 'could not read back a transition event'));
  };

  const nodes: NodeStore = {
    ...store.nodes,
    async create(n) {
      const r = await store.nodes.create(n);
      safely('a node', () => remember(r));
      return r;
    },
    async get(uuid) {
      const r = await store.nodes.get(uuid);
      safely('a node', () => remember(r));
      return r;
    },
    async getByName(name) {
      const r = await store.nodes.getByName(name);
      safely('a node', () => remember(r));
      return r;
    },
    async list(filter) {
      const r = await store.nodes.list(filter);
      safely('nodes', () => {
        for (const n of r) remember(n);
      });
      return r;
    },
    async reserve(uuid, holder) {
      const r = await store.nodes.reserve(uuid, holder);
      safely('a node', () => remember(r));
      return r;
    },
    async update(uuid, patch) {
      const r = await store.nodes.update(uuid, patch);
      safely('a node update', () => changed(r, patch, false));
      return r;
    },
    async transition(req) {
      const r = await store.nodes.transition(req);
      safely('a transition', () => {
        changed(r, req.patch ?? {}, req.event.result === 'error');
        publishTransitionEvent(req);
      });
      return r;
    },
    async delete(uuid) {
      await store.nodes.delete(uuid);
      seen.delete(uuid);
      progress.forget(uuid);
    },
  };
  // The spread above copies methods that don't use `this`; every backend builds plain objects.
  return {
    ...store,
    kind: store.kind,
    nodes,
    events: {
      ...store.events,
      async add(ev) {
        const r = await store.events.add(ev);
        safely('an event', () => publishEvent(r, null));
        return r;
      },
    },
    close: () => store.close(),
  };
}
