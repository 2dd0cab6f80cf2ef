// Which actions to offer: the API has no "who am I" yet, so the console asks what it can without
// changing anything. GET /v1/whoami is used when a conductor has it; otherwise GET /v1/tokens
// answers 200 to an admin and, to anyone else, a 403 whose details name the token's role.
// Either way the API stays the judge: an action it refuses shows the API's message.
import { ApiError, api } from './api.ts';
import type { Role } from './types.ts';

const ROLES: readonly Role[] = ['admin', 'operator', 'reader'];

function asRole(v: unknown): Role {
  return ROLES.includes(v as Role) ? (v as Role) : 'unknown';
}

export async function detectRole(): Promise<{ role: Role; name: string | null }> {
  try {
    const me = await api<{ name?: string; role?: string }>('GET', '/v1/whoami');
    return { role: asRole(me.role), name: me.name ?? null };
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
  }
  try {
    await api('GET', '/v1/tokens');
    return { role: 'admin', name: null };
  } catch (e) {
    if (e instanceof ApiError && e.status === 403)
      return { role: asRole((e.details as { role?: unknown } | null)?.role), name: null };
    throw e;
  }
}

/** Operators and admins change nodes; a reader only looks. Unknown: offer, and let the API decide. */
export function mayAct(role: Role): boolean {
  return role !== 'reader';
}
