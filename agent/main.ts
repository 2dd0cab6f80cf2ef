// Entry point of dist/agent.mjs, the one-file agent the ramdisk runs. Importing this module runs
// the agent: other code (the `kiln agent` subcommand, tests) imports agent/start.ts or
// agent/run.ts instead.
import { agentMain } from './start.ts';

agentMain(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`kiln agent: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
