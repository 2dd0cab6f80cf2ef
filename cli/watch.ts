// Following a node until it rests, for `kiln node watch` and every `--wait`: over the event
// stream (no polling), resumed from the last event seen when the connection drops; by polling
// once a second against a conductor older than the stream.
import { BUSY_STATES, type ProvisionState, WAIT_STATES } from '../shared/states.ts';
import type { EventView, NodeView } from '../shared/wire/api.ts';
import { type ApiClient, CliError, EXIT } from './client.ts';
import { followEvents } from './events.ts';
import { duration } from './output.ts';
import { type Progress, ProgressView } from './progress.ts';

const enc = encodeURIComponent;

export function atRest(state: string): boolean {
  return !BUSY_STATES.includes(state as ProvisionState) && !WAIT_STATES.includes(state as ProvisionState);
}

/** `--wait`, `--wait 90`, `--wait 90s`, `--wait 5m`, `--wait 1h`: seconds, or undefined for no limit. */
export function parseTimeout(v: string | boolean | undefined, flag = '--wait'): number | undefined {
  if (v === undefined || v === true || v === false) return undefined;
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0)
    throw new CliError(
      `${flag} expects a timeout like 90, 90s, 5m or 1h, got "${v}" (put ${flag} after the node, or write ${flag}=TIMEOUT)`,
      EXIT.usage,
    );
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 's' | 'm' | 'h'];
}

/** What to do about a node that did not come to rest in time, by where it is stuck. */
function stuckAdvice(n: NodeView): string {
  const who = n.name ?? n.uuid;
  if (WAIT_STATES.includes(n.provision_state as ProvisionState))
    return `the conductor is waiting for the node's ramdisk to call back: check the node's console (does it PXE-boot Kiln's ramdisk and reach the provisioning URL?), then wait longer with 'kiln node watch ${who}', or stop waiting with 'kiln node abort ${who}'`;
  return `the conductor is still working on it: 'kiln node watch ${who}' follows it further and 'kiln node events ${who}' shows what it did so far`;
}

export interface WatchOptions {
  /** Show nothing while waiting (--json / -f json: stdout carries only the final node). */
  quiet?: boolean;
  /** Give up (exit 1) after this many seconds. */
  timeoutS?: number;
  /** Where the action was taking the node, as its answer said. */
  target?: string | null;
  /** The newest event id before the action: the stream replays everything after it. */
  sinceEventId?: number;
  pollMs?: number;
  view?: ProgressView;
}

/** The id of the newest event of a node (0 if none), taken before an action so none is missed. */
export async function latestEventId(client: ApiClient, ident: string): Promise<number> {
  const r = await client.call<{ events: EventView[] }>('GET', `/v1/nodes/${enc(ident)}/events?limit=1`);
  return r.events[0]?.id ?? 0;
}

/**
 * Follow a node until it rests (not busy, not waiting). Resolves with the final node and the
 * state it was headed for: `target` if given (the action's answer knows it even when the work is
 * over before the first event), else the first target_provision_state seen.
 */
export async function watchNode(
  client: ApiClient,
  ident: string,
  opts: WatchOptions = {},
): Promise<{ node: NodeView; target: string | null }> {
  const view = opts.view ?? new ProgressView();
  const since = opts.sinceEventId ?? (await latestEventId(client, ident));
  let node = await client.call<NodeView>('GET', `/v1/nodes/${enc(ident)}`);
  let target = opts.target ?? node.target_provision_state;
  let progress = node.progress as Progress | null;
  const who = node.name ?? node.uuid;
  const show = (state: string, tgt: string | null) => {
    if (!opts.quiet) view.show({ name: who, provision_state: state, target_provision_state: tgt, progress });
  };
  show(node.provision_state, node.target_provision_state);
  if (atRest(node.provision_state)) {
    view.end();
    return { node, target };
  }

  const done = new AbortController();
  let timedOut = false;
  const timer =
    opts.timeoutS === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          done.abort();
        }, opts.timeoutS * 1000);
  // The node as the API has it now; a state at rest ends the watch.
  const refresh = async () => {
    node = await client.call<NodeView>('GET', `/v1/nodes/${enc(node.uuid)}`);
    target ??= node.target_provision_state;
    progress = node.progress as Progress | null;
    show(node.provision_state, node.target_provision_state);
    if (atRest(node.provision_state)) done.abort();
  };
  try {
    const how = await followEvents(client, {
      node: node.uuid,
      lastEventId: String(since),
      signal: done.signal,
      note: (m) => {
        if (!opts.quiet) view.note(m);
      },
      // Whatever happened before the stream was up is in the node as it is now.
      onConnect: refresh,
      onEvent: async (e) => {
        const d = e.data;
        if (e.type === 'node.progress') {
          progress = d as Progress;
          show(node.provision_state, node.target_provision_state);
        } else if (e.type === 'node.state' || (e.type === 'node.event' && typeof d.to_state === 'string')) {
          const to = (e.type === 'node.state' ? d.to : d.to_state) as string;
          if (to !== node.provision_state) progress = null;
          node = { ...node, provision_state: to as NodeView['provision_state'] };
          if (e.type === 'node.state' && 'target' in d)
            node.target_provision_state = d.target as NodeView['target_provision_state'];
          target ??= node.target_provision_state;
          show(node.provision_state, node.target_provision_state);
          // At rest: the whole node (last_error, instance_info) for the report.
          if (atRest(to)) await refresh();
        }
      },
    });
    if (how === 'unsupported') {
      if (!opts.quiet)
        view.note(
          `this conductor has no event stream (GET /v1/events/stream answered 404); polling every ${(opts.pollMs ?? 1000) / 1000} s instead`,
        );
      while (!done.signal.aborted) {
        await refresh();
        if (done.signal.aborted) break;
        await new Promise((r) => {
          const t = setTimeout(r, opts.pollMs ?? 1000);
          done.signal.addEventListener(
            'abort',
            () => {
              clearTimeout(t);
              r(undefined);
            },
            { once: true },
          );
        });
      }
    }
  } finally {
    clearTimeout(timer);
    view.end();
  }
  if (timedOut && !atRest(node.provision_state))
    throw new CliError(
      `node ${who} is still in ${node.provision_state}${node.target_provision_state ? ` (headed for ${node.target_provision_state})` : ''} after ${duration(opts.timeoutS!)}: ${stuckAdvice(node)}`,
      EXIT.error,
    );
  return { node, target };
}
