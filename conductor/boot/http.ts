// HTTP side of booting: the per-node iPXE script (rendered from the conductor's lookup on every
// request), the kernel and initramfs, and the iPXE loaders for UEFI HTTP boot. Files are served
// with single-range Range support so iPXE and the agent can resume.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import Router from '@koa/router';
import type { Context } from 'koa';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { normaliseMac } from '../../shared/mac.ts';
import { bootErrors } from './boot-errors.ts';
import { type BootScriptInput, renderBootScript } from './ipxe/script.ts';
import { resolveUnderRoot } from './tftp/resolve.ts';

export interface BootRouterDeps {
  /** What this MAC should boot now. The conductor's node state decides (enroll, deploy, local, ignore). */
  lookup(mac: string, ctx: { remoteAddress: string }): Promise<BootScriptInput>;
  /** Directory holding kernel and initramfs (kiln ramdisk build --out), served under /boot/files/<name>. */
  filesDir: string;
  /** Directory holding the iPXE loaders (usually the TFTP root), served under /boot/loaders/<name>. */
  loadersDir?: string;
  log: Logger;
}

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

/** The files `kiln ramdisk build --out DIR` writes that iPXE loads, by their names under /boot/files/. */
export const RAMDISK_FILES = { kernel: 'kernel', initrd: 'initramfs' } as const;

/** What to do about a missing ramdisk: the 404 body says it, the log and the start-up checks too. */
export function ramdiskMissing(dir: string, missing: string[]): string {
  const abs = resolve(dir);
  return `no ramdisk in ${abs} (${missing.join(' and ')} missing); build it: kiln ramdisk build --out ${abs}, or point boot.ramdisk_dir at a build`;
}

/** Sends `name` from `dir`; false if there is no such file (the caller throws its 404). */
async function sendFile(ctx: Context, dir: string, name: string): Promise<boolean> {
  const notFound = () => false;
  // One path segment, no dot files, nothing that normalises upwards.
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(name)) return notFound();
  // The same rules as TFTP: inside the root, or a configured loader registered by the boot services.
  const r = await resolveUnderRoot(dir, name);
  if (!r.ok) return notFound();
  const path = r.path;
  let size: number;
  let mtime: Date;
  try {
    const st = await stat(path);
    size = st.size;
    mtime = st.mtime;
  } catch {
    return notFound();
  }
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Last-Modified', mtime.toUTCString());
  ctx.type = 'application/octet-stream';
  const range = parseRange(ctx.get('Range') || undefined, size);
  if (range === 'unsatisfiable') {
    ctx.status = 416;
    ctx.set('Content-Range', `bytes */${size}`);
    ctx.body = '';
    return true;
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  ctx.status = range ? 206 : 200;
  if (range) ctx.set('Content-Range', `bytes ${start}-${end}/${size}`);
  ctx.length = size === 0 ? 0 : end - start + 1;
  if (ctx.method === 'HEAD' || size === 0) {
    if (size === 0) ctx.body = '';
    return true;
  }
  ctx.body = createReadStream(path, { start, end });
  return true;
}

export function createBootRouter(deps: BootRouterDeps): Router {
  const log = deps.log.child({ component: 'boot-http' });
  const r = new Router({ prefix: '/boot' });
  // The boot wire's one error path: scripts answer errors as iPXE scripts, files as plain text.
  r.use(bootErrors(log));
  r.get('/ipxe', async (ctx) => {
    const mac = String(ctx.query.mac ?? '');
    const norm = normaliseMac(mac);
    if (!norm) {
      throw new KilnError(
        'VALIDATION_FAILED',
        `the script URL needs ?mac=aa:bb:cc:dd:ee:ff (got ${JSON.stringify(mac).slice(0, 40)})`,
      );
    }
    const input = await deps.lookup(norm, { remoteAddress: ctx.ip });
    ctx.type = 'text/plain';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = renderBootScript(input);
    log.info({ mac: norm, action: input.action, from: ctx.ip }, 'served iPXE script');
  });
  // A missing ramdisk is logged once a minute per file, not for every retry of every machine.
  const warned = new Map<string, number>();
  r.get('/files/:name', async (ctx) => {
    const name = ctx.params.name!;
    const ramdisk = Object.values<string>(RAMDISK_FILES).includes(name);
    const missing = ramdisk ? ramdiskMissing(deps.filesDir, [name]) : `no such boot file: ${name}`;
    if (await sendFile(ctx, deps.filesDir, name)) return;
    const last = warned.get(name) ?? 0;
    if (ramdisk && Date.now() - last > 60_000 && warned.size < 100) {
      warned.set(name, Date.now());
      log.warn({ file: name, dir: resolve(deps.filesDir), from: ctx.ip }, missing);
    }
    throw new KilnError('NOT_FOUND', missing);
  });
  r.get('/loaders/:name', async (ctx) => {
    const name = ctx.params.name!;
    if (!deps.loadersDir)
      throw new KilnError('NOT_FOUND', `no such loader: ${name}; this conductor has no loaders directory`);
    if (!(await sendFile(ctx, deps.loadersDir, name)))
      throw new KilnError(
        'NOT_FOUND',
        `no such loader: ${name} in ${resolve(deps.loadersDir)} (boot.tftp.root)`,
      );
  });
  return r;
}
