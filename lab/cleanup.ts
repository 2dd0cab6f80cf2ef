// Teardown that also runs when the lab's process is interrupted. Everything the lab creates
// (bridge, taps, QEMU, ipmi_sim, radvd) registers a synchronous undo step here; SIGINT/SIGTERM and
// normal exit run the steps that are still pending, newest first. The steps are synchronous
// (spawnSync, process.kill) because an 'exit' handler cannot wait for promises.

type Step = { name: string; run: () => void };

const pending = new Map<number, Step>();
let nextId = 1;
let installed = false;

function runAll(): void {
  const ids = [...pending.keys()].sort((a, b) => b - a);
  for (const id of ids) {
    const step = pending.get(id);
    pending.delete(id);
    try {
      step?.run();
    } catch (e) {
      process.stderr.write(`kiln lab: cleanup of ${step?.name} failed: ${(e as Error).message}\n`);
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  runAll();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // Re-raise so the process ends with the status the signal would have given it.
  process.kill(process.pid, sig);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', runAll);
}

export interface Registration {
  /** Run the step now (if still pending) and forget it. */
  runNow(): void;
  /** Forget the step without running it (the resource was removed another way). */
  cancel(): void;
}

/** Register an undo step; it runs on SIGINT, SIGTERM or exit unless run or cancelled before. */
export function onTeardown(name: string, run: () => void): Registration {
  install();
  const id = nextId++;
  pending.set(id, { name, run });
  return {
    runNow: () => {
      const step = pending.get(id);
      pending.delete(id);
      step?.run();
    },
    cancel: () => {
      pending.delete(id);
    },
  };
}

/** Names of the steps still pending, oldest first (for tests and diagnostics). */
export function pendingTeardown(): string[] {
  return [...pending.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s.name);
}
