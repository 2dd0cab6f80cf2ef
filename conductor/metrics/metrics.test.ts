// The Metrics object on its own: node gauges counted from a real store at scrape time, the boot
// services' tallies read at scrape time, its own registry (two conductors in one process don't
// clash, the global default registry stays empty), and a failing store that can't fail a scrape.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { register as globalRegistry } from 'prom-client';
import { silentLogger } from '../../shared/log.ts';
import type { ProvisionState } from '../../shared/states.ts';
import { hasMetric, parseScrape, sampleValue, seriesOf } from '../../test/metrics/scrape.ts';
import type { DhcpStats } from '../boot/dhcp/server.ts';
import type { TftpStats } from '../boot/tftp/server.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import type { Store } from '../store/store.ts';
import { Metrics } from './metrics.ts';

async function seed(store: Store, nodes: [ProvisionState, string | null, boolean?][]): Promise<void> {
  for (const [provision_state, power_state, maintenance] of nodes) {
    const n = await store.nodes.create({ uuid: randomUUID(), driver: 'fake', provision_state, power_state });
    if (maintenance) await store.nodes.update(n.uuid, { maintenance: true, maintenance_reason: 'test' });
  }
}

describe('Metrics', () => {
  it('counts nodes by provision state, power state and maintenance at each scrape', async () => {
    const store = await openSqliteStore(':memory:');
    // A page of 2 makes the power count page through the nodes.
    const metrics = new Metrics({ store, log: silentLogger(), processMetrics: false, pageSize: 2 });
    await seed(store, [
      ['available', 'power off'],
      ['available', 'power off', true],
      ['active', 'power on'],
      ['enroll', null],
      ['deploy failed', 'power on'],
    ]);
    let s = parseScrape((await metrics.scrape()).body);
    assert.equal(sampleValue(s, 'kiln_nodes', { provision_state: 'available' }), 2);
    assert.equal(sampleValue(s, 'kiln_nodes', { provision_state: 'active' }), 1);
    assert.equal(sampleValue(s, 'kiln_nodes', { provision_state: 'enroll' }), 1);
    assert.equal(sampleValue(s, 'kiln_nodes', { provision_state: 'deploy failed' }), 1);
    assert.equal(
      sampleValue(s, 'kiln_nodes', { provision_state: 'cleaning' }),
      0,
      'every state has a sample',
    );
    assert.equal(sampleValue(s, 'kiln_nodes'), 5);
    assert.equal(sampleValue(s, 'kiln_nodes_power', { power_state: 'power on' }), 2);
    assert.equal(sampleValue(s, 'kiln_nodes_power', { power_state: 'power off' }), 2);
    assert.equal(sampleValue(s, 'kiln_nodes_power', { power_state: 'unknown' }), 1);
    assert.equal(sampleValue(s, 'kiln_nodes_maintenance'), 1);
    assert.equal(sampleValue(s, 'kiln_metrics_store_up'), 1);

    // Counted again, not remembered.
    await seed(store, [['active', 'power on']]);
    s = parseScrape((await metrics.scrape()).body);
    assert.equal(sampleValue(s, 'kiln_nodes', { provision_state: 'active' }), 2);
    assert.equal(sampleValue(s, 'kiln_nodes_power', { power_state: 'power on' }), 3);
    // No series names a node.
    for (const name of ['kiln_nodes', 'kiln_nodes_power'])
      for (const labels of seriesOf(s, name)) assert.deepEqual(Object.keys(labels).length, 1);
    await store.close();
  });

  it('answers a scrape when the store fails: node gauges left out, kiln_metrics_store_up 0', async () => {
    const store = await openSqliteStore(':memory:');
    const log: string[] = [];
    const logger = silentLogger();
    logger.warn = ((_o: unknown, msg: string) => {
      log.push(msg);
    }) as unknown as typeof logger.warn;
    const metrics = new Metrics({ store, log: logger, processMetrics: false });
    await seed(store, [['available', 'power off']]);
    assert.equal(sampleValue(parseScrape((await metrics.scrape()).body), 'kiln_nodes'), 1);
    await store.close(); // every query throws from here on
    const s = parseScrape((await metrics.scrape()).body);
    assert.equal(sampleValue(s, 'kiln_metrics_store_up'), 0);
    assert.deepEqual(seriesOf(s, 'kiln_nodes'), [], 'no stale counts from the last good scrape');
    assert.deepEqual(seriesOf(s, 'kiln_nodes_power'), []);
    assert.ok(hasMetric(s, 'kiln_provision_duration_seconds'), 'the rest of the scrape is there');
    assert.ok(log.some((m) => m.includes('counting nodes in the store failed')));
  });

  it('reads the boot services counters at scrape time', async () => {
    const store = await openSqliteStore(':memory:');
    const metrics = new Metrics({ store, log: silentLogger(), processMetrics: false });
    let s = parseScrape((await metrics.scrape()).body);
    assert.deepEqual(seriesOf(s, 'kiln_dhcp_packets_total'), [], 'no boot services: no DHCP series');
    const dhcp: DhcpStats = { received: 7, replied: 3, malformed: 2, failed: 0, limited: 1, byType: {} };
    dhcp.byType.discover = 3;
    dhcp.byType.request = 2;
    const tftp: TftpStats = { requests: 4, completed: 2, refused: 1, failed: 0, active: 1 };
    metrics.watchBoot(() => ({ dhcp, tftp }));
    s = parseScrape((await metrics.scrape()).body);
    assert.equal(s.families.get('kiln_dhcp_packets_total')?.type, 'COUNTER');
    assert.equal(sampleValue(s, 'kiln_dhcp_packets_total', { kind: 'received' }), 7);
    assert.equal(sampleValue(s, 'kiln_dhcp_packets_total', { kind: 'replied' }), 3);
    assert.equal(sampleValue(s, 'kiln_dhcp_requests_total', { kind: 'discover' }), 3);
    assert.equal(sampleValue(s, 'kiln_dhcp_errors_total', { kind: 'malformed' }), 2);
    assert.equal(sampleValue(s, 'kiln_dhcp_errors_total', { kind: 'limited' }), 1);
    assert.equal(sampleValue(s, 'kiln_tftp_requests_total', { kind: 'completed' }), 2);
    assert.equal(sampleValue(s, 'kiln_tftp_requests_total', { kind: 'refused' }), 1);
    assert.equal(sampleValue(s, 'kiln_tftp_active_transfers'), 1);
    // The services' own objects are read live.
    dhcp.received = 9;
    tftp.active = 0;
    s = parseScrape((await metrics.scrape()).body);
    assert.equal(sampleValue(s, 'kiln_dhcp_packets_total', { kind: 'received' }), 9);
    assert.equal(sampleValue(s, 'kiln_tftp_active_transfers'), 0);
    await store.close();
  });

  it('keeps its own registry: two in one process, the global default untouched', async () => {
    const store = await openSqliteStore(':memory:');
    const a = new Metrics({ store, log: silentLogger() });
    const b = new Metrics({ store, log: silentLogger() });
    a.reserveLocked.inc();
    const sa = parseScrape((await a.scrape()).body);
    const sb = parseScrape((await b.scrape()).body);
    assert.equal(sampleValue(sa, 'kiln_node_reserve_locked_total'), 1);
    assert.equal(sampleValue(sb, 'kiln_node_reserve_locked_total'), 0);
    assert.ok(hasMetric(sa, 'process_cpu_seconds_total'), 'process metrics are on by default');
    assert.ok(hasMetric(sa, 'nodejs_eventloop_lag_seconds'));
    assert.equal((await globalRegistry.metrics()).includes('kiln_'), false);
    assert.equal((await a.scrape()).contentType.startsWith('text/plain; version=0.0.4'), true);
    await store.close();
  });
});
