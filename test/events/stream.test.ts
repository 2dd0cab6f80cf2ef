// The live event stream against a real conductor: its store observed onto a bus, the stream
// route mounted on an operator API app (createApp, with the real auth middleware) over that
// conductor's store, engine and tokens. A client reads the stream as bytes and parses the SSE.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createApp } from '../../conductor/api/app.ts';
import { createToken } from '../../conductor/auth/tokens.ts';
import { EventBus } from '../../conductor/events/bus.ts';
import { observeStore } from '../../conductor/events/observe.ts';
import type { StreamOptions } from '../../conductor/events/stream.ts';
import { eventsStreamRouter } from '../../conductor/events/stream-route.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import type { Store } from '../../conductor/store/store.ts';
import { startTestConductor, type TestConductor } from '../support/conductor.ts';
import { openSse, type SseMessage } from './sse.ts';

interface Harness {
  c: TestConductor;
  bus: EventBus;
  /** The store under the observer: a write here is one no bus hears of (another conductor's). */
  raw: Store;
  url: string;
  reader: string;
  close(): Promise<void>;
}

async function harness(options: Partial<StreamOptions> = {}): Promise<Harness> {
  const bus = new EventBus();
  const raw = await openSqliteStore(':memory:');
  const c = await startTestConductor({ store: observeStore(raw, bus) });
  const app = createApp({
    store: c.store,
    nodes: c.nodes,
    engine: c.engine,
    log: c.log,
    extraRouters: [eventsStreamRouter({ store: c.store, bus, log: c.log, options })],
  });
  const server: Server = createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  const { token: reader } = await createToken(c.store.tokens, {
    name: 'watcher',
    role: 'reader',
    expiresAt: null,
  });
  return {
    c,
    bus,
    raw,
    url: `http://127.0.0.1:${port}/v1/events/stream`,
    reader,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await c.close();
    },
  };
}

async function act(c: TestConductor, node: string, target: string, image?: string) {
  const r = await c.call('PUT', `/v1/nodes/${node}/states/provision`, { target, image });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  await c.engine.drain();
}

async function image(c: TestConductor) {
  const r = await c.call('POST', '/v1/images', {
    name: 'demo',
    url: 'http://127.0.0.1:1/demo.raw',
    checksum: `sha256:${'ab'.repeat(32)}`,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

const of = (ms: SseMessage[], type: string) => ms.filter((m) => m.event === type);
const stateTo = (to: string) => (ms: SseMessage[]) => of(ms, 'node.state').some((m) => m.data.to === to);

describe('GET /v1/events/stream', () => {
  let h: Harness;
  before(async () => {
    h = await harness({ pollMs: 200 });
    await image(h.c);
  });
  after(() => h.close());

  it('follows a node through manage, provide and deploy: states in order, power, every stored event once', async () => {
    const s = await openSse(h.url, { token: h.reader });
    try {
      assert.equal(s.status, 200, s.text);
      assert.equal(s.headers['content-type'], 'text/event-stream');
      assert.equal(s.headers['cache-control'], 'no-cache');
      assert.equal(s.headers['x-accel-buffering'], 'no');
      const n = (await h.c.call('POST', '/v1/nodes', { name: 'life', bmc_address: 'fake://life' })).body;
      await act(h.c, n.uuid, 'manage');
      await act(h.c, n.uuid, 'provide');
      await act(h.c, n.uuid, 'deploy', 'demo');
      await s.until(stateTo('active'), 'node.state to active');
      assert.equal(
        (await h.c.call('PUT', '/v1/nodes/life/states/power', { target: 'power off' })).status,
        200,
      );
      assert.equal(
        (await h.c.call('PUT', '/v1/nodes/life/states/power', { target: 'power on' })).status,
        200,
      );
      const ms = await s.until(
        (ms) => of(ms, 'node.power').some((m) => m.data.to === 'power on' && m.data.from === 'power off'),
        'node.power off → on',
      );

      // The states, in the order the store recorded them, each once, with the node's name.
      const stored = await h.c.store.events.listSince(0, { node_uuid: n.uuid });
      const moves = stored
        .filter((e) => e.from_state && e.to_state)
        .map((e) => `${e.from_state}→${e.to_state}`);
      const states = of(ms, 'node.state');
      assert.deepEqual(
        states.map((m) => `${m.data.from}→${m.data.to}`),
        moves.filter((m) => !m.includes('power')),
      );
      assert.equal(states[0]!.data.from, 'enroll');
      assert.equal(states.at(-1)!.data.to, 'active');
      for (const m of states) {
        assert.equal(m.data.node, n.uuid);
        assert.equal(m.data.name, 'life');
        assert.match(m.data.at, /^\d{4}-\d\d-\d\dT/);
        assert.ok(typeof m.data.event === 'string' && typeof m.data.actor === 'string');
      }
      const deploying = states.find((m) => m.data.event === 'deploy');
      assert.equal(deploying?.data.target, 'active');

      // node.event: every stored event, with its id as the message id, ascending, none twice.
      const evs = of(ms, 'node.event');
      assert.deepEqual(
        evs.map((m) => m.data.id),
        stored.map((e) => e.id),
      );
      for (const m of evs) assert.equal(Number(m.id), m.data.id);
      const off = of(ms, 'node.power').find((m) => m.data.to === 'power off');
      assert.ok(off, 'a node.power to power off');
      // An unstored message carries the id of the last stored one before it.
      assert.ok(Number(off.id) <= Number(evs.at(-1)!.id));
    } finally {
      s.close();
    }
  });

  it('sends progress from the agent with rate, ETA and step N of M', async () => {
    const n = (await h.c.call('POST', '/v1/nodes', { name: 'prog', bmc_address: 'fake://prog' })).body;
    const s = await openSse(`${h.url}?node=prog`, { token: h.reader });
    try {
      const MiB = 1024 * 1024;
      const progress = (bytes_done: number, extra: Record<string, unknown> = {}) =>
        h.c.store.nodes.update(n.uuid, {
          driver_internal_info: {
            clean_step_list: [{ step: 'a' }, { step: 'b' }, { step: 'c' }],
            clean_step_index: 1,
            agent_progress: { phase: 'erase', bytes_done, bytes_total: 8 * MiB, ...extra },
          },
        });
      await progress(1 * MiB);
      await new Promise((r) => setTimeout(r, 250));
      await progress(3 * MiB, { message: 'erasing /dev/sda' });
      const ms = await s.until((ms) => of(ms, 'node.progress').length >= 2, 'two node.progress');
      const [first, second] = of(ms, 'node.progress');
      assert.deepEqual(
        {
          phase: first!.data.phase,
          done: first!.data.bytes_done,
          step: first!.data.step,
          steps: first!.data.steps,
        },
        { phase: 'erase', done: MiB, step: 2, steps: 3 },
      );
      assert.equal(first!.data.rate_bps, undefined, 'no rate from one snapshot');
      assert.equal(second!.data.message, 'erasing /dev/sda');
      // 2 MiB in ~250 ms: about 8 MiB/s, and 5 MiB left at that rate.
      const rate = second!.data.rate_bps as number;
      assert.ok(rate > 2 * MiB && rate < 9 * MiB, `rate ${rate}`);
      assert.equal(second!.data.eta_s, Math.round((5 * MiB) / rate));
      // Progress is not stored: its id is that of the last stored event (the node's creation).
      const last = await h.c.store.events.lastId();
      assert.equal(first!.id, String(last));
    } finally {
      s.close();
    }
  });

  it('resumes with Last-Event-ID: no stored event is lost or sent twice across a dropped connection', async () => {
    // Opened before the node exists, so the first connection sees it from its creation on.
    const a = await openSse(h.url, { token: h.reader });
    const n = (await h.c.call('POST', '/v1/nodes', { name: 'resume', bmc_address: 'fake://resume' })).body;
    await act(h.c, n.uuid, 'manage');
    const seenA = (await a.until(stateTo('manageable'), 'manageable on the first connection')).filter(
      (m) => m.data.node === n.uuid,
    );
    const lastA = seenA.at(-1)!.id!;
    a.close();
    // While no one listens: provide, and an event another conductor wrote (no bus here hears it).
    await act(h.c, n.uuid, 'provide');
    await h.raw.events.add({
      node_uuid: n.uuid,
      event: 'note',
      actor: 'conductor-2',
      result: 'info',
      message: 'from another conductor',
    });
    const b = await openSse(`${h.url}?node=resume`, { token: h.reader, lastEventId: lastA });
    try {
      await act(h.c, n.uuid, 'deploy', 'demo');
      const seenB = await b.until(stateTo('active'), 'active on the second connection');
      const ids = [...of(seenA, 'node.event'), ...of(seenB, 'node.event')].map((m) => m.data.id);
      const stored = (await h.c.store.events.listSince(0, { node_uuid: n.uuid })).map((e) => e.id);
      assert.deepEqual(ids, stored);
      assert.ok(of(seenB, 'node.event').some((m) => m.data.actor === 'conductor-2'));
    } finally {
      b.close();
    }
  });

  it('follows rows another conductor writes to the shared database', async () => {
    const n = (await h.c.call('POST', '/v1/nodes', { name: 'other', bmc_address: 'fake://other' })).body;
    const s = await openSse(h.url, { token: h.reader });
    try {
      const ev = await h.raw.events.add({
        node_uuid: n.uuid,
        event: 'fail',
        actor: 'conductor-2',
        result: 'error',
        message: 'deploy timed out on conductor-2',
      });
      const ms = await s.until((ms) => of(ms, 'node.error').length > 0, 'node.error from the table');
      assert.deepEqual(
        of(ms, 'node.event').map((m) => m.data.id),
        [ev.id],
      );
      const err = of(ms, 'node.error')[0]!;
      assert.equal(err.data.last_error, 'deploy timed out on conductor-2');
      assert.equal(err.data.name, 'other');
      assert.equal(err.id, String(ev.id));
    } finally {
      s.close();
    }
  });

  it('filters by ?node= (name or uuid) and refuses an unknown node', async () => {
    const a = (await h.c.call('POST', '/v1/nodes', { name: 'fa', bmc_address: 'fake://fa' })).body;
    const b = (await h.c.call('POST', '/v1/nodes', { name: 'fb', bmc_address: 'fake://fb' })).body;
    const byName = await openSse(`${h.url}?node=fa`, { token: h.reader });
    const byUuid = await openSse(`${h.url}?node=${a.uuid}`, { token: h.reader });
    try {
      await act(h.c, b.uuid, 'manage');
      await act(h.c, a.uuid, 'manage');
      await h.c.call('PUT', '/v1/nodes/fb/states/power', { target: 'power on' });
      await h.c.call('PUT', '/v1/nodes/fa/states/power', { target: 'power on' });
      for (const s of [byName, byUuid]) {
        const ms = await s.until(
          (ms) => stateTo('manageable')(ms) && of(ms, 'node.power').length > 0,
          'fa manageable and powered',
        );
        assert.deepEqual([...new Set(ms.map((m) => m.data.node))], [a.uuid]);
      }
      const ghost = await openSse(`${h.url}?node=ghost`, { token: h.reader });
      assert.equal(ghost.status, 404);
      assert.equal(JSON.parse(ghost.text).error.code, 'NOT_FOUND');
      assert.match(JSON.parse(ghost.text).error.message, /node ghost not found/);
    } finally {
      byName.close();
      byUuid.close();
    }
  });

  it('needs a token: none or a wrong one is 401 before anything is streamed; a bad Last-Event-ID is 400', async () => {
    // The earlier tests' clients have all gone: each unsubscribed once its connection closed.
    const deadline = Date.now() + 5000;
    while (h.bus.listenerCount > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const listeners = h.bus.listenerCount;
    assert.equal(listeners, 1, 'only the route itself listens');
    for (const token of [null, 'kiln_not-a-token']) {
      const s = await openSse(h.url, { token });
      assert.equal(s.status, 401);
      assert.equal(JSON.parse(s.text).error.code, 'UNAUTHENTICATED');
      assert.equal(s.messages.length, 0);
    }
    const bad = await openSse(h.url, { token: h.reader, lastEventId: '12; DROP TABLE events' });
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(bad.text).error.code, 'VALIDATION_FAILED');
    assert.equal(h.bus.listenerCount, listeners, 'no client left subscribed');
  });

  it('ends the stream of a token revoked while it is open, within seconds', async () => {
    const { record, token } = await createToken(h.c.store.tokens, {
      name: 'short-lived',
      role: 'reader',
      expiresAt: null,
    });
    const s = await openSse(h.url, { token });
    assert.equal(s.status, 200);
    let ended = false;
    void s.ended.then(() => {
      ended = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ended, false, 'open while the token is good');
    await h.c.store.tokens.delete(record.id);
    const deadline = Date.now() + 8000;
    while (!ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(ended, 'the stream of a revoked token was closed');
    // And it cannot come back with that token.
    assert.equal((await openSse(h.url, { token })).status, 401);
  });

  it('sends a keepalive comment while nothing happens', async () => {
    const k = await harness({ keepaliveMs: 100 });
    try {
      const s = await openSse(k.url, { token: k.reader });
      const deadline = Date.now() + 5000;
      while (!s.comments.includes('keepalive') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      assert.ok(s.comments.includes('keepalive'), JSON.stringify(s.comments));
      s.close();
    } finally {
      await k.close();
    }
  });
});

describe('GET /v1/events/stream with a client that stops reading', () => {
  it('resets a stalled replay with event: reset, drops the client, and the client resumes from the table', async () => {
    const h = await harness({ stallMs: 500, resetGraceMs: 30_000 });
    try {
      const n = (await h.c.call('POST', '/v1/nodes', { name: 'slow', bmc_address: 'fake://slow' })).body;
      const big = 'x'.repeat(64 * 1024);
      const total = 150; // ~10 MB: more than the sockets' buffers hold on the way
      for (let i = 0; i < total; i++)
        await h.c.store.events.add({
          node_uuid: n.uuid,
          event: 'note',
          actor: 't',
          result: 'info',
          message: `${i} ${big}`,
        });
      const baseline = h.bus.listenerCount;
      const slow = await openSse(`${h.url}?node=slow`, { token: h.reader, lastEventId: '0', paused: true });
      assert.equal(slow.status, 200);
      assert.equal(h.bus.listenerCount, baseline + 1);
      // The conductor gives up on it without the client reading a byte.
      const deadline = Date.now() + 10_000;
      while (h.bus.listenerCount > baseline && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(h.bus.listenerCount, baseline, 'the stalled client was dropped');
      assert.ok(h.c.logs.some((l) => l.includes('event stream client reset')));

      // What it was sent ends with the reset, naming where to resume; it did not get everything.
      await slow.until((ms) => ms.some((m) => m.event === 'reset'), 'event: reset');
      await slow.ended;
      const first = slow.messages;
      const reset = first.at(-1)!;
      assert.equal(reset.event, 'reset');
      assert.match(reset.data.reason, /reconnect with Last-Event-ID/);
      const gotFirst = of(first, 'node.event').map((m) => m.data.id);
      assert.ok(gotFirst.length < total, `got ${gotFirst.length} of ${total} before the reset`);
      assert.equal(reset.data.last_id, gotFirst.at(-1));

      // A client that reads resumes from there and gets the rest, once each.
      const again = await openSse(`${h.url}?node=slow`, {
        token: h.reader,
        lastEventId: String(reset.data.last_id),
      });
      try {
        const stored = (await h.c.store.events.listSince(0, { node_uuid: n.uuid, limit: 1000 })).map(
          (e) => e.id,
        );
        const ms = await again.until(
          (ms) => of(ms, 'node.event').at(-1)?.data.id === stored.at(-1),
          'the rest of the events',
        );
        assert.deepEqual([...gotFirst, ...of(ms, 'node.event').map((m) => m.data.id)], stored);
        assert.ok(!ms.some((m) => m.event === 'reset'));
      } finally {
        again.close();
      }
    } finally {
      await h.close();
    }
  });

  it('resets a client that unstored messages leave more than maxBufferBytes behind', async () => {
    const h = await harness({ maxBufferBytes: 256 * 1024, resetGraceMs: 30_000 });
    try {
      const n = (await h.c.call('POST', '/v1/nodes', { name: 'flood', bmc_address: 'fake://flood' })).body;
      const baseline = h.bus.listenerCount;
      const slow = await openSse(`${h.url}?node=flood`, { token: h.reader, paused: true });
      const big = 'y'.repeat(32 * 1024);
      let i = 0;
      const deadline = Date.now() + 20_000;
      while (h.bus.listenerCount > baseline && Date.now() < deadline) {
        // Progress the agent reports, as fast as the store takes it.
        await h.c.store.nodes.update(n.uuid, {
          driver_internal_info: { agent_progress: { phase: 'write', bytes_done: i++, message: big } },
        });
        if (i % 20 === 0) await new Promise((r) => setImmediate(r));
      }
      assert.equal(h.bus.listenerCount, baseline, `not reset after ${i} progress messages`);
      const ms = await slow.until((ms) => ms.at(-1)?.event === 'reset', 'event: reset last');
      assert.ok(of(ms, 'node.progress').length < i, 'the client did not get them all');
      // Progress carries no id of its own: resuming from the reset's id replays only stored events.
      assert.equal(ms.at(-1)!.id, String(await h.c.store.events.lastId()));
    } finally {
      await h.close();
    }
  });
});
