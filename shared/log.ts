// Structured JSON logs (pino). One root logger per process, children per component:
//   const log = createLogger({ name: 'conductor' }).child({ component: 'dhcp' });
//   log.info({ node, mac }, 'sent DHCP offer');
// Secrets are redacted by path wherever they appear in a logged object.
import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'password',
  '*.password',
  'bmc_password',
  '*.bmc_password',
  '*.*.bmc_password',
  'agent_token',
  '*.agent_token',
  '*.*.agent_token',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'headers.authorization',
  'req.headers.cookie',
  'configdrive',
  '*.configdrive',
];

export interface LogOptions {
  name: string;
  level?: string;
  /** Where to write; stdout when absent. Tests pass a stream to read the lines back. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LogOptions): Logger {
  const options: LoggerOptions = {
    name: opts.name,
    level: opts.level ?? process.env.KILN_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '******' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return opts.destination ? pino(options, opts.destination as pino.DestinationStream) : pino(options);
}

/** A logger that drops everything: for unit tests that don't inspect logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
