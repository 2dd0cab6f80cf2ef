// Operator API tokens: 256 random bits, shown once, kept only as a SHA-256 hash. A fast hash is
// enough because the secret is random, not a password a person chose: nobody can guess it from
// its hash faster than by guessing it.
import { createHash, randomBytes } from 'node:crypto';
import { KilnError } from '../../shared/errors.ts';
import type { ApiRole, ApiTokenRecord, TokenStore } from '../store/store.ts';

export const ROLES: readonly ApiRole[] = ['admin', 'operator', 'reader'];

/** Every token starts so; secret scanners and people can tell it apart from other strings. */
const PREFIX = 'kiln_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A token name: what events record as the actor, so it stays short and printable. */
export const TOKEN_NAME = /^[\w.@:-]{1,64}$/;

/**
 * `30d`, `12h`, `90m`, `3600s`, or an ISO 8601 time, into an absolute time; null for `never`.
 * Anything else, or a time in the past, is a usage error naming the value.
 */
export function parseExpiry(value: string | undefined, now = new Date()): string | null {
  if (value === undefined || value === 'never') return null;
  const rel = /^(\d+)([smhdw])$/.exec(value.trim());
  let at: Date;
  if (rel) {
    const unit = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }[rel[2] as 's'];
    at = new Date(now.getTime() + Number(rel[1]) * unit * 1000);
  } else {
    at = new Date(value);
    if (Number.isNaN(at.getTime()))
      throw new KilnError(
        'VALIDATION_FAILED',
        `expiry '${value}' is neither a duration (30d, 12h, 90m) nor an ISO time (2027-01-31T00:00:00Z)`,
      );
  }
  if (at.getTime() <= now.getTime())
    throw new KilnError('VALIDATION_FAILED', `expiry '${value}' is not in the future`);
  return at.toISOString();
}

export interface NewToken {
  name: string;
  role: ApiRole;
  expiresAt: string | null;
}

/** Create a token; the secret is in the answer and nowhere else. */
export async function createToken(
  tokens: TokenStore,
  req: NewToken,
): Promise<{ record: ApiTokenRecord; token: string }> {
  if (!TOKEN_NAME.test(req.name))
    throw new KilnError(
      'VALIDATION_FAILED',
      `token name '${req.name}' must be 1-64 letters, digits or . _ @ : -`,
    );
  if (!ROLES.includes(req.role))
    throw new KilnError('VALIDATION_FAILED', `role '${req.role}' is not one of ${ROLES.join(', ')}`);
  if (await tokens.find(req.name))
    throw new KilnError(
      'CONFLICT',
      `a token named ${req.name} exists; revoke it first (kiln token revoke ${req.name}) or pick another name`,
    );
  const token = `${PREFIX}${randomBytes(32).toString('base64url')}`;
  const record = await tokens.create({
    id: randomBytes(6).toString('hex'),
    name: req.name,
    role: req.role,
    hash: hashToken(token),
    expires_at: req.expiresAt,
  });
  return { record, token };
}

/** What a listing shows: never the hash. */
export function tokenView(t: ApiTokenRecord): Omit<ApiTokenRecord, 'hash'> & { expired: boolean } {
  const { hash: _h, ...rest } = t;
  return { ...rest, expired: t.expires_at !== null && Date.parse(t.expires_at) <= Date.now() };
}
