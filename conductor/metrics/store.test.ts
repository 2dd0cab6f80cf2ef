// meteredStore over a real SQLite store: a deploy, a clean and an inspection timed from the move
// into their busy state to the one that ends them, refused moves not timed, node-lock waits and
// NODE_LOCKED refusals counted; and the timer's bookkeeping with a clock the test moves.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { isKilnError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
import type { ProvisionState } from '../../shared/states.ts';
import { histogramOf, parseScrape, sampleValue, seriesOf } from '../../test/metrics/scrape.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import type { Store } from '../store/store.ts';
import { Metrics } from './metrics.ts';
import { meteredStore, ProvisionTimer } from './store.ts';

const HOLDER = 'c1:test';

async function walk(store: Store, uuid: string, states: ProvisionState[]): Promise<void> {
  for (let i = 1; i < states.length; i++) {
    await store.nodes.transition({
      uuid,
      from: states[i - 1]!,
      to: states[i]!,
      target: null,
      reservation: HOLDER,
      event: { node_uuid: uuid, event: 'test', actor: 'test', result: 'ok' },
    });
  }
}

describe('meteredStore', () => {
  it('times deploy, clean and inspect through the store, by result', async () => {
    const metrics = new Metrics({ store: await openSqliteStore(':memory:'), log: silentLogger() });
    let now = 0;
    const store = meteredStore(
      await openSqliteStore(':memory:'),
      metrics,
      new ProvisionTimer(metrics, () => now),
    );
    const a = await store.nodes.create({ uuid: randomUUID(), driver: 'fake', provision_state: 'available' });
    await store.nodes.reserve(a.uuid, HOLDER);
    await walk(store, a.uuid, ['available', 'deploying']);
    now += 4_000;
    await walk(store, a.uuid, ['deploying', 'wait call-back']);
    now += 6_000;
    await walk(store, a.uuid, ['wait call-back', 'active']);
    // Undeploy: deleting is not timed, the clean after it is.
    await walk(store, a.uuid, ['active', 'deleting', 'cleaning']);
    now += 2_500;
    await walk(store, a.uuid, ['cleaning', 'clean wait', 'clean failed']);

    const b = await store.nodes.create({ uuid: randomUUID(), driver: 'fake', provision_state: 'manageable' });
    await store.nodes.reserve(b.uuid, HOLDER);
    await walk(store, b.uuid, ['manageable', 'inspecting']);
    now += 1_000;
    await walk(store, b.uuid, ['inspecting', 'inspect wait', 'manageable']);

    const s = parseScrape((await metrics.scrape()).body);
    const deploy = histogramOf(s, 'kiln_provision_duration_seconds', { operation: 'deploy', result: 'ok' });
    assert.equal(deploy.count, 1);
    assert.equal(deploy.sum, 10);
    assert.equal(deploy.buckets['5'], 0);
    assert.equal(deploy.buckets['15'], 1);
    const clean = histogramOf(s, 'kiln_provision_duration_seconds', { operation: 'clean', result: 'failed' });
    assert.deepEqual([clean.count, clean.sum], [1, 2.5]);
    const inspect = histogramOf(s, 'kiln_provision_duration_seconds', { operation: 'inspect', result: 'ok' });
    assert.deepEqual([inspect.count, inspect.sum], [1, 1]);
    assert.equal(
      seriesOf(s, 'kiln_provision_duration_seconds').length,
      3,
      'no series for what did not happen',
    );
  });

  it('does not time a refused transition', async () => {
    const metrics = new Metrics({ store: await openSqliteStore(':memory:'), log: silentLogger() });
    const timer = new ProvisionTimer(metrics);
    const store = meteredStore(await openSqliteStore(':memory:'), metrics, timer);
    const n = await store.nodes.create({ uuid: randomUUID(), driver: 'fake', provision_state: 'available' });
    await store.nodes.reserve(n.uuid, HOLDER);
    // The caller saw the wrong state: the store refuses, and nothing starts.
    await assert.rejects(walk(store, n.uuid, ['manageable', 'deploying']), (e) => isKilnError(e));
    assert.equal(timer.size, 0);
    // Someone else's reservation: refused too.
    await store.nodes.release(n.uuid, HOLDER);
    await store.nodes.reserve(n.uuid, 'other');
    await assert.rejects(walk(store, n.uuid, ['available', 'deploying']), (e) => isKilnError(e));
    assert.equal(timer.size, 0);
    assert.equal((await store.nodes.get(n.uuid))?.provision_state, 'available');
    // A deleted node's timing is dropped.
    await store.nodes.release(n.uuid, 'other');
    await store.nodes.reserve(n.uuid, HOLDER);
    await walk(store, n.uuid, ['available', 'deploying']);
    assert.equal(timer.size, 1);
    await store.nodes.release(n.uuid, HOLDER);
    await store.nodes.delete(n.uuid);
    assert.equal(timer.size, 0);
  });

  it('times node locks and counts NODE_LOCKED refusals, passing the error through', async () => {
    const metrics = new Metrics({ store: await openSqliteStore(':memory:'), log: silentLogger() });
    const store = meteredStore(await openSqliteStore(':memory:'), metrics);
    const n = await store.nodes.create({ uuid: randomUUID(), driver: 'fake' });
    await store.nodes.reserve(n.uuid, 'c1:a');
    for (let i = 0; i < 2; i++)
      await assert.rejects(
        store.nodes.reserve(n.uuid, 'c1:b'),
        (e) => isKilnError(e) && e.code === 'NODE_LOCKED' && e.message.includes(n.uuid),
      );
    await assert.rejects(
      store.nodes.reserve(randomUUID(), 'c1:b'),
      (e) => isKilnError(e) && e.code === 'NOT_FOUND',
    );
    const s = parseScrape((await metrics.scrape()).body);
    assert.equal(sampleValue(s, 'kiln_node_reserve_locked_total'), 2);
    assert.equal(histogramOf(s, 'kiln_node_reserve_seconds', { result: 'ok' }).count, 1);
    assert.equal(histogramOf(s, 'kiln_node_reserve_seconds', { result: 'locked' }).count, 2);
    assert.equal(histogramOf(s, 'kiln_node_reserve_seconds', { result: 'error' }).count, 1);
    // Everything else is the store's own.
    assert.equal((await store.nodes.get(n.uuid))?.reservation, 'c1:a');
    assert.equal(store.kind, 'sqlite');
  });
});

describe('ProvisionTimer', () => {
  it('restarts a deploy after a failure and drops an operation left some other way', async () => {
    const metrics = new Metrics({ store: await openSqliteStore(':memory:'), log: silentLogger() });
    let now = 0;
    const t = new ProvisionTimer(metrics, () => now);
    t.moved('n', 'deploying');
    now = 1000;
    t.moved('n', 'deploy failed');
    t.moved('n', 'deploying'); // redeploy after the failure
    now = 4000;
    t.moved('n', 'active');
    t.moved('m', 'cleaning');
    t.moved('m', 'error'); // not a move cleaning can make today: dropped, not guessed
    assert.equal(t.size, 0);
    const s = parseScrape((await metrics.scrape()).body);
    assert.equal(
      histogramOf(s, 'kiln_provision_duration_seconds', { operation: 'deploy', result: 'failed' }).sum,
      1,
    );
    assert.equal(
      histogramOf(s, 'kiln_provision_duration_seconds', { operation: 'deploy', result: 'ok' }).sum,
      3,
    );
    assert.equal(seriesOf(s, 'kiln_provision_duration_seconds').length, 2);
  });
});
