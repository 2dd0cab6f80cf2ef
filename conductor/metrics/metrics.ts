// The conductor's Prometheus metrics: one Metrics object per conductor, holding its own
// prom-client Registry (never the library's global default, so two conductors in one process,
// as the tests run them, never share or clash over a metric). The decorators beside this file
// (store.ts, power.ts, http.ts) feed it; what other parts already count (node states in the
// store, the boot services' packet tallies) is read at scrape time instead of mirrored.
//
// No label names a node, a MAC or an address: the set of series stays bounded however many
// machines there are, and a reader token learns fleet totals, not which machine did what.
import { Counter, collectDefaultMetrics, Gauge, Histogram, type LabelValues, Registry } from 'prom-client';
import type { Logger } from '../../shared/log.ts';
import { PROVISION_STATES } from '../../shared/states.ts';
import type { DhcpStats } from '../boot/dhcp/server.ts';
import type { TftpStats } from '../boot/tftp/server.ts';
import type { Store } from '../store/store.ts';

export type Result = 'ok' | 'failed';
export type ProvisionOperation = 'deploy' | 'clean' | 'inspect';
/** What the provisioning listener serves, by path; anything else is `other`. */
export type RouteKind = 'lookup' | 'heartbeat' | 'continue' | 'boot_script' | 'boot_file' | 'image' | 'other';

/** What the boot services count, read at every scrape (null while they don't run). */
export interface BootCounters {
  dhcp: DhcpStats | null;
  tftp: TftpStats | null;
}

export interface MetricsOptions {
  /** Counted at scrape time for the node gauges; the undecorated store is enough (no secret is read). */
  store: Store;
  log: Logger;
  /** prom-client's process metrics (CPU, memory, event loop lag, handles); default on. */
  processMetrics?: boolean;
  /** Nodes read per page when counting power states. */
  pageSize?: number;
}

// Deploys and cleans take minutes to an hour on real hardware; the fake driver's take milliseconds.
const PROVISION_BUCKETS = [0.1, 1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200];
const BMC_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60];
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];
const RESERVE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

/** The power_state label of a node with none recorded yet. */
export const UNKNOWN_POWER = 'unknown';

export class Metrics {
  readonly registry = new Registry();
  readonly provisionDuration: Histogram<'operation' | 'result'>;
  readonly reserveDuration: Histogram<'result'>;
  readonly reserveLocked: Counter;
  readonly bmcDuration: Histogram<'driver' | 'operation' | 'result'>;
  readonly bmcFailures: Counter<'driver' | 'operation'>;
  readonly httpRequests: Counter<'route' | 'code'>;
  readonly httpDuration: Histogram<'route'>;
  readonly imageServedBytes: Counter<'source'>;
  readonly imageFetchedBytes: Counter<'purpose'>;
  private readonly nodes: Gauge<'provision_state'>;
  private readonly nodesPower: Gauge<'power_state'>;
  private readonly nodesMaintenance: Gauge;
  private readonly storeUp: Gauge;
  private boot: () => BootCounters | null = () => null;

  constructor(private readonly opts: MetricsOptions) {
    const registers = [this.registry];
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });

    this.nodes = new Gauge({
      name: 'kiln_nodes',
      help: 'Nodes by provision state (counted in the store at scrape time).',
      labelNames: ['provision_state'],
      registers,
    });
    this.nodesPower = new Gauge({
      name: 'kiln_nodes_power',
      help: 'Nodes by last known power state ("unknown" before the first power sync or action).',
      labelNames: ['power_state'],
      registers,
    });
    this.nodesMaintenance = new Gauge({
      name: 'kiln_nodes_maintenance',
      help: 'Nodes in maintenance mode.',
      registers,
    });
    this.storeUp = new Gauge({
      name: 'kiln_metrics_store_up',
      help: '1 if this scrape could count nodes in the store, 0 if the store failed (the node gauges are then absent).',
      registers,
    });

    this.provisionDuration = new Histogram({
      name: 'kiln_provision_duration_seconds',
      help: 'Time from entering deploying, cleaning or inspecting to the end of that operation (result ok or failed). Operations in flight across a conductor restart are not timed.',
      labelNames: ['operation', 'result'],
      buckets: PROVISION_BUCKETS,
      registers,
    });
    this.reserveDuration = new Histogram({
      name: 'kiln_node_reserve_seconds',
      help: 'Latency of taking a node lock (result ok, locked when another holder has it, error).',
      labelNames: ['result'],
      buckets: RESERVE_BUCKETS,
      registers,
    });
    this.reserveLocked = new Counter({
      name: 'kiln_node_reserve_locked_total',
      help: 'Node lock requests refused with NODE_LOCKED (someone else held the node).',
      registers,
    });
    this.bmcDuration = new Histogram({
      name: 'kiln_bmc_request_duration_seconds',
      help: 'Latency of power driver calls to BMCs, by driver, operation and result.',
      labelNames: ['driver', 'operation', 'result'],
      buckets: BMC_BUCKETS,
      registers,
    });
    this.bmcFailures = new Counter({
      name: 'kiln_bmc_failures_total',
      help: 'Power driver calls that failed (BMC unreachable, refused, timed out, aborted).',
      labelNames: ['driver', 'operation'],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'kiln_provisioning_requests_total',
      help: 'Requests to the provisioning listener by route kind and HTTP status.',
      labelNames: ['route', 'code'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'kiln_provisioning_request_duration_seconds',
      help: 'Time from a provisioning request arriving to its response being sent in full (for images: the whole transfer).',
      labelNames: ['route'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.imageServedBytes = new Counter({
      name: 'kiln_image_served_bytes_total',
      help: 'Image bytes sent to agents, from the cache file or passed through from the origin while the cache fills.',
      labelNames: ['source'],
      registers,
    });
    this.imageFetchedBytes = new Counter({
      name: 'kiln_image_origin_fetched_bytes_total',
      help: 'Image bytes read from origins: filling the cache, or passed through to an agent.',
      labelNames: ['purpose'],
      registers,
    });

    // The boot services keep their own tallies; these read them at scrape time.
    const self = this;
    const bootCounter = (name: string, help: string, read: (b: BootCounters) => [string, number][]) =>
      new Counter({
        name,
        help,
        labelNames: ['kind'],
        registers,
        collect() {
          const b = self.boot();
          this.reset();
          if (b) for (const [kind, n] of read(b)) this.inc({ kind }, n);
        },
      });
    bootCounter('kiln_dhcp_packets_total', 'DHCP packets received and replies sent.', ({ dhcp }) =>
      dhcp
        ? [
            ['received', dhcp.received],
            ['replied', dhcp.replied],
          ]
        : [],
    );
    bootCounter(
      'kiln_dhcp_requests_total',
      'DHCP requests parsed, by message type (discover, request, inform, …; none: option 53 absent or unknown).',
      ({ dhcp }) => (dhcp ? Object.entries(dhcp.byType) : []),
    );
    bootCounter(
      'kiln_dhcp_errors_total',
      'DHCP packets dropped: malformed, limited (flood limits), failed (handler or send error).',
      ({ dhcp }) =>
        dhcp
          ? [
              ['malformed', dhcp.malformed],
              ['limited', dhcp.limited],
              ['failed', dhcp.failed],
            ]
          : [],
    );
    bootCounter('kiln_tftp_requests_total', 'TFTP read requests by outcome.', ({ tftp }) =>
      tftp
        ? [
            ['requested', tftp.requests],
            ['completed', tftp.completed],
            ['refused', tftp.refused],
            ['failed', tftp.failed],
          ]
        : [],
    );
    new Gauge({
      name: 'kiln_tftp_active_transfers',
      help: 'TFTP transfers in flight.',
      registers,
      collect() {
        const t = self.boot()?.tftp;
        this.set(t ? t.active : 0);
      },
    });
  }

  /** Read the boot services' counters at every scrape from now on (they start after the API). */
  watchBoot(read: () => BootCounters | null): void {
    this.boot = read;
  }

  /** The text exposition format, and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    // Counted before the registry is read (its metrics are collected concurrently), so the node
    // gauges and kiln_metrics_store_up always describe the same attempt.
    await this.countNodes();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  observeProvision(operation: ProvisionOperation, result: Result, seconds: number): void {
    this.provisionDuration.observe({ operation, result }, seconds);
  }

  observeBmc(labels: LabelValues<'driver' | 'operation'>, result: Result, seconds: number): void {
    this.bmcDuration.observe({ ...labels, result }, seconds);
    if (result === 'failed') this.bmcFailures.inc(labels);
  }

  /** A store failure must not fail the scrape: the node gauges go without samples and store_up says so. */
  private async countNodes(): Promise<void> {
    const { store } = this.opts;
    try {
      const [states, power, maintenance] = await Promise.all([
        Promise.all(PROVISION_STATES.map((s) => store.nodes.count({ provision_state: s }))),
        this.countPower(),
        store.nodes.count({ maintenance: true }),
      ]);
      this.nodes.reset();
      for (const [i, s] of PROVISION_STATES.entries()) this.nodes.set({ provision_state: s }, states[i]!);
      this.nodesPower.reset();
      for (const [power_state, n] of power) this.nodesPower.set({ power_state }, n);
      this.nodesMaintenance.set(maintenance);
      this.storeUp.set(1);
    } catch (e) {
      this.nodes.reset();
      this.nodesPower.reset();
      this.nodesMaintenance.reset();
      this.storeUp.set(0);
      this.opts.log.warn({ err: e }, 'metrics: counting nodes in the store failed; node gauges left out');
    }
  }

  // The store has no count by power state; one pass over the nodes, a page at a time, does it.
  private async countPower(): Promise<Map<string, number>> {
    const counts = new Map<string, number>([
      ['power on', 0],
      ['power off', 0],
      [UNKNOWN_POWER, 0],
    ]);
    const limit = this.opts.pageSize ?? 500;
    let marker: string | undefined;
    for (;;) {
      const page = await this.opts.store.nodes.list({ limit, marker });
      for (const n of page) {
        const k = n.power_state ?? UNKNOWN_POWER;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      if (page.length < limit) return counts;
      marker = page[page.length - 1]!.uuid;
    }
  }
}
