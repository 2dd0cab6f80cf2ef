// Maps a TFTP filename to a file under the read-only root, refusing anything that could leave it.
// The one way out: a configured iPXE loader that is a symlink leading outside the root (Debian's
// /usr/lib/ipxe/ipxe.efi → /boot/ipxe.efi). The boot services register those by name when they
// start (followOutside), and only that name, resolving to that same file, is served.
import { realpath, stat } from 'node:fs/promises';
import { posix, sep } from 'node:path';

export type Resolved =
  | { ok: true; path: string; size: number }
  | { ok: false; code: 'not-found' | 'denied'; reason: string };

type Name = { ok: true; rel: string } | { ok: false; code: 'denied'; reason: string };

/** The name relative to the root, or why it is refused, before touching disk. */
function checkName(filename: string): Name {
  // Clients differ: iPXE sends "undionly.kpxe", some ROMs "/undionly.kpxe"; both are relative to
  // the root. Control bytes, backslashes and any ".." segment are refused.
  const bad = [...filename].some((c) => c.charCodeAt(0) < 0x20 || c === '\\');
  if (filename.length === 0 || filename.length > 255 || bad) {
    return {
      ok: false,
      code: 'denied',
      reason: 'file name is empty, too long or has control characters or backslashes',
    };
  }
  const segments = filename.split('/');
  if (segments.includes('..')) return { ok: false, code: 'denied', reason: 'file name contains ".."' };
  const rel = posix.normalize(segments.filter((s) => s !== '' && s !== '.').join('/'));
  if (rel === '.' || rel.startsWith('..'))
    return { ok: false, code: 'denied', reason: 'file name names the root' };
  return { ok: true, rel };
}

/** Registered loaders that lead out of their root: "realRoot\0rel" → target and how many hold it. */
const outside = new Map<string, { target: string; holds: number }>();
const outsideKey = (realRoot: string, rel: string) => `${realRoot}\0${rel}`;

async function lookUp(
  root: string,
  filename: string,
  mayLeave: (realRoot: string, rel: string, real: string) => boolean,
): Promise<Resolved & { realRoot?: string; rel?: string; outside?: boolean }> {
  const name = checkName(filename);
  if (!name.ok) return name;
  try {
    const realRoot = await realpath(root);
    const real = await realpath(`${realRoot}/${name.rel}`);
    const inside = real.startsWith(realRoot + sep);
    // A symlink inside the root may point outside it; follow it and check where it landed.
    if (!inside && !mayLeave(realRoot, name.rel, real))
      return { ok: false, code: 'denied', reason: 'file resolves outside the TFTP root' };
    const st = await stat(real);
    if (!st.isFile()) return { ok: false, code: 'not-found', reason: 'not a regular file' };
    return { ok: true, path: real, size: st.size, realRoot, rel: name.rel, outside: !inside };
  } catch {
    return { ok: false, code: 'not-found', reason: 'no such file' };
  }
}

/** A client-supplied name: must stay inside the root, unless it is a registered loader. */
export async function resolveUnderRoot(root: string, filename: string): Promise<Resolved> {
  const r = await lookUp(
    root,
    filename,
    (realRoot, rel, real) => outside.get(outsideKey(realRoot, rel))?.target === real,
  );
  return r.ok ? { ok: true, path: r.path, size: r.size } : r;
}

/**
 * A configured loader: symlinks are followed wherever they lead (the operator named the file).
 * `outside` says the real file lies outside the root; followOutside() then lets clients have it.
 */
export async function resolveConfigured(
  root: string,
  name: string,
): Promise<
  | { ok: true; path: string; size: number; outside: boolean; realRoot: string; rel: string }
  | { ok: false; code: 'not-found' | 'denied'; reason: string }
> {
  const r = await lookUp(root, name, () => true);
  if (!r.ok) return r;
  return { ok: true, path: r.path, size: r.size, outside: r.outside!, realRoot: r.realRoot!, rel: r.rel! };
}

/** Serve `rel` under `realRoot` from `target` outside it, until the returned function is called. */
export function followOutside(realRoot: string, rel: string, target: string): () => void {
  const key = outsideKey(realRoot, rel);
  const cur = outside.get(key);
  // A second holder with another target (the link changed between starts) takes over.
  if (cur && cur.target === target) cur.holds++;
  else outside.set(key, { target, holds: 1 });
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const e = outside.get(key);
    if (!e || e.target !== target) return;
    if (--e.holds === 0) outside.delete(key);
  };
}
