// Waiting for a condition instead of sleeping for a guessed time: a sleep that is long enough on
// an idle machine is too short on a loaded one, and a generous one slows every run. The deadline
// here is only the point where a test gives up, so it can be generous.

/**
 * Polls `fn` until it returns something other than undefined, null or false, and resolves with
 * that; an exception counts as "not yet". Rejects naming `what` once `timeoutMs` has passed.
 */
export function waitFor<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 15_000,
  everyMs = 50,
): Promise<T> {
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const tick = async () => {
      try {
        const v = await fn();
        if (v !== undefined && v !== false && v !== null) return resolvePromise(v as T);
      } catch {
        // keep polling until the deadline
      }
      if (Date.now() - started > timeoutMs)
        return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(tick, everyMs);
    };
    void tick();
  });
}
