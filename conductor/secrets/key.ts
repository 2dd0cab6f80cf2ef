// Where the secrets key comes from. It must live outside the database it protects: a systemd
// credential (LoadCredential=/LoadCredentialEncrypted=, handed to us in $CREDENTIALS_DIRECTORY)
// when there is one, else a key file next to the conductor's state, created at first start.
//
// A key file holds the 32 bytes either raw or as base64 (what we write, with a newline, so it can
// be copied into a password manager or `systemd-creds encrypt`).
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { createSecretBox, KEY_BYTES, type SecretBox } from './box.ts';

export const CREDENTIAL_NAME = 'kiln-secrets-key';

export interface KeyOptions {
  env?: NodeJS.ProcessEnv;
  log?: Logger;
}

/** The key's bytes from a file's content: 32 raw bytes, or base64/base64url of 32 bytes. */
export function parseKey(content: Buffer, where: string): Buffer {
  // 32 printable bytes are a typed passphrase, not a random key (odds of that by chance: 1e-14).
  const printable = content.every((b) => b >= 0x20 && b < 0x7f);
  if (content.length === KEY_BYTES && !printable) return content;
  const text = content.toString('latin1').trim();
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const key = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    if (key.length === KEY_BYTES) return key;
  }
  throw new KilnError(
    'CONFIG_INVALID',
    `secrets key ${where} is not a ${KEY_BYTES}-byte key (${content.length} bytes, neither raw nor base64); ` +
      `restore the key file that sealed this database, or for a new installation remove it and Kiln creates one`,
    { details: { file: where } },
  );
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cannotRead(path, e);
  }
}

function cannotRead(path: string, e: unknown): KilnError {
  return new KilnError(
    'CONFIG_INVALID',
    `cannot read secrets key ${path}: ${(e as Error).message}; the conductor's user must own it (mode 0600)`,
    { details: { file: path }, cause: e },
  );
}

/** Read an existing key file, refusing one that others could read. Undefined if there is none. */
async function readKeyFile(path: string): Promise<Buffer | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cannotRead(path, e);
  }
  try {
    // fstat on the open handle: the file checked is the file read, even if the path is swapped.
    const st = await handle.stat();
    if (!st.isFile()) {
      throw new KilnError('CONFIG_INVALID', `secrets key ${path} is not a regular file`, {
        details: { file: path },
      });
    }
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new KilnError(
        'CONFIG_INVALID',
        `secrets key ${path} is readable by group or others (mode ${mode}); ` +
          `run 'chmod 600 ${path}', and if others may have copied it, rotate it (kiln secrets rotate-key)`,
        { details: { file: path, mode } },
      );
    }
    return parseKey(await handle.readFile(), path);
  } finally {
    await handle.close();
  }
}

/**
 * Create the key file with a fresh key, atomically: written and synced under a temporary name,
 * then linked into place, which fails if the name exists. So no reader ever sees a half-written
 * key, and of two conductors starting at once exactly one key wins and both use it.
 */
async function createKeyFile(path: string): Promise<Buffer | undefined> {
  const key = randomBytes(KEY_BYTES);
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(tmp, 'wx', 0o600);
  } catch (e) {
    throw new KilnError(
      'CONFIG_INVALID',
      `cannot create secrets key ${path}: ${(e as Error).message}; ` +
        `create the directory ${dirname(path)} writable by the conductor, or set secrets.key_file`,
      { details: { file: path }, cause: e },
    );
  }
  try {
    try {
      await handle.writeFile(`${key.toString('base64')}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.link(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return undefined; // someone else won
      throw e;
    }
    const dir = await fs.open(dirname(path), 'r');
    await dir.sync().finally(() => dir.close());
    return key;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** An existing key file as a SecretBox (for tools: never creates one). */
export async function loadKeyFile(path: string): Promise<SecretBox> {
  const key = await readKeyFile(path);
  if (!key) {
    throw new KilnError(
      'CONFIG_INVALID',
      `secrets key ${path} does not exist; give the key file the conductor uses`,
      {
        details: { file: path },
      },
    );
  }
  return createSecretBox(key);
}

/**
 * The secrets key as a SecretBox: the systemd credential kiln-secrets-key if present, else the
 * key file at `path`, created 0600 on first start. A key file that group or others can read, or
 * that is not 32 bytes, is refused with an error naming the file and the fix.
 */
export async function loadOrCreateKey(path: string, opts: KeyOptions = {}): Promise<SecretBox> {
  const env = opts.env ?? process.env;
  const credDir = env.CREDENTIALS_DIRECTORY;
  if (credDir) {
    const credPath = join(credDir, CREDENTIAL_NAME);
    // systemd owns the credential's mode (0400, the service's user), so only its size is checked.
    const content = await readIfExists(credPath);
    if (content) {
      const box = createSecretBox(parseKey(content, credPath));
      opts.log?.info(
        { key_id: box.keyId, credential: CREDENTIAL_NAME },
        'secrets key from systemd credential',
      );
      return box;
    }
  }
  let key = await readKeyFile(path);
  if (!key) {
    key = await createKeyFile(path);
    if (key) {
      const box = createSecretBox(key);
      opts.log?.warn(
        { key_id: box.keyId, file: path },
        'created a new secrets key: back it up with the database, without it the BMC passwords and agent tokens stored there cannot be read',
      );
      return box;
    }
    key = await readKeyFile(path);
    if (!key) throw cannotRead(path, new Error('it vanished while being created'));
  }
  const box = createSecretBox(key);
  opts.log?.info({ key_id: box.keyId, file: path }, 'secrets key from key file');
  return box;
}
