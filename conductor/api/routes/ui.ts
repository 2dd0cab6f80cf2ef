// GET /ui and /ui/*: the web console's static files (dist/ui, built by scripts/build-ui.mjs). The
// files hold no data: every API call the page makes carries the token its user signed in with, so
// they are served without a token. Only plain file names in `dir` are served (no sub-folders, no
// "..", no dot files), each with headers that keep the page to its own origin: a CSP without inline
// script, no framing, no sniffing, no Referer (the URL's #fragment never leaves, but be strict).
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import Router from '@koa/router';
import type { Context } from 'koa';
import { KilnError } from '../../../shared/errors.ts';

export interface UiRouterOptions {
  /** The folder with index.html, app.js and app.css. */
  dir: string;
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  png: 'image/png',
  svg: 'image/svg+xml',
  ico: 'image/x-icon',
};

/** A name the console's build writes; anything else is not ours to serve. */
const FILE = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\.(html|js|css|png|svg|ico)$/;

export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function secureHeaders(ctx: Context): void {
  ctx.set('Content-Security-Policy', UI_CSP);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
  ctx.set('Cross-Origin-Resource-Policy', 'same-origin');
  // Small files, rebuilt with each release: always revalidate rather than run a stale console.
  ctx.set('Cache-Control', 'no-cache');
}

export function uiRouter(opts: UiRouterOptions): Router {
  const dir = resolve(opts.dir);
  // strict: /ui and /ui/ are different routes (the first redirects to the second).
  const r = new Router({ strict: true });

  const serve = async (ctx: Context, name: string) => {
    secureHeaders(ctx);
    if (!FILE.test(name)) throw new KilnError('NOT_FOUND', `no web console file ${name}`);
    let body: Buffer;
    try {
      body = await readFile(join(dir, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      throw new KilnError(
        'NOT_FOUND',
        name === 'index.html'
          ? `the web console is not built (no ${join(dir, name)}); run npm run build`
          : `no web console file ${name}`,
      );
    }
    ctx.type = TYPES[name.slice(name.lastIndexOf('.') + 1)]!;
    ctx.body = body;
  };

  // Relative links in index.html (app.js, app.css) need the trailing slash.
  r.get('/ui', (ctx) => {
    secureHeaders(ctx);
    ctx.status = 308;
    ctx.redirect('/ui/');
  });
  r.get('/ui/', (ctx) => serve(ctx, 'index.html'));
  r.get('/ui/:file', (ctx) => serve(ctx, ctx.params.file!));
  return r;
}
