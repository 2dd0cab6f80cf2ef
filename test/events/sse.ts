// A small Server-Sent Events reader for tests: opens the stream with undici, parses messages as
// they arrive (id, event, data as JSON; comments kept apart) and waits for the ones a test needs.
import { request } from 'undici';

export interface SseMessage {
  id: string | null;
  event: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever the stream sent
  data: any;
}

export interface SseStream {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  messages: SseMessage[];
  comments: string[];
  /** The body text when the answer was not a stream (an error). */
  text: string;
  /** Resolves when the server ended the stream. */
  ended: Promise<void>;
  /** Wait until `pred` holds for the messages so far (a failure names what arrived). */
  until(pred: (ms: SseMessage[]) => boolean, what: string, timeoutMs?: number): Promise<SseMessage[]>;
  close(): void;
}

function parseBlock(block: string): { msg: SseMessage | null; comments: string[] } {
  const comments: string[] = [];
  let id: string | null = null;
  let event = 'message';
  const data: string[] = [];
  let fields = 0;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      comments.push(line.slice(1).trim());
      continue;
    }
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else continue;
    fields++;
  }
  if (fields === 0 || data.length === 0) return { msg: null, comments };
  return { msg: { id, event, data: JSON.parse(data.join('\n')) }, comments };
}

/**
 * Open `url`. With `paused`, nothing is read until resume() is called on the returned body (a
 * client that stopped reading); here that is `until`'s first call.
 */
export async function openSse(
  url: string,
  opts: { token?: string | null; lastEventId?: string; paused?: boolean } = {},
): Promise<SseStream & { resume(): void }> {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.lastEventId !== undefined) headers['last-event-id'] = opts.lastEventId;
  const ac = new AbortController();
  const res = await request(url, { headers, signal: ac.signal });
  const s: SseStream & { resume(): void } = {
    status: res.statusCode,
    headers: res.headers,
    messages: [],
    comments: [],
    text: '',
    ended: Promise.resolve(),
    async until(pred, what, timeoutMs = 10_000) {
      s.resume();
      const deadline = Date.now() + timeoutMs;
      while (!pred(s.messages)) {
        if (Date.now() > deadline)
          throw new Error(
            `timed out waiting for ${what}; got ${JSON.stringify(s.messages.map((m) => [m.id, m.event]))}`,
          );
        await new Promise((r) => setTimeout(r, 20));
      }
      return s.messages;
    },
    close: () => ac.abort(),
    resume: () => undefined,
  };
  if (!String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    s.text = await res.body.text();
    return s;
  }
  let buf = '';
  s.ended = new Promise<void>((resolve) => {
    res.body.on('end', resolve);
    res.body.on('error', () => resolve());
    res.body.on('close', resolve);
  });
  const onData = (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
      const { msg, comments } = parseBlock(buf.slice(0, i));
      buf = buf.slice(i + 2);
      s.comments.push(...comments);
      if (msg) s.messages.push(msg);
    }
  };
  if (opts.paused) {
    res.body.pause();
    s.resume = () => {
      if (res.body.listenerCount('data') === 0) res.body.on('data', onData);
      res.body.resume();
    };
  } else res.body.on('data', onData);
  return s;
}
