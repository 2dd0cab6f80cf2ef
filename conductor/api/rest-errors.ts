// The REST wire's error path: every error on an operator API route (`/v1/...`) and every request
// no route claims becomes Kiln's one body, {error: {code, message, details}}, with the status
// ERROR_TABLE gives the code. Logged once; unexpected errors answer without internals.
import type { Context, Middleware, Next } from 'koa';
import { errorBody, isKilnError, KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';

export function restErrors(log: Logger): Middleware {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new KilnError(
          'NOT_FOUND',
          `no route for ${ctx.method} ${ctx.path}; see /v1/openapi.json for the API`,
        );
      }
    } catch (e) {
      let err: KilnError;
      if (isKilnError(e)) err = e;
      else if ((e as { status?: number }).status === 405 || (e as { status?: number }).status === 501) {
        err = new KilnError('NOT_FOUND', `${ctx.method} is not supported on ${ctx.path}`, { status: 405 });
      } else {
        // Anything unexpected: log with its stack, answer without internals.
        log.error({ err: e, method: ctx.method, path: ctx.path }, 'request failed');
        err = new KilnError('INTERNAL', 'internal error; see the conductor log for details');
      }
      ctx.status = err.status;
      ctx.body = errorBody(err);
      if (err.status >= 500 && err.code !== 'INTERNAL')
        log.warn({ code: err.code, path: ctx.path, err: err.message }, 'request failed');
    }
  };
}
