// The operator API's front door: every request but the version documents carries a bearer API
// token (Authorization: Bearer, or X-Auth-Token as Ironic's clients send), checked before a byte
// of its body is read; then the token's role must cover what the request does.
import type { Context, Middleware } from 'koa';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { ApiRole, TokenStore } from '../store/store.ts';
import { allows, requiredRole } from './roles.ts';
import { hashToken } from './tokens.ts';

/** Who a request acts as: a token's name and role, or the local user when auth is off. */
export interface Principal {
  name: string;
  role: ApiRole;
  tokenId: string | null;
}

export interface AuthOptions {
  /** null: authentication off (only allowed on loopback, checked by the config). */
  tokens: TokenStore | null;
  log: Logger;
  now?: () => number;
}

/**
 * What needs no token: version discovery (as Ironic's root and /v1 documents), the health probes
 * (one word each), and the web console's static files (they hold no data; every call they make
 * carries the signed-in token).
 */
function isPublic(ctx: Context): boolean {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return false;
  return (
    ['/', '/v1', '/v1/', '/healthz', '/readyz'].includes(ctx.path) ||
    ctx.path === '/ui' ||
    ctx.path.startsWith('/ui/')
  );
}

function bearer(ctx: Context): string | null {
  const auth = ctx.get('authorization');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
  if (m) return m[1]!;
  const header = ctx.get('x-auth-token');
  if (header) return header;
  // A browser's EventSource cannot set headers: only the event stream takes its token from the
  // URL (the access log records paths, never query strings).
  if (ctx.method === 'GET' && ctx.path === '/v1/events/stream' && typeof ctx.query.access_token === 'string')
    return ctx.query.access_token;
  return null;
}

export function principalOf(ctx: Context): Principal | undefined {
  return (ctx.state as { principal?: Principal }).principal;
}

const TOUCH_EVERY_MS = 60_000;

export function authenticate(opts: AuthOptions): Middleware {
  const now = opts.now ?? Date.now;
  const touched = new Map<string, number>();
  const refuse = (ctx: Context, message: string): never => {
    ctx.set('WWW-Authenticate', 'Bearer realm="kiln"');
    throw new KilnError('UNAUTHENTICATED', message);
  };
  return async (ctx, next) => {
    if (isPublic(ctx)) return next();
    let principal: Principal;
    if (!opts.tokens) {
      // Auth off: the config allows that on loopback only, where whoever connects is local.
      const who = ctx.get('x-kiln-actor');
      principal = {
        name: who && /^[\w.@:-]{1,64}$/.test(who) ? `local:${who}` : 'local',
        role: 'admin',
        tokenId: null,
      };
    } else {
      const token = bearer(ctx);
      if (!token)
        refuse(
          ctx,
          'this API needs a token: send Authorization: Bearer <token> (the CLI reads KILN_TOKEN or token: in its config file); an admin creates one with kiln token create',
        );
      const record = await opts.tokens.getByHash(hashToken(token!));
      // One message for unknown and revoked: a guesser learns nothing.
      if (!record) refuse(ctx, 'the API token is not valid (unknown or revoked); ask an admin for one');
      if (record!.expires_at && Date.parse(record!.expires_at) <= now())
        refuse(
          ctx,
          `API token ${record!.name} expired at ${record!.expires_at}; ask an admin for a new one (kiln token create)`,
        );
      principal = { name: record!.name, role: record!.role, tokenId: record!.id };
      const last = touched.get(record!.id) ?? 0;
      if (now() - last > TOUCH_EVERY_MS) {
        touched.set(record!.id, now());
        opts.tokens
          .touch(record!.id, new Date(now()).toISOString())
          .catch((e) => opts.log.warn({ err: e, token: record!.name }, 'could not record token use'));
      }
    }
    const need = requiredRole(ctx.method, ctx.path);
    if (!allows(principal.role, need))
      throw new KilnError(
        'FORBIDDEN',
        `token ${principal.name} has role ${principal.role}; ${ctx.method} ${ctx.path} needs ${need}`,
        { details: { role: principal.role, needs: need } },
      );
    (ctx.state as { principal?: Principal }).principal = principal;
    return next();
  };
}
