// GET /v1/events/stream on the operator API: the live event stream (Server-Sent Events) the web
// console, `kiln ... --wait` and watchers follow. The auth middleware has already required a
// reader token (Authorization: Bearer, or ?access_token= for EventSource, which cannot set
// headers). Optional ?node=<uuid|name>; resumable with Last-Event-ID (or ?last_event_id=).

import Router from '@koa/router';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { principalOf } from '../auth/middleware.ts';
import { resolveNode } from '../nodes/service.ts';
import type { Store } from '../store/store.ts';
import type { EventBus } from './bus.ts';
import { STREAM_DEFAULTS, StreamClient, type StreamOptions } from './stream.ts';

export interface EventsStreamDeps {
  store: Store;
  bus: EventBus;
  log: Logger;
  /** Tuning (tests): poll and keepalive intervals, the per-client buffer cap. */
  options?: Partial<StreamOptions>;
}

/** Transition targets the bus told of, by event id: a row does not keep it. Bounded. */
const TARGETS_KEPT = 1000;

function lastEventId(header: string, query: unknown): number | null {
  const raw = header || (typeof query === 'string' ? query : '');
  if (raw === '') return null;
  if (!/^\d{1,15}$/.test(raw.trim()))
    throw new KilnError(
      'VALIDATION_FAILED',
      `Last-Event-ID must be the id of an event this stream sent (a whole number), got '${raw.slice(0, 40)}'`,
    );
  return Number(raw.trim());
}

/** How often an open stream's token is looked up again. */
const TOKEN_RECHECK_MS = 2000;

export function eventsStreamRouter(deps: EventsStreamDeps): Router {
  const options: StreamOptions = { ...STREAM_DEFAULTS, ...deps.options };
  const log = deps.log.child({ component: 'events-stream' });
  const targets = new Map<number, string | null>();
  deps.bus.subscribe((m) => {
    if (m.type !== 'node.state') return;
    targets.set(m.eventId, m.data.target);
    if (targets.size > TARGETS_KEPT) targets.delete(targets.keys().next().value!);
  });

  const r = new Router();
  r.get('/v1/events/stream', async (ctx) => {
    const nodeParam = typeof ctx.query.node === 'string' && ctx.query.node !== '' ? ctx.query.node : null;
    const node = nodeParam ? (await resolveNode(deps.store, nodeParam)).uuid : undefined;
    const resume = lastEventId(ctx.get('last-event-id'), ctx.query.last_event_id);
    const cursor = resume ?? (await deps.store.events.lastId());

    // The stream lives as long as the client stays: no socket timeout, every byte sent at once.
    const socket = ctx.req.socket;
    socket.setTimeout(0);
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    ctx.status = 200;
    ctx.set('content-type', 'text/event-stream');
    ctx.set('cache-control', 'no-cache');
    ctx.set('x-accel-buffering', 'no');
    const client = new StreamClient({
      store: deps.store,
      bus: deps.bus,
      log,
      ...(node ? { node } : {}),
      cursor,
      targetOf: (id) => targets.get(id),
      options,
      abort: () => socket.destroy(),
    });
    // The token was checked once, when the stream opened; a stream outlives that. Check it again
    // every few seconds, so a revoked or expired token stops receiving at once.
    const principal = principalOf(ctx);
    const recheck = principal?.tokenId
      ? setInterval(() => {
          deps.store.tokens
            .find(principal.tokenId!)
            .then((t) => {
              if (!t || (t.expires_at && Date.parse(t.expires_at) <= Date.now())) {
                log.info({ token: principal.name }, 'event stream closed: its token was revoked or expired');
                client.stop();
                socket.destroy();
              }
            })
            .catch((e) => log.warn({ err: e }, 'could not re-check an event stream token'));
        }, TOKEN_RECHECK_MS)
      : null;
    recheck?.unref();
    // koa pipes the body and destroys it when the response closes (client gone): that stops the client.
    ctx.res.once('close', () => {
      if (recheck) clearInterval(recheck);
      client.stop();
    });
    ctx.body = client.body;
  });
  return r;
}
