// What an image URL may name, and how it is shown. The catalog is checked when an image is
// created and again by the cache before every origin request (the config may have changed since),
// so the conductor never fetches a scheme or a host the operator did not allow: the cache runs
// on the conductor's network, and an image URL must not become a way to reach what sits there.

export const ALLOWED_SCHEMES = ['http', 'https'] as const;

/** The host part of a URL as compared with images.allowed_hosts: lower case, no brackets, no trailing dot. */
function hostOf(u: URL): string {
  return u.hostname
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
}

/**
 * Whether `host` is allowed: an entry is an exact host name (or address), or `.suffix` for any
 * host under that domain (`.example.com` allows a.example.com, not example.com itself, nor
 * badexample.com). An empty list allows any host.
 */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const h = host.toLowerCase().replace(/\.$/, '');
  return allowed.some((entry) => {
    const e = entry.trim().toLowerCase().replace(/\.$/, '');
    if (!e) return false;
    return e.startsWith('.') ? h.endsWith(e) && h.length > e.length : h === e;
  });
}

/**
 * Why the conductor must not fetch `url`, or null when it may: the scheme is http(s) and the host
 * is in `allowed` (when that is non-empty). The reason names the URL masked, never its secrets.
 */
export function imageUrlProblem(url: string, allowed: readonly string[]): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `image URL ${maskUrl(url)} is not a valid URL`;
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (!(ALLOWED_SCHEMES as readonly string[]).includes(scheme))
    return `image URL scheme ${scheme}: is not allowed; use ${ALLOWED_SCHEMES.join(' or ')}`;
  const host = hostOf(u);
  if (!hostAllowed(host, allowed))
    return `image URL host ${host} is not in images.allowed_hosts (${allowed.join(', ')}); serve the image from an allowed host or add the host to the config`;
  return null;
}

/** Query parameters that carry credentials in real image URLs (pre-signed S3/GCS/Azure links, tokens). */
const SECRET_PARAM = /token|sig|password|passwd|secret|key|credential|auth/i;

/**
 * An image URL fit for logs, events, errors and API output: user:password replaced, and the
 * value of every query parameter named like a credential (token, signature, password, key…)
 * replaced by ***. The rest stays, so the operator still sees which origin and path it is.
 */
export function maskUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '<invalid URL>';
  }
  if (u.username || u.password) {
    u.username = '***';
    u.password = '';
  }
  if (u.search) {
    // Rebuilt by hand so unmasked parameters keep their own spelling and order.
    const parts = u.search
      .slice(1)
      .split('&')
      .map((kv) => {
        const i = kv.indexOf('=');
        const name = i < 0 ? kv : kv.slice(0, i);
        let decoded = name;
        try {
          decoded = decodeURIComponent(name.replace(/\+/g, ' '));
        } catch {
          // A malformed escape: judge the raw name.
        }
        return SECRET_PARAM.test(decoded) ? `${name}=***` : kv;
      });
    u.search = `?${parts.join('&')}`;
  }
  return u.toString();
}
