// `kiln`: one binary for operators (node, image, port), for running the conductor, and for
// developers (agent). Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 conflict/locked,
// 5 API unreachable, 6 token refused or role too low.
import { Command, CommanderError } from 'commander';
import { agentMain } from '../agent/start.ts';
import { registerRamdiskCommand } from '../ramdisk-build/cli.ts';
import { ERROR_TABLE, isKilnError } from '../shared/errors.ts';
import { KILN_VERSION } from '../shared/version.ts';
import { ApiClient, CliError, EXIT, resolveApiUrl, resolveConnection } from './client.ts';
import { registerConductorCommand } from './commands/conductor.ts';
import { registerImageCommands } from './commands/image.ts';
import { registerLabCommands } from './commands/lab.ts';
import { registerNodeCommands } from './commands/node.ts';
import { registerSecretsCommands } from './commands/secrets.ts';
import { registerTokenCommands } from './commands/token.ts';
import { registerCompletionCommand } from './completion.ts';

export function buildProgram(): Command {
  const program = new Command('kiln')
    .description('Kiln bare-metal provisioning')
    .version(KILN_VERSION)
    .option('--api <url>', 'conductor API URL (or KILN_API, or api: in ~/.config/kiln/config.yaml)')
    .option(
      '--ca-fingerprint <sha256>',
      "pin the API's self-signed certificate (or KILN_CA_FINGERPRINT); the conductor logs it at start",
    )
    .option('--json', 'machine-readable output (on list and show commands the same as -f json)')
    .showHelpAfterError()
    .exitOverride();
  const ctx = () => {
    const o = program.opts<{ api?: string; json?: boolean; caFingerprint?: string }>();
    return {
      client: new ApiClient(resolveApiUrl(o.api), resolveConnection({ caFingerprint: o.caFingerprint })),
      json: Boolean(o.json),
    };
  };
  registerConductorCommand(program);
  registerNodeCommands(program, ctx);
  registerImageCommands(program, ctx);
  registerTokenCommands(program, ctx);
  registerSecretsCommands(program);
  registerRamdiskCommand(program);
  registerLabCommands(program);
  registerCompletionCommand(program);
  program
    .command('agent')
    .description(
      'run the agent on this machine (development; the ramdisk runs dist/agent.mjs); see `kiln agent --help`',
    )
    .helpOption(false)
    .allowUnknownOption()
    .argument('[args...]')
    .action(async (args: string[]) => {
      process.exitCode = await agentMain(args);
    });
  // Every level: a usage error deep down (a bad -f choice) must still end in exit code 2.
  const override = (c: Command) => {
    c.exitOverride();
    for (const s of c.commands) override(s);
  };
  override(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version also land here, with exit code 0.
      return e.exitCode === 0 ? 0 : EXIT.usage;
    }
    const json = program.opts<{ json?: boolean }>().json;
    if (e instanceof CliError) {
      if (json && e.body) process.stdout.write(`${JSON.stringify(e.body, null, 2)}\n`);
      process.stderr.write(`error: ${e.message}\n`);
      return e.exitCode;
    }
    if (isKilnError(e)) {
      process.stderr.write(`error: ${e.message}\n`);
      return ERROR_TABLE[e.code]?.exit ?? EXIT.error;
    }
    process.stderr.write(`error: ${(e as Error).stack ?? e}\n`);
    return EXIT.error;
  }
}

// Subcommands that keep running (conductor) resolve only when they stop.
main(process.argv).then((code) => {
  process.exitCode = code;
});
