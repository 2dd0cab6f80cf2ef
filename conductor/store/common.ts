// What every Store implementation shares: the columns a patch may write, list limits, and the
// errors (same codes and wording whichever database is behind the store).
import { KilnError } from '../../shared/errors.ts';
import { normaliseMac } from '../../shared/mac.ts';
import type { NodePatch } from './store.ts';

export const DEFAULT_LIMIT = 1000;
export const JSON_COLUMNS = new Set([
  'properties',
  'extra',
  'instance_info',
  'driver_internal_info',
  'inventory',
]);

/** Columns a NodePatch may set, in a fixed order so the generated SQL is stable. */
export const PATCH_COLUMNS = [
  'name',
  'driver',
  'bmc_address',
  'bmc_password',
  'properties',
  'extra',
  'instance_info',
  'driver_internal_info',
  'inventory',
  'power_state',
  'last_error',
  'maintenance',
  'maintenance_reason',
] as const satisfies readonly (keyof NodePatch)[];

export const now = () => new Date().toISOString();

/**
 * How a port's address is stored and looked up: aa:bb:cc:dd:ee:ff for any spelling of a MAC
 * (shared/mac.ts); anything else only lower-cased, so it is kept but matches no real MAC.
 */
export function macKey(address: string): string {
  return normaliseMac(address) ?? address.toLowerCase();
}

export function label(node: { name: string | null; uuid: string }): string {
  return node.name ?? node.uuid;
}

export function nodeNotFound(uuid: string): KilnError {
  return new KilnError('NOT_FOUND', `node ${uuid} not found; list nodes with 'kiln node list'`, {
    details: { node: uuid },
  });
}

export function nodeLocked(node: { name: string | null; uuid: string }, holder: string | null): KilnError {
  return new KilnError(
    'NODE_LOCKED',
    `node ${label(node)} is locked by ${holder ?? 'nobody'}; retry when its current action finishes`,
    { details: { node: node.uuid, reservation: holder } },
  );
}

export function limitOf(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new KilnError('VALIDATION_FAILED', `limit must be a positive integer, got ${limit}`);
  }
  return limit;
}

export function tokenNotFound(ident: string): KilnError {
  return new KilnError('NOT_FOUND', `API token ${ident} not found; list tokens with 'kiln token list'`, {
    details: { token: ident },
  });
}

export function tokenNameTaken(name: string): KilnError {
  return new KilnError(
    'CONFLICT',
    `an API token named ${name} already exists; revoke it first (kiln token revoke ${name}) or pick another name`,
    { details: { name } },
  );
}

/**
 * A token time as both backends return it: ISO 8601 UTC with milliseconds. SQLite keeps the text
 * it is given and PostgreSQL re-renders a timestamptz, so normalising on the way in makes them agree.
 */
export function isoTime(v: string | null, field: string): string | null {
  if (v === null) return null;
  const t = new Date(v);
  if (Number.isNaN(t.getTime())) {
    throw new KilnError('VALIDATION_FAILED', `${field} '${v}' is not an ISO 8601 time`, {
      details: { field },
    });
  }
  return t.toISOString();
}
