// The HTTP side of the Redfish driver: one undici Agent per TLS setting, basic or session auth,
// per-request timeouts, and every failure sorted into a kind the driver can explain to an operator.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, request } from 'undici';
import { type ErrorCode, isKilnError, KilnError } from '../../shared/errors.ts';
import type { BmcCredentials } from './driver.ts';
import type { RedfishOptions } from './options.ts';

export type RedfishFailureKind =
  | 'credentials'
  | 'privilege'
  | 'not-found'
  | 'refused-request'
  | 'server-error'
  | 'timeout'
  | 'connection-refused'
  | 'connection-reset'
  | 'dns'
  | 'tls-untrusted'
  | 'tls-handshake'
  | 'ca-file';

const REDFISH_CODE: Record<RedfishFailureKind, ErrorCode> = {
  credentials: 'BMC_AUTH',
  privilege: 'BMC_AUTH',
  'not-found': 'BMC_ERROR',
  'refused-request': 'BMC_ERROR',
  'server-error': 'BMC_ERROR',
  timeout: 'BMC_UNREACHABLE',
  'connection-refused': 'BMC_UNREACHABLE',
  'connection-reset': 'BMC_UNREACHABLE',
  dns: 'BMC_UNREACHABLE',
  'tls-untrusted': 'BMC_ERROR',
  'tls-handshake': 'BMC_ERROR',
  'ca-file': 'BMC_ERROR',
};

/** One failed Redfish request, classified; the driver turns it into the BMC_ERROR callers see. */
export class RedfishFailure extends KilnError {
  constructor(
    readonly kind: RedfishFailureKind,
    message: string,
    /** True when the request surely never reached the BMC, so even a non-idempotent call may be resent. */
    readonly notSent: boolean,
    /** The BMC's HTTP status, when it answered. */
    readonly httpStatus: number | null = null,
  ) {
    super(REDFISH_CODE[kind], message, { details: { kind, status: httpStatus } });
  }
}

export function isRedfishFailure(e: unknown): e is RedfishFailure {
  return (
    isKilnError(e) &&
    Object.values(REDFISH_CODE).includes(e.code) &&
    typeof (e as { kind?: unknown }).kind === 'string' &&
    typeof (e as { notSent?: unknown }).notSent === 'boolean'
  );
}

export interface RedfishResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

const TLS_UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);

/** The error's code, looking through undici's wrappers (fetch-style `cause`, AggregateError). */
function errorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string' && c !== 'UND_ERR_SOCKET') return c;
    const errs = (cur as { errors?: unknown[] }).errors;
    cur = Array.isArray(errs) && errs.length ? errs[0] : (cur as { cause?: unknown }).cause;
  }
  return (e as { code?: string })?.code;
}

export function classifyTransportError(e: unknown): RedfishFailure {
  const code = errorCode(e) ?? '';
  const text = e instanceof Error ? e.message : String(e);
  if (TLS_UNTRUSTED.has(code)) return new RedfishFailure('tls-untrusted', `${code}: ${text}`, true);
  if (code === 'ECONNREFUSED') return new RedfishFailure('connection-refused', text, true);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new RedfishFailure('dns', text, true);
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
    return new RedfishFailure('timeout', text, true);
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'ETIMEDOUT')
    return new RedfishFailure('timeout', text, false);
  if (code === 'EPROTO' || /SSL|TLS|wrong version number/i.test(text)) {
    // OpenSSL's text is a long internal trace; its code (ERR_SSL_WRONG_VERSION_NUMBER…) says enough.
    return new RedfishFailure('tls-handshake', code || text.split('\n')[0]!.slice(0, 120), true);
  }
  return new RedfishFailure('connection-reset', `${code || 'error'}: ${text}`, false);
}

/** The message a Redfish service put in its error body, if any. */
export function redfishErrorMessage(body: unknown): string | null {
  const err = (body as { error?: Record<string, unknown> } | null)?.error;
  if (!err) return null;
  const info = err['@Message.ExtendedInfo'];
  if (Array.isArray(info) && info.length && typeof info[0]?.Message === 'string')
    return info[0].Message as string;
  return typeof err.message === 'string' ? err.message : null;
}

export function classifyStatus(status: number, body: unknown): RedfishFailure {
  const said = redfishErrorMessage(body);
  const text = `HTTP ${status}${said ? `: ${said}` : ''}`;
  if (status === 401) return new RedfishFailure('credentials', text, false, status);
  if (status === 403) return new RedfishFailure('privilege', text, false, status);
  if (status === 404) return new RedfishFailure('not-found', text, false, status);
  if (status >= 500) return new RedfishFailure('server-error', text, false, status);
  return new RedfishFailure('refused-request', text, false, status);
}

export class RedfishHttp {
  private readonly agents = new Map<string, Agent>();
  private readonly sessions = new Map<
    string,
    { token: string; location: string | null; origin: string; agent: Agent }
  >();

  origin(creds: BmcCredentials): string {
    const { protocol, host, port } = creds.bmc;
    const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    return `${protocol ?? 'https'}://${h}${port ? `:${port}` : ''}`;
  }

  private agent(o: RedfishOptions): Agent {
    const key = `${o.ca_file ?? ''}|${o.insecure}|${o.timeout_s}`;
    let a = this.agents.get(key);
    if (!a) {
      let ca: string[] | undefined;
      if (o.ca_file) {
        try {
          // Added to the system roots, not instead of them, as curl's --cacert is commonly expected to be.
          ca = [...rootCertificates, readFileSync(o.ca_file, 'utf8')];
        } catch (e) {
          throw new RedfishFailure('ca-file', `cannot read ${o.ca_file}: ${(e as Error).message}`, true);
        }
      }
      a = new Agent({
        connect: { timeout: o.timeout_s * 1000, rejectUnauthorized: !o.insecure, ...(ca ? { ca } : {}) },
        headersTimeout: o.timeout_s * 1000,
        bodyTimeout: o.timeout_s * 1000,
        keepAliveTimeout: 4000,
      });
      this.agents.set(key, a);
    }
    return a;
  }

  // The password is part of the key: a token obtained with the right password must never be handed
  // to a caller holding a wrong one (validate() of new credentials would pass on a stale session).
  private sessionKey(creds: BmcCredentials): string {
    const pw = createHash('sha256')
      .update(creds.password ?? '')
      .digest('base64url');
    return `${this.origin(creds)}|${creds.bmc.username ?? ''}|${pw}`;
  }

  /** One HTTP exchange, authenticated; a stale session token is renewed once. */
  async call(
    creds: BmcCredentials,
    o: RedfishOptions,
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<RedfishResponse> {
    let r = await this.send(creds, o, method, path, body, await this.authHeader(creds, o, signal), signal);
    if (r.status === 401 && o.auth === 'session' && this.sessions.has(this.sessionKey(creds))) {
      this.sessions.delete(this.sessionKey(creds));
      r = await this.send(creds, o, method, path, body, await this.authHeader(creds, o, signal), signal);
    }
    if (r.status >= 400) throw classifyStatus(r.status, r.body);
    return r;
  }

  private async authHeader(
    creds: BmcCredentials,
    o: RedfishOptions,
    signal?: AbortSignal,
  ): Promise<Record<string, string>> {
    if (o.auth === 'basic') {
      const basic = Buffer.from(`${creds.bmc.username ?? ''}:${creds.password ?? ''}`).toString('base64');
      return { authorization: `Basic ${basic}` };
    }
    const key = this.sessionKey(creds);
    let s = this.sessions.get(key);
    if (!s) {
      const r = await this.send(
        creds,
        o,
        'POST',
        '/redfish/v1/SessionService/Sessions',
        { UserName: creds.bmc.username ?? '', Password: creds.password ?? '' },
        {},
        signal,
      );
      if (r.status >= 400) throw classifyStatus(r.status, r.body);
      const token = r.headers['x-auth-token'];
      if (typeof token !== 'string' || !token) {
        throw new RedfishFailure(
          'refused-request',
          'session created without an X-Auth-Token header',
          false,
          r.status,
        );
      }
      const loc = r.headers.location;
      s = {
        token,
        location: typeof loc === 'string' ? loc : null,
        origin: this.origin(creds),
        agent: this.agent(o),
      };
      this.sessions.set(key, s);
    }
    return { 'x-auth-token': s.token };
  }

  private async send(
    creds: BmcCredentials,
    o: RedfishOptions,
    method: string,
    path: string,
    body: unknown,
    auth: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<RedfishResponse> {
    const headers: Record<string, string> = { accept: 'application/json', 'odata-version': '4.0', ...auth };
    if (body !== undefined) headers['content-type'] = 'application/json';
    // undici's own header/body timers are coarse (they can fire a second late), so a per-request
    // deadline bounds the whole exchange as well.
    const deadline = AbortSignal.timeout(o.timeout_s * 1000);
    try {
      const r = await request(`${this.origin(creds)}${path}`, {
        method: method as 'GET',
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: this.agent(o),
        signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
      });
      const text = await r.body.text();
      let parsed: unknown = null;
      if (text) {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = { raw: text.slice(0, 200) };
        }
      }
      return { status: r.statusCode, headers: r.headers, body: parsed };
    } catch (e) {
      if (isRedfishFailure(e) || signal?.aborted) throw e;
      if (deadline.aborted) throw new RedfishFailure('timeout', `no answer within ${o.timeout_s} s`, false);
      throw classifyTransportError(e);
    }
  }

  /** Log out of every session (best effort) and close connections. */
  async close(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(
      sessions
        .filter((s) => s.location)
        .map(async (s) => {
          const url = new URL(s.location!, s.origin);
          const r = await request(url, {
            method: 'DELETE',
            headers: { 'x-auth-token': s.token },
            dispatcher: s.agent,
            signal: AbortSignal.timeout(2000),
          });
          await r.body.dump();
        }),
    );
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.allSettled(agents.map((a) => a.close()));
  }
}
