// The conductor's event stream (GET /v1/events/stream, server-sent events) as the CLI reads it:
// a parser for the text/event-stream format, and a follower that reconnects with Last-Event-ID
// when the connection drops, so `watch` and `--wait` miss no persisted event, and that reports an
// older conductor without the route (404) so the caller can poll instead.
import { type ApiClient, CliError, EXIT } from './client.ts';

export interface SseMessage {
  /** The stream's last event id when this message was dispatched (an `id:` line sets it). */
  id?: string;
  event: string;
  data: string;
}

/**
 * An incremental text/event-stream parser: feed it chunks as they arrive, get whole messages.
 * Lines end in LF, CR LF or CR; a blank line dispatches; `:` lines are comments (keepalives).
 */
export class SseParser {
  private buf = '';
  private event = '';
  private data: string[] = [];
  lastEventId?: string;
  /** The server's `retry:` in milliseconds, if it sent one. */
  retryMs?: number;

  push(chunk: string): SseMessage[] {
    this.buf += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      // A CR at the very end may be the first half of CR LF: wait for the next chunk.
      if (!m || (m[0] === '\r' && m.index === this.buf.length - 1)) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') {
      const msg =
        this.data.length > 0
          ? { id: this.lastEventId, event: this.event || 'message', data: this.data.join('\n') }
          : undefined;
      this.event = '';
      this.data = [];
      return msg;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
    return undefined;
  }
}

/** One message of Kiln's stream: its type (node.state, node.progress, …) and its JSON data. */
export interface NodeStreamEvent {
  id?: string;
  type: string;
  data: Record<string, unknown>;
}

export interface FollowOptions {
  /** Only this node's events (UUID or name). */
  node?: string;
  /** Resume after this event id: the conductor replays the persisted events after it. */
  lastEventId?: string;
  /** Aborting it ends the follow; followEvents then resolves 'stopped'. */
  signal: AbortSignal;
  onEvent(e: NodeStreamEvent): void | Promise<void>;
  /** Called each time the stream is (re)established, before its first message. */
  onConnect?(reconnected: boolean): void | Promise<void>;
  /** A line for the operator (connection dropped, reconnected). */
  note?(message: string): void;
  /** Silence after which the connection counts as dead: the conductor sends a keepalive every 15 s. */
  idleMs?: number;
  /** How long to keep reconnecting to an unreachable API before giving up (exit 5). */
  giveUpMs?: number;
}

const MAX_RETRY_MS = 5000;

/**
 * Follow the stream until `signal` aborts ('stopped') or the API has no stream route
 * ('unsupported': a conductor older than the stream). Drops are retried from the last id seen;
 * a refusal (401, 403, 400) throws the API's error.
 */
export async function followEvents(client: ApiClient, o: FollowOptions): Promise<'stopped' | 'unsupported'> {
  const path = `/v1/events/stream${o.node ? `?node=${encodeURIComponent(o.node)}` : ''}`;
  const idleMs = o.idleMs ?? 45_000;
  const giveUpMs = o.giveUpMs ?? 120_000;
  let lastId = o.lastEventId;
  let connections = 0;
  let lastUp = Date.now();
  let delay = 500;
  while (!o.signal.aborted) {
    const conn = new AbortController();
    const stop = () => conn.abort();
    o.signal.addEventListener('abort', stop, { once: true });
    let idle: NodeJS.Timeout | undefined;
    const parser = new SseParser();
    let why = 'the conductor closed it';
    let up = false;
    try {
      const res = await client.stream(path, lastId ? { 'last-event-id': lastId } : {}, conn.signal);
      if (res.error) {
        if (res.status === 404) return 'unsupported';
        // A conductor restarting, or a proxy in front of it: worth another try.
        if (res.status < 500) throw res.error;
        why = res.error.message;
      } else {
        connections++;
        up = true;
        delay = 500;
        if (connections > 1) o.note?.(`event stream back${lastId ? ` (resumed after event ${lastId})` : ''}`);
        await o.onConnect?.(connections > 1);
        const arm = () => {
          clearTimeout(idle);
          idle = setTimeout(() => {
            why = `nothing heard for ${Math.round(idleMs / 1000)} s`;
            conn.abort();
          }, idleMs);
        };
        arm();
        for await (const chunk of res.body) {
          arm();
          for (const m of parser.push(chunk.toString('utf8'))) {
            if (m.id !== undefined) lastId = m.id;
            let data: Record<string, unknown>;
            try {
              data = JSON.parse(m.data) as Record<string, unknown>;
            } catch {
              o.note?.(`ignored an event stream message that is not JSON (${m.event})`);
              continue;
            }
            await o.onEvent({ id: m.id, type: m.event, data });
            if (o.signal.aborted) break;
          }
          if (o.signal.aborted) break;
        }
      }
    } catch (e) {
      if (o.signal.aborted) break;
      if (e instanceof CliError && e.exitCode !== EXIT.unreachable) throw e;
      if (!(e instanceof CliError) && (e as Error).name !== 'AbortError' && !isSocketError(e)) throw e;
      if (e instanceof CliError) why = e.message;
    } finally {
      // Reconnecting is given up on only after giveUpMs without a stream, counted from its end.
      if (up) lastUp = Date.now();
      clearTimeout(idle);
      o.signal.removeEventListener('abort', stop);
      conn.abort();
    }
    if (o.signal.aborted) break;
    if (Date.now() - lastUp > giveUpMs)
      throw new CliError(
        `lost the event stream and could not get it back for ${Math.round(giveUpMs / 1000)} s: ${why}`,
        EXIT.unreachable,
      );
    o.note?.(`event stream dropped (${why}); reconnecting${lastId ? ` from event ${lastId}` : ''}`);
    await sleep(parser.retryMs ?? delay, o.signal);
    delay = Math.min(delay * 2, MAX_RETRY_MS);
  }
  return 'stopped';
}

/** A connection that broke mid-body (undici's socket errors), as opposed to a bug. */
function isSocketError(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return /^UND_ERR_|^ECONN|^EPIPE/.test(code) || (e as Error).name === 'SocketError';
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
