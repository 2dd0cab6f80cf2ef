// The CLI's event-stream reader against a small real SSE server: parsing, reconnecting with
// Last-Event-ID after a drop, refusals, the 404 of an older conductor, and `watch`/`--wait`
// following a node to rest over it (or by polling, with one note, when there is no stream).
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { ApiClient, CliError, EXIT } from './client.ts';
import { followEvents, type NodeStreamEvent, SseParser } from './events.ts';
import { ProgressView } from './progress.ts';
import { watchNode } from './watch.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A Kiln-looking API: GET / says kiln; everything else goes to `handler`. */
async function api(handler: Handler) {
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((req, res) => {
    if (req.url === '/') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"kiln":{}}');
    handler(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    client: new ApiClient(url, { token: 't0ken' }),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function sse(res: ServerResponse) {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  // As the conductor does: something at once, so the client sees the stream is up.
  res.write('retry: 100\n\n');
  return (id: number, event: string, data: unknown) =>
    res.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** Collects what a ProgressView writes, as a pipe would (no TTY). */
function sink() {
  const out = { text: '', write: (s: string) => (out.text += s), isTTY: false };
  return out;
}

describe('SseParser', () => {
  it('joins messages split anywhere, across LF, CR LF and CR line ends, and skips comments', () => {
    const p = new SseParser();
    const text =
      ': keepalive\n\nid: 7\r\nevent: node.state\r\ndata: {"a":\r\ndata: 1}\r\n\r\nretry: 2000\revent: x\rdata: y\r\r: next\n';
    const got = [];
    for (const ch of text) got.push(...p.push(ch));
    assert.deepEqual(got, [
      { id: '7', event: 'node.state', data: '{"a":\n1}' },
      // The id carries on to later messages until another id line, as EventSource does.
      { id: '7', event: 'x', data: 'y' },
    ]);
    assert.equal(p.retryMs, 2000);
  });
});

describe('followEvents', () => {
  const servers: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it('reconnects after a drop with Last-Event-ID = the last id seen, and sends the token', async () => {
    const asked: { lastId?: string; auth?: string; url?: string }[] = [];
    const s = await api((req, res) => {
      asked.push({
        lastId: req.headers['last-event-id'] as string | undefined,
        auth: req.headers.authorization,
        url: req.url,
      });
      const send = sse(res);
      if (asked.length === 1) {
        send(4, 'node.state', { node: 'u1', to: 'cleaning' });
        send(5, 'node.progress', { node: 'u1', phase: 'erase' });
        // The connection drops mid-stream.
        setTimeout(() => res.socket?.destroy(), 50);
      } else send(6, 'node.state', { node: 'u1', to: 'available' });
    });
    servers.push(s);
    const seen: NodeStreamEvent[] = [];
    const notes: string[] = [];
    const stop = new AbortController();
    const how = await followEvents(s.client, {
      node: 'n 1',
      lastEventId: '3',
      signal: stop.signal,
      note: (m) => notes.push(m),
      onEvent: (e) => {
        seen.push(e);
        if (e.data.to === 'available') stop.abort();
      },
    });
    assert.equal(how, 'stopped');
    assert.deepEqual(
      seen.map((e) => [e.id, e.type]),
      [
        ['4', 'node.state'],
        ['5', 'node.progress'],
        ['6', 'node.state'],
      ],
    );
    assert.deepEqual(
      asked.map((a) => a.lastId),
      ['3', '5'],
    );
    assert.ok(asked.every((a) => a.auth === 'Bearer t0ken' && a.url === '/v1/events/stream?node=n%201'));
    assert.ok(
      notes.some((n) => /event stream dropped .*reconnecting from event 5/.test(n)),
      notes.join('\n'),
    );
  });

  it('treats silence longer than the keepalive period as a dead connection and reconnects', async () => {
    let connects = 0;
    const s = await api((_req, res) => {
      connects++;
      const send = sse(res);
      // The opening lines and nothing more: a half-open connection.
      if (connects === 2) send(9, 'node.state', { node: 'u1', to: 'manageable' });
    });
    servers.push(s);
    const stop = new AbortController();
    const notes: string[] = [];
    await followEvents(s.client, {
      signal: stop.signal,
      idleMs: 200,
      note: (m) => notes.push(m),
      onEvent: () => stop.abort(),
    });
    assert.equal(connects, 2);
    assert.match(notes.join('\n'), /nothing heard for 0 s/);
  });

  it("answers 'unsupported' for an older conductor's 404, and throws a refusal with its exit code", async () => {
    const s = await api((req, res) =>
      req.headers.authorization === 'Bearer t0ken'
        ? json(res, 404, { error: { code: 'NOT_FOUND', message: 'no route GET /v1/events/stream' } })
        : json(res, 403, { error: { code: 'FORBIDDEN', message: 'this token may not read events' } }),
    );
    servers.push(s);
    const stop = new AbortController();
    assert.equal(await followEvents(s.client, { signal: stop.signal, onEvent: () => {} }), 'unsupported');
    const other = new ApiClient(s.url, { token: 'other' });
    await assert.rejects(
      followEvents(other, { signal: stop.signal, onEvent: () => {} }),
      (e: unknown) =>
        e instanceof CliError && e.exitCode === EXIT.denied && /may not read events/.test(e.message),
    );
  });
});

describe('watchNode', () => {
  const servers: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  /** One node that moves cleaning → available, told over the stream (or only by GETs). */
  function nodeApi(opts: { stream: boolean; restAfterGets?: number }) {
    const state = { provision_state: 'cleaning', target: 'available' as string | null, gets: 0 };
    const streams: (string | undefined)[] = [];
    const node = () => ({
      uuid: 'u1',
      name: 'n1',
      provision_state: state.provision_state,
      target_provision_state: state.target,
      progress: null,
      last_error: null,
    });
    const handler: Handler = (req, res) => {
      if (req.url === '/v1/nodes/n1/events?limit=1') return json(res, 200, { events: [{ id: 41 }] });
      if (req.url === '/v1/nodes/n1' || req.url === '/v1/nodes/u1') {
        state.gets++;
        if (opts.restAfterGets && state.gets >= opts.restAfterGets) {
          state.provision_state = 'available';
          state.target = null;
        }
        return json(res, 200, node());
      }
      if (req.url?.startsWith('/v1/events/stream')) {
        if (!opts.stream) return json(res, 404, { error: { code: 'NOT_FOUND', message: 'not found' } });
        streams.push(req.headers['last-event-id'] as string | undefined);
        const send = sse(res);
        setTimeout(() => {
          send(41, 'node.progress', { node: 'u1', phase: 'erase_devices', step: 1, steps: 2 });
          state.provision_state = 'available';
          state.target = null;
          send(42, 'node.state', { node: 'u1', from: 'cleaning', to: 'available', target: null });
        }, 30);
        return;
      }
      json(res, 404, { error: { code: 'NOT_FOUND', message: req.url } });
    };
    return { state, streams, handler };
  }

  it('follows the stream from the newest event to rest, with one line per change when piped', async () => {
    const n = nodeApi({ stream: true });
    const s = await api(n.handler);
    servers.push(s);
    const out = sink();
    const r = await watchNode(s.client, 'n1', { view: new ProgressView(out, false) });
    assert.equal(r.node.provision_state, 'available');
    assert.equal(r.target, 'available');
    assert.deepEqual(n.streams, ['41']);
    const lines = out.text.trim().split('\n');
    assert.match(lines[0]!, /n1 {2}cleaning → available$/);
    assert.match(lines[1]!, /n1 {2}cleaning → available {2}erase_devices {2}step 1 of 2$/);
    assert.match(lines.at(-1)!, /n1 {2}available$/);
    // Two GETs of the node (before and as the stream came up) and one at rest: no polling.
    assert.equal(n.state.gets, 3);
  });

  it('polls, with one note on stderr, when the conductor has no stream (404)', async () => {
    const n = nodeApi({ stream: false, restAfterGets: 4 });
    const s = await api(n.handler);
    servers.push(s);
    const out = sink();
    const r = await watchNode(s.client, 'n1', { view: new ProgressView(out, false), pollMs: 20 });
    assert.equal(r.node.provision_state, 'available');
    assert.equal(out.text.match(/note: /g)?.length, 1, out.text);
    assert.match(out.text, /no event stream \(GET \/v1\/events\/stream answered 404\); polling/);
  });

  it('gives up after the timeout naming the node, its state, and what to do', async () => {
    const n = nodeApi({ stream: false });
    n.state.provision_state = 'clean wait';
    const s = await api(n.handler);
    servers.push(s);
    await assert.rejects(
      watchNode(s.client, 'n1', { view: new ProgressView(sink(), false), pollMs: 20, timeoutS: 0.2 }),
      (e: unknown) =>
        e instanceof CliError &&
        e.exitCode === EXIT.error &&
        /^node n1 is still in clean wait \(headed for available\) after 0s: .*ramdisk.*'kiln node abort n1'/.test(
          e.message,
        ),
    );
  });
});
