// Maps a TFTP filename to a file under the read-only root, refusing anything that could leave it.
import { realpath, stat } from 'node:fs/promises';
import { posix, sep } from 'node:path';

export type Resolved =
  | { ok: true; path: string; size: number }
  | { ok: false; code: 'not-found' | 'denied'; reason: string };

export async function resolveUnderRoot(root: string, filename: string): Promise<Resolved> {
  // Clients differ: iPXE sends "undionly.kpxe", some ROMs "/undionly.kpxe"; both are relative to
  // the root. Control bytes, backslashes and any ".." segment are refused before touching disk.
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
  let real: string;
  try {
    const realRoot = await realpath(root);
    real = await realpath(`${realRoot}/${rel}`);
    // A symlink inside the root may point outside it; follow it and check where it landed.
    if (!real.startsWith(realRoot + sep))
      return { ok: false, code: 'denied', reason: 'file resolves outside the TFTP root' };
    const st = await stat(real);
    if (!st.isFile()) return { ok: false, code: 'not-found', reason: 'not a regular file' };
    return { ok: true, path: real, size: st.size };
  } catch {
    return { ok: false, code: 'not-found', reason: 'no such file' };
  }
}
