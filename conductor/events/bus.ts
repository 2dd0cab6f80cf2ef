// The in-process event bus: what the observed store saw happen to nodes, as the messages the live
// stream sends (GET /v1/events/stream). It is a notification path, not a log: messages derived
// from stored events also reach streams from the events table (another conductor's writes have
// no bus here), and a listener that is not subscribed when a message passes never sees it.
import type { Logger } from '../../shared/log.ts';
import { PROVISION_STATES } from '../../shared/states.ts';
import type { EventRecord } from '../store/store.ts';

export type StreamEventType = 'node.state' | 'node.power' | 'node.progress' | 'node.event' | 'node.error';

/** What every message's data starts with. */
export interface NodeRef {
  node: string;
  name: string | null;
  at: string;
}

export interface NodeStateData extends NodeRef {
  from: string;
  to: string;
  target: string | null;
  event: string;
  actor: string;
  message: string | null;
}

export interface NodePowerData extends NodeRef {
  from: string | null;
  to: string | null;
}

/** Fields the conductor cannot know are absent, not null. */
export interface NodeProgressData extends NodeRef {
  phase?: string;
  bytes_done?: number;
  bytes_total?: number;
  rate_bps?: number;
  eta_s?: number;
  step?: number;
  steps?: number;
  message?: string;
}

export interface NodeEventData extends NodeRef {
  id: number;
  event: string;
  result: string;
  message: string | null;
  actor: string;
  from_state: string | null;
  to_state: string | null;
}

export interface NodeErrorData extends NodeRef {
  last_error: string;
}

/**
 * One message. `eventId` is the events-table id of the row it was derived from; null for what is
 * never stored (power and last_error changes, progress).
 */
export type BusMessage =
  | { type: 'node.state'; eventId: number; data: NodeStateData }
  | { type: 'node.event'; eventId: number; data: NodeEventData }
  | { type: 'node.error'; eventId: number | null; data: NodeErrorData }
  | { type: 'node.power'; eventId: null; data: NodePowerData }
  | { type: 'node.progress'; eventId: null; data: NodeProgressData };

export type BusListener = (msg: BusMessage) => void;

export class EventBus {
  private readonly listeners = new Set<BusListener>();

  constructor(private readonly log?: Logger) {}

  /** Subscribe; the returned function unsubscribes. Listeners must be quick: they run inside publish. */
  subscribe(listener: BusListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Hand `msg` to every listener; one that throws is logged and the others still get it. */
  publish(msg: BusMessage): void {
    for (const l of [...this.listeners]) {
      try {
        l(msg);
      } catch (e) {
        this.log?.warn({ err: e, type: msg.type, node: msg.data.node }, 'an event bus listener failed');
      }
    }
  }
}

const IS_PROVISION_STATE = new Set<string>(PROVISION_STATES);

/**
 * The messages a stored event stands for: always node.event; node.state when it moved the
 * provision state (power drift rows carry power states in from/to, which are not that);
 * node.error when it records a failure. `target` is what the writer knew, if anyone.
 */
export function messagesForEvent(
  ev: EventRecord,
  node: { name: string | null; target?: string | null },
): BusMessage[] {
  const ref = { node: ev.node_uuid, name: node.name, at: ev.created_at };
  const out: BusMessage[] = [];
  if (
    ev.from_state &&
    ev.to_state &&
    IS_PROVISION_STATE.has(ev.from_state) &&
    IS_PROVISION_STATE.has(ev.to_state)
  ) {
    out.push({
      type: 'node.state',
      eventId: ev.id,
      data: {
        ...ref,
        from: ev.from_state,
        to: ev.to_state,
        target: node.target ?? null,
        event: ev.event,
        actor: ev.actor,
        message: ev.message,
      },
    });
  }
  out.push({
    type: 'node.event',
    eventId: ev.id,
    data: {
      ...ref,
      id: ev.id,
      event: ev.event,
      result: ev.result,
      message: ev.message,
      actor: ev.actor,
      from_state: ev.from_state,
      to_state: ev.to_state,
    },
  });
  if (ev.result === 'error') {
    out.push({
      type: 'node.error',
      eventId: ev.id,
      data: { ...ref, last_error: ev.message ?? `${ev.event} failed` },
    });
  }
  return out;
}
