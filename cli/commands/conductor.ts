// `kiln conductor`: run the conductor in the foreground until SIGINT/SIGTERM.
import type { Command } from 'commander';
import { loadConfig } from '../../conductor/config.ts';
import { startConductor } from '../../conductor/server.ts';
import { createLogger } from '../../shared/log.ts';

export function registerConductorCommand(program: Command): void {
  program
    .command('conductor')
    .description(
      'run the conductor: REST API, provisioning engine, power sync (config: file < KILN_* env < flags)',
    )
    .option('-c, --config <file>', 'YAML or JSON config file (also KILN_CONFIG)')
    .option('--host <addr>', 'API listen address (api.host)')
    .option('--port <port>', 'API port (api.port)')
    .option('--public-url <url>', 'URL ramdisks use to reach this API (api.public_url)')
    .option('--db <url>', 'sqlite:PATH, :memory: or postgres://… (database.url)')
    .option('--id <name>', 'conductor id used in node reservations (conductor.id)')
    .option('--log-level <level>', 'log.level')
    .action(async (o) => {
      const config = loadConfig({
        file: o.config,
        env: process.env,
        flags: {
          'api.host': o.host,
          'api.port': o.port,
          'api.public_url': o.publicUrl,
          'database.url': o.db,
          'conductor.id': o.id,
          'log.level': o.logLevel,
        },
      });
      const log = createLogger({ name: 'kiln-conductor', level: config.log.level });
      const c = await startConductor(config, log);
      process.stderr.write(`kiln conductor listening on ${c.url} (database ${config.database.url})\n`);
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
