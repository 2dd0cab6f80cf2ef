// The Ironic-shaped wire's error path (ramdisk lookup and heartbeat): every error becomes Ironic's
// body {"error_message": "<json string>"} whose faultstring is the error's message, with the
// status ERROR_TABLE gives its code, so a stock ironic-python-agent reads Kiln's errors as
// Ironic's. Unexpected errors are logged and answer Ironic's bare 500.
import type { Context, Middleware, Next } from 'koa';
import { isKilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';

export function ironicErrorBody(status: number, message: string): { error_message: string } {
  return {
    error_message: JSON.stringify({
      faultcode: status >= 500 ? 'Server' : 'Client',
      faultstring: message,
      debuginfo: null,
    }),
  };
}

export function ironicErrors(log: Logger): Middleware {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (e) {
      let status = 500;
      let message = 'Internal error';
      if (isKilnError(e)) {
        status = e.status;
        message = e.message;
      } else {
        log.error({ err: e, path: ctx.path }, 'ramdisk API request failed');
      }
      ctx.status = status;
      ctx.body = ironicErrorBody(status, message);
    }
  };
}
