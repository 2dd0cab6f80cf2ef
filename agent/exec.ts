// shared/exec.ts, loaded on first use: execa is a sizeable module graph, and nothing before the
// first lookup runs a tool. Keeps the agent's start-to-lookup time low.
import type { Runner } from '../shared/exec.ts';

export const run: Runner = async (file, args, opts) =>
  (await import('../shared/exec.ts')).run(file, args, opts);
