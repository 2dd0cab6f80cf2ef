// The agent as a command: parse argv, read /proc/cmdline and env, run until stopped. Exit codes:
// 0 stopped, 1 lookup timed out or the agent failed (the ramdisk's init restarts it), 2 bad
// settings. `kiln agent ...` calls agentMain with its remaining arguments.
import { readFileSync } from 'node:fs';
import { loadAgentTokenFile, parseAgentArgs, parseCmdline, resolveSettings, usage } from './config.ts';
import { loadPlugins } from './plugins.ts';
import { runAgent } from './run.ts';
import { AGENT_VERSION } from './version.ts';

export async function agentMain(argv: readonly string[]): Promise<number> {
  let settings: ReturnType<typeof resolveSettings>;
  try {
    const args = parseAgentArgs(argv);
    if (args.help) {
      process.stdout.write(`${usage()}\n`);
      return 0;
    }
    if (args.version) {
      process.stdout.write(`${AGENT_VERSION}\n`);
      return 0;
    }
    let cmdline = '';
    try {
      cmdline = readFileSync(args.cmdlineFile, 'utf8');
    } catch {
      // not Linux, or no /proc: flags and env only
    }
    settings = loadAgentTokenFile(
      resolveSettings({ cmdline: parseCmdline(cmdline), env: process.env, flags: args.flags }),
    );
  } catch (e) {
    process.stderr.write(`kiln agent: ${(e as Error).message}\n\n${usage()}\n`);
    return 2;
  }
  const agent = runAgent({ settings, loadPlugins });
  const onSignal = () => void agent.stop(0);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return agent.done;
}
