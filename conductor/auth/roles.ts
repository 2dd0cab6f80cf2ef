// Who may do what, as Ironic's system-scope roles: a reader reads, an operator also changes
// nodes, ports and images and runs actions, an admin also manages API tokens.
import type { ApiRole } from '../store/store.ts';

const RANK: Record<ApiRole, number> = { reader: 0, operator: 1, admin: 2 };

export function allows(have: ApiRole, need: ApiRole): boolean {
  return RANK[have] >= RANK[need];
}

/** The role a request needs: tokens are admin's, reads are a reader's, every other change an operator's. */
export function requiredRole(method: string, path: string): ApiRole {
  if (/^\/v1\/tokens(\/|$)/.test(path)) return 'admin';
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? 'reader' : 'operator';
}
