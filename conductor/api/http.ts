// Edge helpers shared by every route: the error middleware (one error shape, logged once), a
// JSON body reader with a size limit, and zod validation that reports every problem at once.
import type { Context, Middleware, Next } from 'koa';
import type { z } from 'zod';
import { errorBody, isKilnError, KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';

export function errorMiddleware(log: Logger): Middleware {
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

export function accessLog(log: Logger): Middleware {
  return async (ctx, next) => {
    const start = performance.now();
    await next();
    log.debug(
      { method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(performance.now() - start) },
      'request',
    );
  };
}

/** Read and parse a JSON body; refuse other media types, oversize bodies and bad JSON with 400s. */
export function jsonBody(limit: number): Middleware {
  return async (ctx, next) => {
    if (!['POST', 'PUT', 'PATCH'].includes(ctx.method)) return next();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of ctx.req) {
      size += (chunk as Buffer).length;
      // Past the limit, keep reading but drop the bytes: answering before the client finished
      // sending would reset the connection under it instead of delivering the 413.
      if (size <= limit) chunks.push(chunk as Buffer);
    }
    if (size > limit)
      throw new KilnError('VALIDATION_FAILED', `request body exceeds ${limit} bytes`, { status: 413 });
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') {
      (ctx.request as { body?: unknown }).body = undefined;
      return next();
    }
    const type = ctx.get('content-type');
    if (type && !/json/i.test(type)) {
      throw new KilnError('VALIDATION_FAILED', `request body must be application/json, got ${type}`, {
        status: 415,
      });
    }
    try {
      (ctx.request as { body?: unknown }).body = JSON.parse(text);
    } catch (e) {
      throw new KilnError('VALIDATION_FAILED', `request body is not valid JSON: ${(e as Error).message}`);
    }
    return next();
  };
}

export function bodyOf(ctx: Context): unknown {
  return (ctx.request as { body?: unknown }).body;
}

/** Validate input against a schema; all problems in one 400, each with its path. */
export function parse<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  const details = r.error.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
  throw new KilnError(
    'VALIDATION_FAILED',
    `invalid ${what}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
    {
      details,
    },
  );
}

/** Who is asking, for the event log. The API has no users yet; clients may name themselves. */
export function actorOf(ctx: Context): string {
  const who = ctx.get('x-kiln-actor');
  return who && /^[\w.@:-]{1,64}$/.test(who) ? who : 'api';
}
