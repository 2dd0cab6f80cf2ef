// A PowerDriverRegistry decorator: every call a driver makes to a BMC is timed and, when it
// throws, counted as a failure, by driver name and operation. Errors and results pass through
// unchanged; the registry's other members (names, close) stay the registry's own.
import type { PowerDriver, PowerDriverRegistry } from '../power/driver.ts';
import type { Metrics } from './metrics.ts';

const OPERATIONS = ['validate', 'getPower', 'setPower', 'setBootDevice'] as const;

function meteredDriver(driver: PowerDriver, metrics: Metrics): PowerDriver {
  const timed =
    <A extends unknown[], R>(operation: string, call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const started = performance.now();
      const labels = { driver: driver.name, operation };
      try {
        const r = await call(...args);
        metrics.observeBmc(labels, 'ok', (performance.now() - started) / 1000);
        return r;
      } catch (e) {
        metrics.observeBmc(labels, 'failed', (performance.now() - started) / 1000);
        throw e;
      }
    };
  const wrapped = Object.create(driver) as Record<string, unknown>;
  for (const op of OPERATIONS) {
    const fn = driver[op] as (...a: unknown[]) => Promise<unknown>;
    wrapped[op] = timed(op, fn.bind(driver));
  }
  return wrapped as unknown as PowerDriver;
}

/** `registry`, its drivers timed into `metrics` (one wrapper per driver, made on first use). */
export function meteredPowerRegistry<R extends PowerDriverRegistry>(registry: R, metrics: Metrics): R {
  const seen = new WeakMap<PowerDriver, PowerDriver>();
  const wrapped = Object.create(registry) as R;
  wrapped.get = (name: string) => {
    const d = registry.get(name);
    let m = seen.get(d);
    if (!m) {
      m = meteredDriver(d, metrics);
      seen.set(d, m);
    }
    return m;
  };
  return wrapped;
}
