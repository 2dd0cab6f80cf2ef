// The CLI's HTTP client for the conductor API. Errors become CliError with an exit code that
// scripts can branch on; the message is the API's own (which names the node and next step).
import { readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';

export const EXIT = { ok: 0, error: 1, usage: 2, notFound: 3, conflict: 4, unreachable: 5 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

/** --api, then KILN_API, then `api:` in ~/.config/kiln/config.yaml, then the local default. */
export function resolveApiUrl(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return flag.replace(/\/$/, '');
  if (env.KILN_API) return env.KILN_API.replace(/\/$/, '');
  const file = join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'kiln', 'config.yaml');
  try {
    const cfg = parseYaml(readFileSync(file, 'utf8')) as { api?: string } | null;
    if (cfg?.api) return cfg.api.replace(/\/$/, '');
  } catch {
    // No config file is the normal case.
  }
  return 'http://127.0.0.1:6385';
}

export class ApiClient {
  constructor(
    readonly base: string,
    private readonly actor = `cli:${process.env.USER ?? userInfo().username}`,
  ) {}

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
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
    let parsed: unknown;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.statusCode >= 400) {
      const err = (parsed as { error?: { code?: string; message?: string } })?.error;
      const code =
        res.statusCode === 404 ? EXIT.notFound : res.statusCode === 409 ? EXIT.conflict : EXIT.error;
      throw new CliError(err?.message ?? `HTTP ${res.statusCode} from ${method} ${path}`, code, parsed);
    }
    return parsed as T;
  }
}
