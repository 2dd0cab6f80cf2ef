// `kiln conductor`: run the conductor in the foreground until SIGINT/SIGTERM, or with --check
// only run the start-up checks. An unexpected exception ends the process (logged, exit 1) so
// that its supervisor restarts it: a conductor never carries on in a state nobody planned for.
import type { Command } from 'commander';
import { formatProblems, runChecks } from '../../conductor/checks.ts';
import { loadConfig } from '../../conductor/config.ts';
import { startConductor } from '../../conductor/server.ts';
import { createLogger, type Logger } from '../../shared/log.ts';

/** Each flag, the config key it sets (errors name the flag). */
const FLAGS = {
  host: ['--host', 'api.host'],
  port: ['--port', 'api.port'],
  provisioningHost: ['--provisioning-host', 'provisioning.host'],
  provisioningPort: ['--provisioning-port', 'provisioning.port'],
  publicUrl: ['--public-url', 'provisioning.public_url'],
  db: ['--db', 'database.url'],
  id: ['--id', 'conductor.id'],
  logLevel: ['--log-level', 'log.level'],
} as const;

/** Log an uncaught exception or unhandled rejection with what is known, then exit non-zero. */
export function installCrashPolicy(log: Logger, exit: (code: number) => never = process.exit): void {
  const die = (kind: 'uncaughtException' | 'unhandledRejection', err: unknown) => {
    try {
      log.fatal(
        { err, kind, pid: process.pid, uptime_s: Math.round(process.uptime()) },
        `${kind}: the conductor is in an unknown state and exits so its supervisor restarts it`,
      );
      process.stderr.write(
        `kiln conductor: ${kind}: ${err instanceof Error ? err.message : String(err)}; exiting\n`,
      );
    } finally {
      exit(1);
    }
  };
  process.on('uncaughtException', (err) => die('uncaughtException', err));
  process.on('unhandledRejection', (reason) => die('unhandledRejection', reason));
}

export function registerConductorCommand(program: Command): void {
  program
    .command('conductor')
    .description(
      'run the conductor: REST API, provisioning engine, power sync, boot services (config: file < KILN_* env < flags)',
    )
    .option('-c, --config <file>', 'YAML or JSON config file (also KILN_CONFIG)')
    .option('--host <addr>', 'operator API listen address (api.host)')
    .option('--port <port>', 'operator API port (api.port)')
    .option('--provisioning-host <addr>', 'listen address for ramdisks and netboot (provisioning.host)')
    .option('--provisioning-port <port>', 'port for ramdisks and netboot (provisioning.port)')
    .option('--public-url <url>', 'URL ramdisks use to reach this conductor (provisioning.public_url)')
    .option('--db <url>', 'sqlite:PATH, :memory: or postgres://… (database.url)')
    .option('--id <name>', 'conductor id used in node reservations (conductor.id)')
    .option('--log-level <level>', 'log.level')
    .option('--check', 'check the set-up (public URL, ramdisk, loaders, database folder, ports) and exit')
    .action(async (o) => {
      const flags: Record<string, unknown> = {};
      const flagNames: Record<string, string> = {};
      for (const [opt, [flag, key]] of Object.entries(FLAGS)) {
        flags[key] = o[opt];
        flagNames[key] = flag;
      }
      const config = loadConfig({ file: o.config, env: process.env, flags, flagNames });
      if (o.check) {
        const problems = await runChecks(config);
        if (problems.length === 0) {
          process.stdout.write('kiln conductor --check: all checks passed\n');
          return;
        }
        process.stdout.write(formatProblems(problems));
        process.stdout.write(
          `kiln conductor --check: ${problems.length} problem${problems.length > 1 ? 's' : ''}\n`,
        );
        process.exitCode = 1;
        return;
      }
      const log = createLogger({ name: 'kiln-conductor', level: config.log.level });
      installCrashPolicy(log);
      const c = await startConductor(config, log);
      // Logged as JSON already; said again here for whoever watches the terminal.
      if (c.problems.length)
        process.stderr.write(formatProblems(c.problems).replace(/^problem/gm, 'warning'));
      process.stderr.write(
        `kiln conductor: operator API ${c.url}${c.tls ? ` (certificate ${c.tls.fingerprint256})` : ''}, ramdisks ${c.publicUrl} (database ${config.database.url})\n`,
      );
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (sig: string) => {
          if (stopping) {
            log.warn({ signal: sig }, 'second signal: exiting now');
            process.exit(1);
          }
          stopping = true;
          log.info({ signal: sig }, 'shutting down');
          c.close().then(resolve, (e) => {
            log.error({ err: e }, 'shutdown failed');
            resolve();
          });
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    });
}
