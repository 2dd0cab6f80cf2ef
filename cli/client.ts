// The CLI's HTTP client for the conductor API. Errors become CliError with an exit code that
// scripts can branch on; the message is the API's own (which names the node and next step).
import { readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { ERROR_TABLE, EXIT, isErrorCode } from '../shared/errors.ts';

export { EXIT };

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

/**
 * The API's base URL as requests need it: request paths already start with /v1, so a URL copied
 * with its /v1 (as Ironic's endpoint is usually written) or a trailing slash would double it.
 */
export function normaliseApiUrl(url: string): string {
  return url.trim().replace(/\/+$/, '').replace(/\/v1$/i, '').replace(/\/+$/, '');
}

/** --api, then KILN_API, then `api:` in ~/.config/kiln/config.yaml, then the local default. */
export function resolveApiUrl(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return normaliseApiUrl(flag);
  if (env.KILN_API) return normaliseApiUrl(env.KILN_API);
  const file = join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'kiln', 'config.yaml');
  try {
    const cfg = parseYaml(readFileSync(file, 'utf8')) as { api?: string } | null;
    if (cfg?.api) return normaliseApiUrl(cfg.api);
  } catch {
    // No config file is the normal case.
  }
  return 'http://127.0.0.1:6385';
}

/**
 * The exit code for an API error: by its Kiln error code when the body has one (shared/errors.ts
 * holds the table), else by HTTP status. Bad input is a usage error, as a bad flag is.
 */
export function exitCodeFor(status: number, body?: unknown): number {
  const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
  if (isErrorCode(code)) return ERROR_TABLE[code].exit;
  return exitCodeForStatus(status);
}

/** The exit code for an API error status with no Kiln error code (a proxy, a non-Kiln answer). */
export function exitCodeForStatus(status: number): number {
  if (status === 404) return EXIT.notFound;
  if (status === 409) return EXIT.conflict;
  if (status === 400 || status === 413 || status === 415) return EXIT.usage;
  return EXIT.error;
}

export class ApiClient {
  /** Settles once GET / has shown that `base` is a Kiln API; checked before the first call. */
  private kilnCheck?: Promise<void>;

  constructor(
    readonly base: string,
    private readonly actor = `cli:${process.env.USER ?? userInfo().username}`,
  ) {}

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    this.kilnCheck ??= this.checkIsKiln();
    await this.kilnCheck;
    const res = await this.send(method, path, body);
    if (res.status >= 400) {
      const err = (res.body as { error?: { message?: string } } | undefined)?.error;
      throw new CliError(
        err?.message ?? `HTTP ${res.status} from ${method} ${path}`,
        exitCodeFor(res.status, res.body),
        res.body,
      );
    }
    return res.body as T;
  }

  /**
   * Kiln listens on Ironic's port and speaks Ironic's protocol to ramdisks, so a stock Ironic
   * answers many of the same paths; only Kiln's GET / carries a `kiln` member.
   */
  private async checkIsKiln(): Promise<void> {
    const res = await this.send('GET', '/');
    const doc = res.body;
    if (res.status === 200 && typeof doc === 'object' && doc !== null && 'kiln' in doc) return;
    throw new CliError(
      `this is not a Kiln API: ${this.base} answered GET / without a 'kiln' member (is it an OpenStack Ironic?). Point --api or KILN_API at a 'kiln conductor'.`,
      EXIT.unreachable,
    );
  }

  /** One request; only a connection failure throws. The body is parsed JSON, or the raw text. */
  private async send(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }> {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.base}${path}`, {
        method: method as 'GET',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'x-kiln-actor': this.actor.replace(/[^\w.@:-]/g, '_').slice(0, 64),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 120_000,
        bodyTimeout: 120_000,
      });
    } catch (e) {
      throw new CliError(
        `cannot reach the Kiln API at ${this.base}: ${(e as Error).message}. Is 'kiln conductor' running? Set the URL with --api or KILN_API.`,
        EXIT.unreachable,
      );
    }
    const text = await res.body.text();
    return { status: res.statusCode, body: parseBody(text) };
  }
}

function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
