// A small Redfish BMC: the service root, a Systems collection of one or more ComputerSystems,
// the ComputerSystem.Reset action, boot override by PATCH, SessionService sessions and basic
// auth, over HTTP or HTTPS. Debian has Redfish clients but no Redfish BMC, so this stands in for
// one in tests and labs; hooks let a lab make Reset start and stop a real VM.
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import {
  createServer as createHttp,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  chassis,
  collection,
  computerSystem,
  manager,
  redfishError,
  type SystemState,
  serviceRoot,
  session,
  sessionService,
} from './resources.ts';
import {
  HttpError,
  newSystem,
  patchSystem,
  type RedfishBmcHooks,
  refreshPower,
  resetSystem,
} from './system.ts';

export type { BootOverride, SystemState } from './resources.ts';
export type { RedfishBmcHooks, ResetEvent } from './system.ts';

export interface RedfishBmcOptions {
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  user?: string;
  password?: string;
  /** System ids; default ["1"]. */
  systems?: string[];
  initialPower?: 'On' | 'Off';
  /** PEM certificate and key: serve HTTPS instead of HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  hooks?: RedfishBmcHooks;
  /** Delay every answer by this much (a slow BMC). */
  delayMs?: number;
}

export interface RequestRecord {
  method: string;
  path: string;
  auth: 'none' | 'basic' | 'session';
  status: number;
}

export interface RedfishBmc {
  url: string;
  port: number;
  system(id?: string): SystemState;
  /** Every request answered, oldest first. */
  requests: RequestRecord[];
  /** Sessions currently open. */
  sessionCount(): number;
  /** Forget every session, as a BMC does when it reboots or sessions time out. */
  expireSessions(): void;
  setDelay(ms: number): void;
  close(): Promise<void>;
}

const NO_AUTH = new Set(['/redfish', '/redfish/v1', '/redfish/v1/odata', '/redfish/v1/$metadata']);
const SESSIONS = '/redfish/v1/SessionService/Sessions';
const MAX_BODY = 64 * 1024;

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, redfishError('GeneralError', 'request body too large'));
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through to the Redfish error below
  }
  throw new HttpError(400, redfishError('MalformedJSON', 'The request body submitted was malformed JSON'));
}

export async function startRedfishBmc(opts: RedfishBmcOptions = {}): Promise<RedfishBmc> {
  const user = opts.user ?? 'admin';
  const password = opts.password ?? 'password';
  const hooks = opts.hooks ?? {};
  let delayMs = opts.delayMs ?? 0;
  const serviceUuid = randomUUID();
  const systems = new Map<string, SystemState>();
  for (const id of opts.systems ?? ['1']) systems.set(id, newSystem(id, opts.initialPower ?? 'Off'));
  const sessions = new Map<string, { id: string; user: string }>();
  const requests: RequestRecord[] = [];

  function authenticate(req: IncomingMessage): 'basic' | 'session' | null {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string' && sessions.has(token)) return 'session';
    const h = req.headers.authorization;
    if (h?.startsWith('Basic ')) {
      const decoded = Buffer.from(h.slice(6), 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i >= 0 && sameSecret(decoded.slice(0, i), user) && sameSecret(decoded.slice(i + 1), password))
        return 'basic';
    }
    return null;
  }

  function getSystem(id: string): SystemState {
    const s = systems.get(id);
    if (!s)
      throw new HttpError(
        404,
        redfishError('ResourceMissingAtURI', `The resource at /redfish/v1/Systems/${id} was not found`),
      );
    return s;
  }

  async function route(
    req: IncomingMessage,
    path: string,
    auth: RequestRecord['auth'],
  ): Promise<{ status: number; body?: object; headers?: Record<string, string> }> {
    const method = req.method ?? 'GET';
    if (path === '/redfish' && method === 'GET') return { status: 200, body: { v1: '/redfish/v1/' } };
    if (path === '/redfish/v1' && method === 'GET') return { status: 200, body: serviceRoot(serviceUuid) };
    if (path === SESSIONS && method === 'POST') {
      const body = await readJson(req);
      const u = typeof body.UserName === 'string' ? body.UserName : '';
      const p = typeof body.Password === 'string' ? body.Password : '';
      if (!sameSecret(u, user) || !sameSecret(p, password)) {
        throw new HttpError(401, redfishError('NoValidSession', 'Invalid username or password'));
      }
      const id = randomBytes(8).toString('hex');
      const token = randomBytes(24).toString('base64url');
      sessions.set(token, { id, user: u });
      return {
        status: 201,
        body: session(id, u),
        headers: { 'x-auth-token': token, location: `${SESSIONS}/${id}` },
      };
    }
    if (auth === 'none') {
      throw new HttpError(
        401,
        redfishError('NoValidSession', 'There is no valid session established with the implementation'),
        {
          'www-authenticate': 'Basic realm="Redfish"',
        },
      );
    }
    if (path === '/redfish/v1/Systems' && method === 'GET') {
      return {
        status: 200,
        body: collection(
          'ComputerSystem',
          path,
          'Computer System Collection',
          [...systems.keys()].map((i) => `${path}/${i}`),
        ),
      };
    }
    const sys = /^\/redfish\/v1\/Systems\/([^/]+)(\/Actions\/ComputerSystem\.Reset)?$/.exec(path);
    if (sys) {
      const s = getSystem(decodeURIComponent(sys[1]!));
      if (sys[2] && method === 'POST') {
        await resetSystem(s, (await readJson(req)).ResetType, hooks);
        return { status: 204 };
      }
      if (!sys[2] && method === 'GET') {
        await refreshPower(s, hooks);
        return {
          status: 200,
          body: computerSystem(s),
          headers: {
            etag: `W/"${s.power}-${s.boot.BootSourceOverrideTarget}-${s.boot.BootSourceOverrideEnabled}"`,
          },
        };
      }
      if (!sys[2] && method === 'PATCH') {
        await patchSystem(s, await readJson(req), hooks);
        return { status: 204 };
      }
    }
    if (path === '/redfish/v1/SessionService' && method === 'GET')
      return { status: 200, body: sessionService() };
    if (path === SESSIONS && method === 'GET') {
      return {
        status: 200,
        body: collection(
          'Session',
          path,
          'Session Collection',
          [...sessions.values()].map((s) => `${path}/${s.id}`),
        ),
      };
    }
    const sm = /^\/redfish\/v1\/SessionService\/Sessions\/([^/]+)$/.exec(path);
    if (sm) {
      const entry = [...sessions.entries()].find(([, s]) => s.id === sm[1]);
      if (!entry)
        throw new HttpError(
          404,
          redfishError('ResourceMissingAtURI', `The resource at ${path} was not found`),
        );
      if (method === 'GET') return { status: 200, body: session(entry[1].id, entry[1].user) };
      if (method === 'DELETE') {
        sessions.delete(entry[0]);
        return { status: 204 };
      }
    }
    const ids = [...systems.keys()];
    if (path === '/redfish/v1/Managers' && method === 'GET')
      return { status: 200, body: collection('Manager', path, 'Manager Collection', [`${path}/BMC`]) };
    if (path === '/redfish/v1/Managers/BMC' && method === 'GET') return { status: 200, body: manager(ids) };
    if (path === '/redfish/v1/Chassis' && method === 'GET')
      return { status: 200, body: collection('Chassis', path, 'Chassis Collection', [`${path}/1`]) };
    if (path === '/redfish/v1/Chassis/1' && method === 'GET') return { status: 200, body: chassis(ids) };
    const known =
      sys || sm || /^\/redfish\/v1(\/(Systems|Managers|Chassis|SessionService)(\/.*)?)?$/.test(path);
    if (known)
      throw new HttpError(405, redfishError('ActionNotSupported', `${method} is not supported on ${path}`));
    throw new HttpError(404, redfishError('ResourceMissingAtURI', `The resource at ${path} was not found`));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://bmc').pathname.replace(/\/+$/, '') || '/';
    const authKind = authenticate(req);
    const auth: RequestRecord['auth'] = authKind ?? 'none';
    let status = 500;
    let body: object | undefined;
    let headers: Record<string, string> = {};
    try {
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      const skipAuth = NO_AUTH.has(path) || (path === SESSIONS && req.method === 'POST');
      const out = await route(req, path, skipAuth ? 'basic' : auth);
      ({ status, body } = out);
      headers = out.headers ?? {};
    } catch (e) {
      if (e instanceof HttpError) {
        status = e.status;
        body = e.body;
        headers = e.headers;
      } else {
        body = redfishError('InternalError', (e as Error).message);
      }
    }
    requests.push({ method: req.method ?? 'GET', path, auth, status });
    if (res.destroyed) return;
    res.writeHead(status, {
      'odata-version': '4.0',
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...headers,
    });
    res.end(body ? JSON.stringify(body) : undefined);
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => res.destroy());
  };
  const server: Server = opts.tls
    ? createHttps({ cert: opts.tls.cert, key: opts.tls.key }, listener)
    : createHttp(listener);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${shownHost}:${port}`,
    port,
    system: (id = '1') => getSystem(id),
    requests,
    sessionCount: () => sessions.size,
    expireSessions: () => sessions.clear(),
    setDelay: (ms) => {
      delayMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
