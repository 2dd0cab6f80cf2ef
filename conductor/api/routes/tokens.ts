// /v1/tokens: operator API tokens (admin only, enforced by the auth middleware's role table).
// A new token's secret is in the creation answer and nowhere else.
import Router from '@koa/router';
import { z } from 'zod';
import { KilnError } from '../../../shared/errors.ts';
import { createToken, parseExpiry, ROLES, tokenView } from '../../auth/tokens.ts';
import type { ApiRole } from '../../store/store.ts';
import type { ApiDeps } from '../app.ts';
import { actorOf, bodyOf, parse } from '../http.ts';

const TokenCreate = z.strictObject({
  name: z.string().min(1),
  role: z.enum(ROLES as [ApiRole, ...ApiRole[]]),
  /** A duration (30d, 12h) or an ISO time; absent: never expires. */
  expires: z.string().min(1).optional(),
});

export function tokensRouter(deps: Pick<ApiDeps, 'store' | 'log'>): Router {
  const { store } = deps;
  const r = new Router({ prefix: '/v1/tokens' });

  r.get('/', async (ctx) => {
    ctx.body = { tokens: (await store.tokens.list()).map(tokenView) };
  });

  r.post('/', async (ctx) => {
    const input = parse(TokenCreate, bodyOf(ctx), 'token');
    const { record, token } = await createToken(store.tokens, {
      name: input.name,
      role: input.role,
      expiresAt: parseExpiry(input.expires),
    });
    deps.log.info({ token: record.name, role: record.role, by: actorOf(ctx) }, 'API token created');
    ctx.status = 201;
    ctx.body = { ...tokenView(record), token };
  });

  r.delete('/:ident', async (ctx) => {
    const t = await store.tokens.find(ctx.params.ident!);
    if (!t) throw new KilnError('NOT_FOUND', `no API token ${ctx.params.ident}; see kiln token list`);
    await store.tokens.delete(t.id);
    deps.log.info({ token: t.name, by: actorOf(ctx) }, 'API token revoked');
    ctx.status = 204;
  });

  return r;
}
