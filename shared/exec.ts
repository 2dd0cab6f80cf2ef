// The one way Kiln runs external tools (ipmitool, sgdisk, wipefs, …): execa with a timeout,
// failures turned into ExecError naming the command, its exit code and the tail of its stderr.
// Secrets go through the environment (never argv, which `ps` shows) and are scrubbed from errors.
import { execa } from 'execa';

export class ExecError extends Error {
  readonly code = 'EXEC_FAILED';
  constructor(
    readonly cmd: string,
    readonly exitCode: number | null,
    readonly stderrTail: string,
    readonly stdout: string,
    readonly timedOut: boolean,
    readonly missing: boolean,
  ) {
    super(
      missing
        ? `${cmd}: command not found; install it (Debian package providing ${cmd.split(' ')[0]})`
        : timedOut
          ? `${cmd} timed out`
          : `${cmd} failed with exit code ${exitCode}${stderrTail ? `: ${stderrTail}` : ''}`,
    );
    this.name = 'ExecError';
  }
}

export interface RunOptions {
  timeoutMs?: number;
  /** Extra environment, e.g. IPMI_PASSWORD. Values are scrubbed from error messages. */
  secretEnv?: Record<string, string>;
  env?: Record<string, string>;
  input?: string | Buffer;
  cwd?: string;
  /** Kill the process when this aborts. */
  signal?: AbortSignal;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** The seam callers depend on, so unit tests can hand in a recording fake. */
export type Runner = (file: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('******');
  return out;
}

export const run: Runner = async (file, args, opts = {}) => {
  const secrets = Object.values(opts.secretEnv ?? {});
  const shown = scrub([file, ...args].join(' '), secrets);
  try {
    const r = await execa(file, args, {
      timeout: opts.timeoutMs ?? 60_000,
      env: { ...opts.env, ...opts.secretEnv },
      input: opts.input,
      cwd: opts.cwd,
      cancelSignal: opts.signal,
      reject: true,
      stripFinalNewline: true,
    });
    return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? 0 };
  } catch (e) {
    const err = e as {
      exitCode?: number;
      stderr?: unknown;
      stdout?: unknown;
      timedOut?: boolean;
      code?: string;
      originalMessage?: string;
    };
    const stderr = scrub(String(err.stderr ?? err.originalMessage ?? ''), secrets);
    const tail = stderr.trim().split('\n').slice(-3).join(' | ').slice(-400);
    throw new ExecError(
      shown,
      err.exitCode ?? null,
      tail,
      scrub(String(err.stdout ?? ''), secrets),
      Boolean(err.timedOut),
      err.code === 'ENOENT',
    );
  }
};
