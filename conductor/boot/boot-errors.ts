// The boot wire's error path. iPXE and firmware read text, not JSON: on the script route an error
// becomes a `#!ipxe` script that echoes it and then exits (the request was wrong; asking again
// won't help) or, for a server-side failure, waits and fetches the script again; on file routes
// (kernel, initramfs, loaders) it is the message as plain text. The status is ERROR_TABLE's.
import type { Context, Middleware, Next } from 'koa';
import { isKilnError, KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';

/** Seconds a script waits before fetching itself again after a server-side failure. */
export const SCRIPT_RETRY_S = 10;

/** One echo line: iPXE expands ${…} and a newline would end the command. */
function echoText(message: string): string {
  return message.replace(/[\r\n]+/g, ' ').replace(/\$\{/g, '$ {');
}

/** The script for an error: echo it, then exit, or (with `retryUrl`) wait and fetch that URL again. */
export function errorScript(message: string, retryUrl?: string): string {
  const lines = ['#!ipxe', `echo Kiln: ${echoText(message)}`];
  if (retryUrl) {
    lines.push(
      `echo Kiln: retrying in ${SCRIPT_RETRY_S} s`,
      `sleep ${SCRIPT_RETRY_S}`,
      `chain --replace --autofree ${retryUrl}`,
    );
  } else lines.push('exit');
  return `${lines.join('\n')}\n`;
}

export function bootErrors(
  log: Logger,
  opts: { isScript: (ctx: Context) => boolean } = { isScript: (ctx) => ctx.path === '/boot/ipxe' },
): Middleware {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (e) {
      let err: KilnError;
      if (isKilnError(e)) err = e;
      else {
        log.error({ err: e, method: ctx.method, path: ctx.path }, 'boot request failed');
        err = new KilnError('INTERNAL', 'internal error; see the conductor log for details');
      }
      ctx.status = err.status;
      ctx.type = 'text/plain';
      if (!opts.isScript(ctx)) ctx.body = `${err.message}\n`;
      else {
        const retry = err.status >= 500 ? `${ctx.protocol}://${ctx.host}${ctx.originalUrl}` : undefined;
        ctx.body = errorScript(err.message, retry);
      }
    }
  };
}
