// Sealing secrets for storage: AES-256-GCM under a key kept outside the database (key.ts), so a
// copy of the database (a backup, a stolen disk, a replica) does not hand out BMC passwords and
// agent tokens. A sealed value is text, so it fits the columns and JSON documents the plain value
// lived in:
//
//   kiln:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>
//
// The key id (a hash of the key, not the key) says which key sealed a value, so starting with the
// wrong key file is reported as exactly that, not as "authentication failed" on every node.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { KilnError } from '../../shared/errors.ts';

export const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';
// Any version matches, so a value from a newer format is reported, never taken for plain text.
const SEALED = /^kiln:v(\d+):([0-9a-f]{8}):([A-Za-z0-9_-]+)$/;

/** What every sealed value starts with; anything else is a legacy plain-text value. */
export const SEALED_PREFIX = 'kiln:';

export interface SecretBox {
  /** A short, public fingerprint of the key: in every sealed value, in logs, in errors. */
  readonly keyId: string;
  seal(plain: string): string;
  open(sealed: string): string;
  /** Whether `sealed` was sealed by this key (opening it would not fail for a wrong key). */
  sealedHere(sealed: string): boolean;
  /** A 32-byte sub-key for one purpose (e.g. 'image-url-signing'); never the sealing key itself. */
  derive(purpose: string): Buffer;
}

export function isSealed(s: unknown): s is string {
  return typeof s === 'string' && SEALED.test(s);
}

/** The id of the key that sealed `sealed`, or undefined for a value that is not sealed. */
export function sealedKeyId(sealed: string): string | undefined {
  return SEALED.exec(sealed)?.[2];
}

/** 8 hex digits of a hash of the key: enough to tell keys apart, nothing about the key itself. */
export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('kiln secrets key id\0').update(key).digest('hex').slice(0, 8);
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== KEY_BYTES) {
    throw new KilnError('CONFIG_INVALID', `a secrets key is ${KEY_BYTES} bytes, got ${key.length}`);
  }
  // Keep our own copy: the caller may zero or reuse its buffer.
  const master = Buffer.from(key);
  const keyId = keyIdOf(master);
  const derive = (purpose: string): Buffer => {
    if (purpose === '') throw new KilnError('VALIDATION_FAILED', 'a derived key needs a purpose');
    return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `kiln:${purpose}`, KEY_BYTES));
  };
  // Sealing uses a sub-key too, so no derive() caller can ever hold the key that seals the secrets.
  const sealKey = derive(`seal:${VERSION}`);
  // The header is authenticated: a value cannot be relabelled with another key id or version.
  const header = `kiln:${VERSION}:${keyId}:`;

  return {
    keyId,
    derive,
    sealedHere: (sealed) => sealedKeyId(sealed) === keyId,

    seal(plain) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', sealKey, nonce);
      cipher.setAAD(Buffer.from(header));
      const body = Buffer.concat([nonce, cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return header + body.toString('base64url');
    },

    open(sealed) {
      const m = SEALED.exec(sealed);
      if (!m) {
        throw new KilnError(
          'VALIDATION_FAILED',
          'the value is not a sealed secret (expected kiln:v1:<key id>:<data>)',
        );
      }
      if (`v${m[1]}` !== VERSION) {
        throw new KilnError(
          'CONFIG_INVALID',
          `secret sealed in format v${m[1]} by a newer Kiln; this one reads ${VERSION}: upgrade Kiln`,
          { details: { format: `v${m[1]}` } },
        );
      }
      if (m[2] !== keyId) {
        throw new KilnError(
          'CONFIG_INVALID',
          `secret sealed with another key (id ${m[2]}; this conductor's key is ${keyId}); ` +
            'start with the key file that sealed it, see docs/security.md',
          { details: { sealed_with: m[2], key_id: keyId } },
        );
      }
      const body = Buffer.from(m[3]!, 'base64url');
      if (body.length < NONCE_BYTES + TAG_BYTES) throw damaged(keyId);
      const decipher = createDecipheriv('aes-256-gcm', sealKey, body.subarray(0, NONCE_BYTES));
      decipher.setAAD(Buffer.from(header));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      try {
        return Buffer.concat([
          decipher.update(body.subarray(NONCE_BYTES, body.length - TAG_BYTES)),
          decipher.final(),
        ]).toString('utf8');
      } catch (e) {
        throw damaged(keyId, e);
      }
    },
  };
}

function damaged(keyId: string, cause?: unknown): KilnError {
  return new KilnError(
    'INTERNAL',
    `a secret sealed with key ${keyId} failed its integrity check: the stored value was altered or ` +
      "truncated. Set the secret again (e.g. the node's bmc_password); see docs/security.md",
    { details: { key_id: keyId }, cause },
  );
}
