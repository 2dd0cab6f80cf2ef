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
  BOOT_ENABLED,
  BOOT_MODES,
  BOOT_TARGETS,
  type BootOverride,
  chassis,
  collection,
  computerSystem,
  manager,
  RESET_TYPES,
  type ResetType,
  redfishError,
  type SystemState,
  serviceRoot,
  session,
  sessionService,
} from './resources.ts';

export type { BootOverride, SystemState } from './resources.ts';

export interface ResetEvent {
  resetType: string;
  from: 'On' | 'Off';
  to: 'On' | 'Off';
  /** True when the machine (re)boots: off→on, or a restart of a running machine. */
  boots: boolean;
  /** The boot override target that boot will use ("None" = the firmware's order). */
  bootTarget: string;
}

export interface RedfishBmcHooks {
  /** Called before a Reset takes effect; a rejection fails the action with HTTP 500. */
  onReset?(systemId: string, event: ResetEvent): Promise<void> | void;
  /** Called after the boot override changed. */
  onBoot?(systemId: string, boot: BootOverride): Promise<void> | void;
  /** The real power state, for a machine that can turn itself off (a VM that shut down). */
  readPower?(systemId: string): Promise<'On' | 'Off' | undefined> | 'On' | 'Off' | undefined;
}

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

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: object,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
  }
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
  for (const id of opts.systems ?? ['1']) {
    systems.set(id, {
      id,
      uuid: randomUUID(),
      power: opts.initialPower ?? 'Off',
      boot: {
        BootSourceOverrideTarget: 'None',
        BootSourceOverrideEnabled: 'Disabled',
        BootSourceOverrideMode: 'UEFI',
      },
      lastBootTarget: null,
      resets: [],
    });
  }
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

  async function refreshPower(s: SystemState): Promise<void> {
    const p = await hooks.readPower?.(s.id);
    if (p === 'On' || p === 'Off') s.power = p;
  }

  async function reset(s: SystemState, resetType: unknown): Promise<void> {
    if (typeof resetType !== 'string' || !(RESET_TYPES as readonly string[]).includes(resetType)) {
      throw new HttpError(
        400,
        redfishError(
          'ActionParameterValueNotInList',
          `The value ${JSON.stringify(resetType)} for the parameter ResetType is not in the list of acceptable values`,
        ),
      );
    }
    await refreshPower(s);
    const from = s.power;
    const t = resetType as ResetType;
    let to: 'On' | 'Off' = from;
    let boots = false;
    if (t === 'On' || t === 'ForceOn') {
      to = 'On';
      boots = from === 'Off';
    } else if (t === 'ForceOff' || t === 'GracefulShutdown') {
      to = 'Off';
    } else if (t === 'PushPowerButton') {
      to = from === 'On' ? 'Off' : 'On';
      boots = to === 'On';
    } else if (t === 'ForceRestart' || t === 'GracefulRestart' || t === 'PowerCycle') {
      to = 'On';
      boots = true;
    }
    const bootTarget =
      s.boot.BootSourceOverrideEnabled === 'Disabled' ? 'None' : s.boot.BootSourceOverrideTarget;
    try {
      await hooks.onReset?.(s.id, { resetType: t, from, to, boots, bootTarget });
    } catch (e) {
      throw new HttpError(500, redfishError('InternalError', `reset hook failed: ${(e as Error).message}`));
    }
    s.resets.push(t);
    s.power = to;
    if (boots) {
      s.lastBootTarget = bootTarget;
      // A one-time override is spent by the boot that used it, as on real BMCs.
      if (s.boot.BootSourceOverrideEnabled === 'Once') {
        s.boot = { ...s.boot, BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'None' };
      }
    }
  }

  async function patchSystem(s: SystemState, body: Record<string, unknown>): Promise<void> {
    for (const k of Object.keys(body)) {
      if (k !== 'Boot') {
        throw new HttpError(
          400,
          redfishError(
            'PropertyNotWritable',
            `The property ${k} is a read only property and cannot be assigned a value`,
          ),
        );
      }
    }
    const boot = body.Boot as Record<string, unknown> | undefined;
    if (!boot || typeof boot !== 'object') return;
    const next = { ...s.boot };
    const check = (prop: keyof BootOverride, allowed: readonly string[]) => {
      const v = boot[prop];
      if (v === undefined) return;
      if (typeof v !== 'string' || !allowed.includes(v)) {
        throw new HttpError(
          400,
          redfishError(
            'PropertyValueNotInList',
            `The value ${JSON.stringify(v)} for the property ${prop} is not in the list of acceptable values`,
          ),
        );
      }
      (next as Record<string, string>)[prop] = v;
    };
    for (const k of Object.keys(boot)) {
      if (!['BootSourceOverrideTarget', 'BootSourceOverrideEnabled', 'BootSourceOverrideMode'].includes(k)) {
        throw new HttpError(
          400,
          redfishError(
            'PropertyUnknown',
            `The property Boot/${k} is not in the list of valid properties for the resource`,
          ),
        );
      }
    }
    check('BootSourceOverrideTarget', BOOT_TARGETS);
    check('BootSourceOverrideEnabled', BOOT_ENABLED);
    check('BootSourceOverrideMode', BOOT_MODES);
    s.boot = next;
    await hooks.onBoot?.(s.id, { ...s.boot });
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
        await reset(s, (await readJson(req)).ResetType);
        return { status: 204 };
      }
      if (!sys[2] && method === 'GET') {
        await refreshPower(s);
        return {
          status: 200,
          body: computerSystem(s),
          headers: {
            etag: `W/"${s.power}-${s.boot.BootSourceOverrideTarget}-${s.boot.BootSourceOverrideEnabled}"`,
          },
        };
      }
      if (!sys[2] && method === 'PATCH') {
        await patchSystem(s, await readJson(req));
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
