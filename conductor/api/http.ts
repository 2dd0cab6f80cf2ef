// Edge helpers shared by every route: the access log, a JSON body reader with a size limit, and
// zod validation that reports every problem at once. Each wire's error path is its own module
// (rest-errors.ts here, ramdisk/ironic-errors.ts, boot/boot-errors.ts).
import type { Context, Middleware } from 'koa';
import type { z } from 'zod';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { principalOf } from '../auth/middleware.ts';

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

const ownBody = new WeakSet<object>();

/**
 * Marks a router whose routes read their own request bodies, so that reading errors are answered
 * in that router's wire shape (the Ironic-shaped ramdisk API) instead of the REST one: jsonBody
 * leaves its requests alone.
 */
export function readsOwnBody<R extends object>(router: R): R {
  ownBody.add(router);
  return router;
}

export function isReadingOwnBody(router: object): boolean {
  return ownBody.has(router);
}

/**
 * Read and parse a JSON body; refuse other media types, oversize bodies and bad JSON with 400s.
 * Requests `skip` claims are passed on unread.
 */
export function jsonBody(limit: number, skip?: (ctx: Context) => boolean): Middleware {
  return async (ctx, next) => {
    if (!['POST', 'PUT', 'PATCH'].includes(ctx.method) || skip?.(ctx)) return next();
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

/** Who is asking, for the event log: the name of the API token the request carried. */
export function actorOf(ctx: Context): string {
  return principalOf(ctx)?.name ?? 'api';
}
