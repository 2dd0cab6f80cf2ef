// The console's one way to the operator API: same origin, the signed-in token as a bearer token,
// Kiln's error body ({error: {code, message}}) turned into an ApiError whose message is the API's
// own (it already says what failed and what to do next). A 401 signs the user out.

const TOKEN_KEY = 'kiln.token';

/** The token lives in sessionStorage: gone with the tab, never in a cookie the browser sends on its own. */
export const session = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (t: string) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
  }
}

type Unauthorized = (message: string) => void;
let onUnauthorized: Unauthorized = () => {};
/** Where a 401 goes: the app shows the sign-in page with the API's message. */
export function whenUnauthorized(f: Unauthorized): void {
  onUnauthorized = f;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const token = session.get();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', `cannot reach the conductor (${(e as Error).message}); is it running?`);
  }
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    const err = (parsed as { error?: { code?: string; message?: string; details?: unknown } } | null)?.error;
    const e = new ApiError(
      res.status,
      err?.code ?? `HTTP_${res.status}`,
      err?.message ?? `${method} ${path} failed with HTTP ${res.status}`,
      err?.details ?? null,
    );
    if (res.status === 401) onUnauthorized(e.message);
    throw e;
  }
  return parsed as T;
}
