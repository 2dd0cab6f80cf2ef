// Live updates. The conductor's event stream (GET /v1/events/stream, Server-Sent Events) tells the
// console when a node changed; the browser's EventSource cannot send headers, so the token goes in
// ?access_token=. Where the stream is missing or fails, the console polls every 2 s instead and
// tries the stream again later. Subscribers get the event, or null for "look again at everything".
import { session } from './api.ts';

export interface LiveEvent {
  type: string;
  node: string | null;
  data: Record<string, unknown>;
}
export type LiveMode = 'stream' | 'polling' | 'off';

const TYPES = ['node.state', 'node.power', 'node.progress', 'node.event', 'node.error'];
const POLL_MS = 2000;
const RETRY_STREAM_MS = 30_000;
/** Even with the stream open, look again now and then: a missed message must not leave a stale page. */
const SAFETY_MS = 30_000;

type Listener = (e: LiveEvent | null) => void;
const listeners = new Set<Listener>();
const modeListeners = new Set<(m: LiveMode) => void>();
let mode: LiveMode = 'off';
let source: EventSource | null = null;
let timers: number[] = [];

export function subscribe(f: Listener): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

export function onMode(f: (m: LiveMode) => void): () => void {
  modeListeners.add(f);
  f(mode);
  return () => modeListeners.delete(f);
}

function setMode(m: LiveMode): void {
  mode = m;
  for (const f of modeListeners) f(m);
}

function emit(e: LiveEvent | null): void {
  for (const f of listeners) f(e);
}

function clearTimers(): void {
  for (const t of timers) clearInterval(t);
  timers = [];
}

function poll(): void {
  clearTimers();
  setMode('polling');
  timers.push(window.setInterval(() => emit(null), POLL_MS));
  timers.push(window.setTimeout(openStream, RETRY_STREAM_MS));
}

function openStream(): void {
  const token = session.get();
  if (!token || typeof EventSource === 'undefined') {
    poll();
    return;
  }
  source?.close();
  const es = new EventSource(`/v1/events/stream?access_token=${encodeURIComponent(token)}`);
  source = es;
  es.onopen = () => {
    clearTimers();
    setMode('stream');
    timers.push(window.setInterval(() => emit(null), SAFETY_MS));
    emit(null); // whatever happened while the stream was down
  };
  es.onerror = () => {
    // EventSource would retry on its own, but a conductor without the stream answers 404 for
    // ever: close it, poll, and try the stream again later.
    es.close();
    if (source === es) source = null;
    poll();
  };
  for (const type of TYPES) {
    es.addEventListener(type, (m) => {
      let data: Record<string, unknown> = {};
      try {
        data = JSON.parse((m as MessageEvent<string>).data);
      } catch {
        // a message we cannot read still says "something changed"
      }
      emit({ type, node: typeof data.node === 'string' ? data.node : null, data });
    });
  }
}

export function startLive(): void {
  stopLive();
  openStream();
}

export function stopLive(): void {
  clearTimers();
  source?.close();
  source = null;
  setMode('off');
}
