// Reads a /metrics answer back the way Prometheus would (a real text-format parser, not regexes
// over our own output), and picks samples out of it by name and labels.
import assert from 'node:assert/strict';
import parsePrometheusTextFormat, { type MetricFamily, type Sample } from 'parse-prometheus-text-format';

export type Scrape = Map<string, MetricFamily>;

export function parseScrape(text: string): Scrape {
  return new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
}

function matching(s: Scrape, name: string, labels: Record<string, string>): Sample[] {
  const f = s.get(name);
  assert.ok(f, `metric ${name} is in the scrape`);
  return f.metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}

/** The sum of the counter or gauge samples of `name` carrying `labels` (0 when none does). */
export function sampleValue(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  return matching(s, name, labels).reduce((n, m) => n + Number(m.value), 0);
}

/** The histogram series of `name` with exactly these labels among its own. */
export function histogramOf(
  s: Scrape,
  name: string,
  labels: Record<string, string>,
): { count: number; sum: number; buckets: Record<string, number> } {
  const found = matching(s, name, labels);
  assert.equal(found.length, 1, `one ${name} series for ${JSON.stringify(labels)}`);
  const m = found[0]!;
  return {
    count: Number(m.count),
    sum: Number(m.sum),
    buckets: Object.fromEntries(Object.entries(m.buckets ?? {}).map(([k, v]) => [k, Number(v)])),
  };
}

/** The label sets of `name`'s samples. */
export function seriesOf(s: Scrape, name: string): Record<string, string>[] {
  return (s.get(name)?.metrics ?? []).map((m) => m.labels ?? {});
}
