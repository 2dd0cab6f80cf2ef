// HTTP side of booting: the per-node iPXE script (rendered from the conductor's lookup on every
// request), the kernel and initramfs, and the iPXE loaders for UEFI HTTP boot. Files are served
// with single-range Range support so iPXE and the agent can resume.
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Logger } from '../../shared/log.ts';
import { type BootScriptInput, renderBootScript } from './ipxe/script.ts';

export interface BootRouterDeps {
  /** What this MAC should boot now. The conductor's node state decides (enroll, deploy, local, ignore). */
  lookup(mac: string, ctx: { remoteAddress: string }): Promise<BootScriptInput>;
  /** Directory holding kernel and initramfs, served under /boot/files/<name>. */
  filesDir: string;
  /** Directory holding the iPXE loaders (usually the TFTP root), served under /boot/loaders/<name>. */
  loadersDir?: string;
  log: Logger;
}

const MAC_RE = /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i;

type Range = { start: number; end: number } | 'unsatisfiable' | null;

/** One `bytes=` range (RFC 9110 14.1.2). Multiple ranges → null (serve the whole file, which is allowed). */
export function parseRange(header: string | undefined, size: number): Range {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null;
  const [, a, b] = m;
  if (a === '' && b === '') return null;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

async function sendFile(ctx: Context, dir: string, name: string): Promise<void> {
  // One path segment, no dot files, nothing that normalises upwards.
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(name)) {
    ctx.status = 404;
    return;
  }
  let path: string;
  let size: number;
  let mtime: Date;
  try {
    const root = await realpath(dir);
    path = await realpath(`${root}/${name}`);
    if (!path.startsWith(root + sep)) throw new Error('outside');
    const st = await stat(path);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
    mtime = st.mtime;
  } catch {
    ctx.status = 404;
    ctx.body = `no such boot file: ${name}\n`;
    return;
  }
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Last-Modified', mtime.toUTCString());
  ctx.type = 'application/octet-stream';
  const range = parseRange(ctx.get('Range') || undefined, size);
  if (range === 'unsatisfiable') {
    ctx.status = 416;
    ctx.set('Content-Range', `bytes */${size}`);
    ctx.body = '';
    return;
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  ctx.status = range ? 206 : 200;
  if (range) ctx.set('Content-Range', `bytes ${start}-${end}/${size}`);
  ctx.length = size === 0 ? 0 : end - start + 1;
  if (ctx.method === 'HEAD' || size === 0) {
    if (size === 0) ctx.body = '';
    return;
  }
  ctx.body = createReadStream(path, { start, end });
}

export function createBootRouter(deps: BootRouterDeps): Router {
  const log = deps.log.child({ component: 'boot-http' });
  const r = new Router({ prefix: '/boot' });
  r.get('/ipxe', async (ctx) => {
    const mac = String(ctx.query.mac ?? '');
    if (!MAC_RE.test(mac)) {
      ctx.status = 400;
      ctx.type = 'text/plain';
      ctx.body = `#!ipxe\necho Kiln: the script URL needs ?mac=aa:bb:cc:dd:ee:ff (got ${JSON.stringify(mac).slice(0, 40)})\nexit\n`;
      return;
    }
    const norm = mac.toLowerCase().replace(/-/g, ':');
    const input = await deps.lookup(norm, { remoteAddress: ctx.ip });
    ctx.type = 'text/plain';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = renderBootScript(input);
    log.info({ mac: norm, action: input.action, from: ctx.ip }, 'served iPXE script');
  });
  r.get('/files/:name', (ctx) => sendFile(ctx, deps.filesDir, ctx.params.name!));
  r.get('/loaders/:name', async (ctx) => {
    if (!deps.loadersDir) {
      ctx.status = 404;
      return;
    }
    await sendFile(ctx, deps.loadersDir, ctx.params.name!);
  });
  return r;
}
