// observeStore over a real SQLite store: what each write publishes, and that publishing can
// neither fail nor change a write.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../shared/log.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import { type BusMessage, EventBus } from './bus.ts';
import { observeStore } from './observe.ts';
import { ProgressTracker } from './progress.ts';

async function observed(now?: () => number) {
  const lines: string[] = [];
  const dest = new PassThrough();
  dest.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  const log = createLogger({ name: 'observe-test', level: 'debug', destination: dest });
  const raw = await openSqliteStore(':memory:');
  const bus = new EventBus(log);
  const got: BusMessage[] = [];
  bus.subscribe((m) => got.push(m));
  const store = observeStore(raw, bus, { log, ...(now ? { now } : {}) });
  const n = await store.nodes.create({ uuid: randomUUID(), driver: 'fake', name: 'obs' });
  return { raw, bus, store, got, n, lines };
}

const types = (ms: BusMessage[]) => ms.map((m) => m.type);
const settle = () => new Promise((r) => setTimeout(r, 20));

describe('observeStore', () => {
  it('publishes a stored event as node.event, a provision move as node.state, a failure as node.error', async () => {
    const { store, got, n } = await observed();
    const ev = await store.events.add({
      node_uuid: n.uuid,
      event: 'fail',
      actor: 'conductor',
      result: 'error',
      from_state: 'deploying',
      to_state: 'deploy failed',
      message: 'image checksum mismatch',
    });
    assert.deepEqual(types(got), ['node.state', 'node.event', 'node.error']);
    for (const m of got) assert.equal(m.eventId, ev.id);
    assert.equal(got[0]!.data.name, 'obs');
    assert.deepEqual((got[2]!.data as { last_error: string }).last_error, 'image checksum mismatch');
    // A power drift row carries power states in from/to: that is not a provision move.
    got.length = 0;
    await store.events.add({
      node_uuid: n.uuid,
      event: 'power_state_drift',
      actor: 'power-sync',
      result: 'info',
      from_state: 'power on',
      to_state: 'power off',
    });
    assert.deepEqual(types(got), ['node.event']);
    await store.close();
  });

  it('publishes a transition once, with its target, after the write', async () => {
    const { store, got, n } = await observed();
    await store.nodes.reserve(n.uuid, 'c1');
    await store.nodes.transition({
      uuid: n.uuid,
      from: 'enroll',
      to: 'verifying',
      target: 'manageable',
      reservation: 'c1',
      event: { node_uuid: n.uuid, event: 'manage', actor: 'op', result: 'ok' },
    });
    await settle();
    const state = got.filter((m) => m.type === 'node.state');
    assert.equal(state.length, 1);
    assert.deepEqual(
      { from: state[0]!.data.from, to: state[0]!.data.to, target: state[0]!.data.target },
      { from: 'enroll', to: 'verifying', target: 'manageable' },
    );
    await store.close();
  });

  it('publishes power and last_error only when they change, and progress on each new snapshot', async () => {
    const { store, got, n } = await observed();
    await store.nodes.update(n.uuid, { power_state: 'power on' });
    await store.nodes.update(n.uuid, { power_state: 'power on', extra: { a: 1 } });
    await store.nodes.update(n.uuid, { power_state: 'power off' });
    const power = got.filter((m) => m.type === 'node.power').map((m) => [m.data.from, m.data.to]);
    assert.deepEqual(power, [
      [null, 'power on'],
      ['power on', 'power off'],
    ]);
    got.length = 0;
    await store.nodes.update(n.uuid, { last_error: 'BMC unreachable' });
    await store.nodes.update(n.uuid, { last_error: 'BMC unreachable' });
    await store.nodes.update(n.uuid, { last_error: null });
    assert.deepEqual(types(got), ['node.error']);
    got.length = 0;
    const info = (p: unknown) => ({ driver_internal_info: { agent_progress: p } });
    await store.nodes.update(n.uuid, info({ phase: 'write', bytes_done: 1 }));
    await store.nodes.update(n.uuid, info({ phase: 'write', bytes_done: 1 })); // the same heartbeat again
    await store.nodes.update(n.uuid, info({ phase: 'write', bytes_done: 2 }));
    await store.nodes.update(n.uuid, info(null)); // the command finished
    assert.deepEqual(types(got), ['node.progress', 'node.progress']);
    await store.close();
  });

  it('never fails or changes a write when a listener throws, and says so in the log', async () => {
    const { store, raw, bus, n, lines } = await observed();
    bus.subscribe(() => {
      throw new Error('listener exploded');
    });
    const updated = await store.nodes.update(n.uuid, { power_state: 'power on' });
    assert.equal(updated.power_state, 'power on');
    const ev = await store.events.add({ node_uuid: n.uuid, event: 'note', actor: 't', result: 'info' });
    assert.equal((await raw.nodes.get(n.uuid))?.power_state, 'power on');
    assert.deepEqual(await raw.events.listSince(ev.id - 1), [ev]);
    assert.ok(
      lines.some((l) => l.includes('an event bus listener failed') && l.includes('listener exploded')),
    );
    await store.close();
  });

  it('lets a failed write fail as it would and publishes nothing for it', async () => {
    const { store, got } = await observed();
    const ghost = randomUUID();
    got.length = 0;
    await assert.rejects(store.nodes.update(ghost, { power_state: 'power on' }), /not found/);
    await assert.rejects(
      store.events.add({ node_uuid: ghost, event: 'x', actor: 't', result: 'info' }),
      /not found/,
    );
    assert.deepEqual(got, []);
    await store.close();
  });
});

describe('ProgressTracker', () => {
  const ref = { node: 'n1', name: null, at: '2026-01-01T00:00:00Z' };
  it('works out the rate and ETA from successive snapshots when the agent sends none', () => {
    let t = 0;
    const p = new ProgressTracker(() => t);
    const first = p.snapshot(ref, { phase: 'write', bytes_done: 0, bytes_total: 1000 }, {});
    assert.equal(first?.rate_bps, undefined);
    t = 2000;
    const second = p.snapshot(ref, { phase: 'write', bytes_done: 400, bytes_total: 1000 }, {});
    assert.equal(second?.rate_bps, 200);
    assert.equal(second?.eta_s, 3);
    // A new phase starts over: no rate across phases.
    t = 3000;
    assert.equal(p.snapshot(ref, { phase: 'verify', bytes_done: 900 }, {})?.rate_bps, undefined);
  });

  it("prefers the agent's own rate, ETA and step, else the conductor's deploy step index", () => {
    const p = new ProgressTracker(() => 0);
    const own = p.snapshot(ref, { phase: 'w', rate_bps: 7, eta_s: 9, step: 2, steps: 5 }, {});
    assert.deepEqual([own?.rate_bps, own?.eta_s, own?.step, own?.steps], [7, 9, 2, 5]);
    const deploy = p.snapshot(ref, { phase: 'w' }, { deploy_step_list: [{}, {}], deploy_step_index: 1 });
    assert.deepEqual([deploy?.step, deploy?.steps], [2, 2]);
    assert.equal(p.snapshot(ref, 'garbage', {}), null);
  });
});
