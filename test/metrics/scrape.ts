// Reads a /metrics answer back the way Prometheus would (a real text-format parser, not regexes
// over our own output), and picks samples out of it by name and labels.
//
// parse-prometheus-text-format folds every series of a histogram into one and drops their labels
// (its flattenMetrics), so histograms are read from a second parse in which their TYPE lines say
// untyped: then each _bucket, _sum and _count line is a sample with its own labels, parsed (label
// escapes and all) by the same parser, and the series are put together here.
import assert from 'node:assert/strict';
import parsePrometheusTextFormat, { type MetricFamily, type Sample } from 'parse-prometheus-text-format';

export interface Scrape {
  /** Every family as the parser read it (histograms with their HISTOGRAM type). */
  families: Map<string, MetricFamily>;
  /** Samples by sample name (x_bucket, x_sum, x_count for a histogram x). */
  samples: Map<string, Sample[]>;
}

export function parseScrape(text: string): Scrape {
  const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
  const flat = text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped');
  // Untyped, a histogram's series come out as runs (x_bucket, x_sum, x_count, x_bucket, …), one
  // family per run: gather the runs by name.
  const samples = new Map<string, Sample[]>();
  for (const f of parsePrometheusTextFormat(flat))
    samples.set(f.name, [...(samples.get(f.name) ?? []), ...f.metrics]);
  return { families, samples };
}

const has = (m: Sample, labels: Record<string, string>) =>
  Object.entries(labels).every(([k, v]) => m.labels?.[k] === v);

/** The sum of the counter or gauge samples of `name` carrying `labels` (0 when none does). */
export function sampleValue(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  const f = s.families.get(name);
  assert.ok(f, `metric ${name} is in the scrape`);
  assert.ok(f.type === 'COUNTER' || f.type === 'GAUGE', `${name} is a counter or gauge, not ${f.type}`);
  return f.metrics.filter((m) => has(m, labels)).reduce((n, m) => n + Number(m.value), 0);
}

/** The one histogram series of `name` whose labels include `labels`. */
export function histogramOf(
  s: Scrape,
  name: string,
  labels: Record<string, string>,
): { count: number; sum: number; buckets: Record<string, number> } {
  assert.equal(s.families.get(name)?.type, 'HISTOGRAM', `${name} is a histogram in the scrape`);
  const counts = (s.samples.get(`${name}_count`) ?? []).filter((m) => has(m, labels));
  assert.equal(counts.length, 1, `one ${name} series for ${JSON.stringify(labels)}`);
  const own = counts[0]!.labels ?? {};
  const same = (m: Sample) => {
    const { le: _le, ...rest } = m.labels ?? {};
    return JSON.stringify(Object.entries(rest).sort()) === JSON.stringify(Object.entries(own).sort());
  };
  const sum = (s.samples.get(`${name}_sum`) ?? []).find(same);
  const buckets = (s.samples.get(`${name}_bucket`) ?? []).filter(same);
  return {
    count: Number(counts[0]!.value),
    sum: Number(sum?.value),
    buckets: Object.fromEntries(buckets.map((b) => [b.labels!.le!, Number(b.value)])),
  };
}

/** The label sets of `name`'s series (for a histogram, of its _count samples). */
export function seriesOf(s: Scrape, name: string): Record<string, string>[] {
  const f = s.families.get(name);
  const list = f?.type === 'HISTOGRAM' ? (s.samples.get(`${name}_count`) ?? []) : (f?.metrics ?? []);
  return list.map((m) => m.labels ?? {});
}

/** Whether the scrape has a family called `name`. */
export function hasMetric(s: Scrape, name: string): boolean {
  return s.families.has(name);
}
