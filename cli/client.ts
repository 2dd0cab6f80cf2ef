// The CLI's HTTP client for the conductor API. Errors become CliError with an exit code that
// scripts can branch on; the message is the API's own (which names the node and next step).
import { readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Agent, buildConnector, request } from 'undici';
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

/** The CLI's config file: ~/.config/kiln/config.yaml (api, token or token_file, ca_fingerprint or ca_file). */
interface CliConfigFile {
  api?: string;
  token?: string;
  token_file?: string;
  ca_fingerprint?: string;
  ca_file?: string;
}

function readConfigFile(env: NodeJS.ProcessEnv): CliConfigFile {
  const file = join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'kiln', 'config.yaml');
  try {
    return (parseYaml(readFileSync(file, 'utf8')) as CliConfigFile | null) ?? {};
  } catch {
    // No config file is the normal case.
    return {};
  }
}

/** --api, then KILN_API, then `api:` in ~/.config/kiln/config.yaml, then the local default. */
export function resolveApiUrl(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return normaliseApiUrl(flag);
  if (env.KILN_API) return normaliseApiUrl(env.KILN_API);
  const cfg = readConfigFile(env);
  if (cfg.api) return normaliseApiUrl(cfg.api);
  return 'https://127.0.0.1:6385';
}

/** How the CLI authenticates to the API and which certificate it trusts. */
export interface Connection {
  /** Bearer API token; never taken from argv (it would show in ps and shell history). */
  token?: string;
  /** SHA-256 fingerprint of the API's certificate (a self-signed one): only it is accepted. */
  caFingerprint?: string;
  /** PEM CA bundle that signs the API's certificate. */
  ca?: string;
}

function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, EXIT.usage);
  }
}

/** A fingerprint as Node prints it (AB:CD:…), from any case and with or without colons or a sha256: prefix. */
export function normaliseFingerprint(fp: string): string {
  const hex = fp
    .trim()
    .replace(/^sha256:/i, '')
    .replace(/[:\s]/g, '')
    .toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex))
    throw new CliError(
      `'${fp}' is not a SHA-256 certificate fingerprint (64 hex digits, as the conductor logs it)`,
      EXIT.usage,
    );
  return hex.match(/../g)!.join(':');
}

/**
 * Token: KILN_TOKEN, KILN_TOKEN_FILE, then token/token_file in the config file. Certificate:
 * --ca-fingerprint, KILN_CA_FINGERPRINT, KILN_CA_FILE, then ca_fingerprint/ca_file in the file.
 */
export function resolveConnection(
  flags: { caFingerprint?: string } = {},
  env: NodeJS.ProcessEnv = process.env,
): Connection {
  const cfg = readConfigFile(env);
  const token =
    env.KILN_TOKEN ||
    (env.KILN_TOKEN_FILE ? readSecretFile(env.KILN_TOKEN_FILE, 'token file') : undefined) ||
    cfg.token ||
    (cfg.token_file ? readSecretFile(cfg.token_file, 'token file') : undefined);
  const fp = flags.caFingerprint ?? env.KILN_CA_FINGERPRINT ?? cfg.ca_fingerprint;
  const caFile = env.KILN_CA_FILE ?? cfg.ca_file;
  return {
    token: token || undefined,
    caFingerprint: fp ? normaliseFingerprint(fp) : undefined,
    ca: caFile ? readSecretFile(caFile, 'CA file') : undefined,
  };
}

/**
 * An undici dispatcher for the connection's trust: a pinned fingerprint accepts exactly that
 * certificate (checked before a byte of the request is sent); a CA bundle replaces the
 * system's; otherwise the system's trust store decides.
 */
function dispatcherFor(conn: Connection): Agent | undefined {
  if (conn.caFingerprint) {
    const pin = conn.caFingerprint;
    // No TLS session reuse: a resumed session shows no peer certificate to check.
    const base = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 });
    return new Agent({
      connect: (opts, cb) =>
        base(opts, (err, socket) => {
          if (err) return cb(err, null);
          if (opts.protocol === 'https:') {
            const got = (socket as TLSSocket).getPeerCertificate().fingerprint256;
            if (got !== pin) {
              socket.destroy();
              return cb(new PinMismatch(got ?? '(none)', pin), null);
            }
          }
          cb(null, socket);
        }),
    });
  }
  if (conn.ca) return new Agent({ connect: { ca: conn.ca } });
  return undefined;
}

class PinMismatch extends Error {
  constructor(
    readonly got: string,
    readonly want: string,
  ) {
    super(`the API presented certificate ${got}, not the pinned ${want}`);
  }
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
  if (status === 401 || status === 403) return EXIT.denied;
  if (status === 404) return EXIT.notFound;
  if (status === 409) return EXIT.conflict;
  if (status === 400 || status === 413 || status === 415) return EXIT.usage;
  return EXIT.error;
}

export class ApiClient {
  /** Settles once GET / has shown that `base` is a Kiln API; checked before the first call. */
  private kilnCheck?: Promise<void>;
  private readonly dispatcher: Agent | undefined;

  constructor(
    readonly base: string,
    private readonly conn: Connection = {},
    private readonly actor = `cli:${process.env.USER ?? userInfo().username}`,
  ) {
    this.dispatcher = dispatcherFor(conn);
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    this.kilnCheck ??= this.checkIsKiln();
    await this.kilnCheck;
    const res = await this.send(method, path, body);
    if (res.status >= 400) throw this.failure(method, path, res);
    return res.body as T;
  }

  /** The CliError for an API answer ≥ 400: the API's message, and the exit code its code maps to. */
  private failure(method: string, path: string, res: { status: number; body: unknown }): CliError {
    const err = (res.body as { error?: { message?: string } } | undefined)?.error;
    const hint =
      res.status === 401 && !this.conn.token
        ? ' (this CLI sent no token: set KILN_TOKEN, KILN_TOKEN_FILE, or token_file: in ~/.config/kiln/config.yaml)'
        : '';
    return new CliError(
      `${err?.message ?? `HTTP ${res.status} from ${method} ${path}`}${hint}`,
      exitCodeFor(res.status, res.body),
      res.body,
    );
  }

  /**
   * A streaming GET (the SSE event stream) over the same dispatcher, token and Kiln check as
   * call(); the body is handed over unread. An answer ≥ 400 comes back as `error` rather than
   * thrown, so the caller can tell an older conductor without the route (404) from a refusal.
   */
  async stream(
    path: string,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<
    | { status: number; body: AsyncIterable<Buffer> & { destroy(): void }; error?: undefined }
    | { status: number; error: CliError; body?: undefined }
  > {
    this.kilnCheck ??= this.checkIsKiln();
    await this.kilnCheck;
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.base}${path}`, {
        method: 'GET',
        headers: {
          accept: 'text/event-stream',
          'x-kiln-actor': this.actor.replace(/[^\w.@:-]/g, '_').slice(0, 64),
          ...(this.conn.token ? { authorization: `Bearer ${this.conn.token}` } : {}),
          ...headers,
        },
        dispatcher: this.dispatcher,
        signal,
        headersTimeout: 30_000,
        // A stream is quiet between events; the reader watches for silence itself (keepalives).
        bodyTimeout: 0,
      });
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      throw new CliError(connectFailure(this.base, e), EXIT.unreachable);
    }
    if (res.statusCode >= 400) {
      const body = parseBody(await res.body.text());
      return { status: res.statusCode, error: this.failure('GET', path, { status: res.statusCode, body }) };
    }
    return { status: res.statusCode, body: res.body };
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
          ...(this.conn.token ? { authorization: `Bearer ${this.conn.token}` } : {}),
        },
        dispatcher: this.dispatcher,
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 120_000,
        bodyTimeout: 120_000,
      });
    } catch (e) {
      throw new CliError(connectFailure(this.base, e), EXIT.unreachable);
    }
    const text = await res.body.text();
    return { status: res.statusCode, body: parseBody(text) };
  }
}

/** Why a request never got an answer, and what to do about it. */
function connectFailure(base: string, e: unknown): string {
  const err = e as Error & { code?: string; cause?: Error & { code?: string } };
  const cause = err.cause ?? err;
  if (cause instanceof PinMismatch)
    return `refusing ${base}: ${cause.message}. If the conductor's certificate was replaced on purpose, pin the one it logs at start (--ca-fingerprint or KILN_CA_FINGERPRINT); otherwise someone may be in the middle`;
  const code = cause.code ?? err.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code))
    return `the API at ${base} presented a certificate this machine does not trust (${code}). A conductor with a self-signed certificate logs its fingerprint at start: pass it with --ca-fingerprint or KILN_CA_FINGERPRINT (or ca_fingerprint: in ~/.config/kiln/config.yaml), or give its CA with KILN_CA_FILE`;
  if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(cause.message))
    return `cannot speak TLS to ${base}: ${cause.message}. Is the conductor's API plain HTTP (api.tls.mode: off)? Then use http:// in --api or KILN_API`;
  return `cannot reach the Kiln API at ${base}: ${cause.message}. Is 'kiln conductor' running? Set the URL with --api or KILN_API.`;
}

function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
