// The agent's REST API, shaped exactly like IPA's (api/app.py): the same routes with and without
// the /v1 prefix, WSME-style fault bodies, the token in the POST query string, 409 while busy.
// Ironic's agent client depends on these details (e.g. it looks for "agent is busy" in faults).
//
// Where Kiln is stricter than IPA, fail-closed: a command is accepted only with the token this
// boot was given (no token known = nothing accepted, whatever "required" says), the token is
// checked before a byte of the body is read, and bodies are capped (MAX_BODY) while streaming.
import { createHash, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from '../../shared/log.ts';
import type { AgentFault } from '../../shared/wire/ipa.ts';
import { isAgentRestError } from '../commands/errors.ts';
import type { CommandExecutor } from '../commands/executor.ts';

const MEDIA_TYPE = 'application/vnd.openstack.ironic-python-agent.v1+json';
const DOCS_URL = 'https://docs.openstack.org/ironic-python-agent';
/**
 * The largest command body. The biggest real one is execute_deploy_step(write_image) carrying a
 * config drive, which Ironic caps at 64 MiB of base64 and sends once in the step's args (the node
 * object has it masked); 16 MiB more is ample for the node, ports and image_info around it.
 */
export const MAX_BODY = 80 * 1024 * 1024;

export interface TokenState {
  /** The token from lookup, ipa-agent-token, KILN_AGENT_TOKEN or --agent-token-file; null when none is known. */
  token: string | null;
  /**
   * The conductor said tokens are required (lookup config or ipa-agent-token-required). Kept for
   * the logs: commands need the token either way, and none are accepted while it is unknown.
   */
  required: boolean;
}

export interface AgentAppDeps {
  executor: CommandExecutor;
  tokens: () => TokenState;
  startedAt: number;
  version: string;
  /** True once the conductor advertised the "progress" extension. */
  withProgress: () => boolean;
  log: Logger;
}

class HttpFault extends Error {
  constructor(
    readonly status: number,
    readonly faultstring: string,
  ) {
    super(faultstring);
  }
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Request Entity Too Large',
  500: 'Internal Server Error',
};

/** werkzeug's HTTPException text: "<code> <reason>: <description>". */
function werkzeugFault(status: number, description: string): HttpFault {
  return new HttpFault(status, `${status} ${REASONS[status] ?? ''}: ${description}`);
}

function fault(status: number, faultstring: string): AgentFault {
  return { faultcode: status >= 500 ? 'Server' : 'Client', faultstring };
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * IPA's validate_agent_token, fail-closed: the given token must equal the known one. Unlike IPA,
 * a token-less request is never let through, not even when the conductor did not ask for tokens
 * or no token is known (lookup said "******", or standalone without KILN_AGENT_TOKEN): Ironic
 * since Ussuri sends the token with every command, and "no token on either side" is exactly
 * what an attacker on the provisioning network sends. Compared as SHA-256 digests so the
 * comparison is constant-time and length-independent.
 */
export function tokenValid(state: TokenState, given: string | null): boolean {
  if (!state.token || !given) return false;
  return timingSafeEqual(digest(state.token), digest(given));
}

/** How long a refused client has to read its answer before the connection is dropped. */
const HANG_UP_GRACE_MS = 2000;

/**
 * Answer a request whose body was not (all) read, then hang up, without taking in the rest.
 * Node's own response path would drain the body to keep the connection alive, or, with
 * Connection: close, destroy the socket at once, which resets it and can make the client lose
 * the answer. So the answer is written straight to the socket and the write side closed; the
 * unread body stays in node's request buffer (one high-water mark) and the kernel's, TCP stops
 * the sender, and the socket is destroyed after a grace period.
 */
function answerAndHangUp(ctx: Koa.Context, status: number, payload: AgentFault): void {
  ctx.respond = false;
  const body = Buffer.from(JSON.stringify(payload));
  const head =
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  const socket = ctx.req.socket;
  socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  setTimeout(() => socket.destroy(), HANG_UP_GRACE_MS).unref();
}

/** The body, at most MAX_BODY bytes: a larger Content-Length is refused unread, a longer stream cut off. */
function readBody(ctx: Koa.Context): Promise<string> {
  const tooLarge = () =>
    werkzeugFault(
      413,
      `The data value transmitted exceeds the capacity limit: command bodies are capped at ${MAX_BODY} bytes.`,
    );
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > MAX_BODY) return Promise.reject(tooLarge());
  const req = ctx.req;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) return void chunks.push(c);
      // Stop here, paused: the rest is left unread for answerAndHangUp, and what was buffered
      // goes now rather than when the client gives up.
      done();
      req.pause();
      chunks.length = 0;
      reject(tooLarge());
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onError = (e: Error) => {
      done();
      reject(e);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function queryString(ctx: Koa.Context, key: string): string | null {
  const v = ctx.query[key];
  return typeof v === 'string' ? v : Array.isArray(v) ? (v[0] ?? null) : null;
}

function makeLink(root: string, rel: string, resource = '', bookmark = false): Record<string, string> {
  if (rel === 'describedby') return { href: `${DOCS_URL}/${resource}`, rel, type: 'text/html' };
  const base = bookmark || rel === 'bookmark' ? `${root}/${resource}` : `${root}/v1/${resource}`;
  return { href: base, rel };
}

function versionDoc(root: string) {
  return { id: 'v1', links: [makeLink(root, 'self', 'v1', true), makeLink(root, 'describedby', '', true)] };
}

export function createAgentApp(deps: AgentAppDeps): Koa {
  const app = new Koa();
  const router = new Router();
  let getTokenEnforced = false;

  const root = (ctx: Koa.Context) => `${ctx.protocol}://${ctx.host}`;
  const checkGetToken = (ctx: Koa.Context) => {
    const token = queryString(ctx, 'agent_token');
    // IPA starts checking tokens on GETs once a caller has sent one there, and so does Kiln:
    // Ironic 2023.1 polls the command list without a token, so requiring one would break it,
    // and the records hold no secrets (never the params, so never a config drive or image URL;
    // results are steps, partition UUIDs, the inventory and the agent's own logs). What a
    // command does is guarded by the POST, which always needs the token.
    if (token) getTokenEnforced = true;
    if (getTokenEnforced && !tokenValid(deps.tokens(), token)) throw werkzeugFault(401, 'Token invalid.');
  };

  router.get('/', (ctx) => {
    const r = root(ctx);
    ctx.body = {
      name: 'OpenStack Ironic Python Agent API',
      description: 'Ironic Python Agent is a provisioning agent for OpenStack Ironic',
      versions: [versionDoc(r)],
      default_version: versionDoc(r),
    };
  });

  router.get(['/v1', '/v1/'], (ctx) => {
    const r = root(ctx);
    ctx.body = {
      commands: [makeLink(r, 'self', 'commands'), makeLink(r, 'bookmark', 'commands')],
      status: [makeLink(r, 'self', 'status'), makeLink(r, 'bookmark', 'status')],
      media_types: [{ base: 'application/json', type: MEDIA_TYPE }],
      ...versionDoc(r),
    };
  });

  router.get(['/v1/status', '/v1/status/', '/status', '/status/'], (ctx) => {
    const running = deps.executor.current();
    ctx.body = {
      started_at: deps.startedAt / 1000,
      version: deps.version,
      // Kiln addition; Ironic never reads the status document.
      kiln_progress: running?.progress ?? null,
    };
  });

  router.get(['/v1/commands', '/v1/commands/', '/commands', '/commands/'], (ctx) => {
    checkGetToken(ctx);
    const p = deps.withProgress();
    ctx.body = { commands: deps.executor.runs.map((r) => r.serialize(p)) };
  });

  router.get(['/v1/commands/:id', '/commands/:id'], async (ctx) => {
    checkGetToken(ctx);
    const run = deps.executor.get(ctx.params.id!);
    if (!run) throw new HttpFault(404, `Not found: Command with id ${ctx.params.id} not found.`);
    if (queryString(ctx, 'wait')?.toLowerCase() === 'true') await run.done;
    ctx.body = run.serialize(deps.withProgress());
  });

  router.post(['/v1/commands', '/v1/commands/', '/commands', '/commands/'], async (ctx) => {
    // The token first: an unauthenticated caller gets its 401 before one body byte is read.
    if (!tokenValid(deps.tokens(), queryString(ctx, 'agent_token')))
      throw werkzeugFault(401, 'Token invalid.');
    const text = await readBody(ctx);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw werkzeugFault(400, `Failed to decode JSON object: ${(e as Error).message}`);
    }
    const b = body as { name?: unknown; params?: unknown } | null;
    if (
      typeof b !== 'object' ||
      b === null ||
      Array.isArray(b) ||
      !('name' in b) ||
      !('params' in b) ||
      typeof b.params !== 'object' ||
      b.params === null ||
      Array.isArray(b.params)
    ) {
      throw werkzeugFault(400, 'Missing or invalid name or params');
    }
    const run = await deps.executor.execute(String(b.name), b.params as Record<string, unknown>);
    if (queryString(ctx, 'wait')?.toLowerCase() === 'true') await run.done;
    ctx.body = run.serialize(deps.withProgress());
  });

  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.body === undefined && ctx.status === 404) {
        throw werkzeugFault(
          404,
          'The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.',
        );
      }
      if (ctx.body === undefined && ctx.status === 405) {
        throw werkzeugFault(405, 'The method is not allowed for the requested URL.');
      }
    } catch (e) {
      let status: number;
      let text: string;
      if (e instanceof HttpFault) {
        status = e.status;
        text = e.faultstring;
      } else if (isAgentRestError(e)) {
        status = e.code;
        text = e.message;
      } else {
        status = 500;
        text = `Internal Server Error: ${(e as Error).message ?? String(e)}`;
        deps.log.error({ err: e, path: ctx.path }, 'agent API request failed');
      }
      // Whatever refused a request it did not read (401, 413, 404, 405): answer and hang up.
      if (!ctx.req.complete) return answerAndHangUp(ctx, status, fault(status, text));
      ctx.status = status;
      ctx.body = fault(status, text);
    }
    ctx.type = 'application/json';
  });
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));
  app.on('error', (err) => deps.log.debug({ err: String(err) }, 'agent API connection error'));
  return app;
}
