import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createSecretBox } from './box.ts';
import { CREDENTIAL_NAME, loadKeyFile, loadOrCreateKey } from './key.ts';

const root = mkdtempSync(join(tmpdir(), 'kiln-key-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  return d;
};
const mode = (p: string) => statSync(p).mode & 0o777;

async function rejectsWith(p: Promise<unknown>, code: string, ...needles: string[]): Promise<void> {
  await assert.rejects(p, (e: Error & { code?: string }) => {
    assert.equal(e.code, code, e.message);
    for (const s of needles) assert.ok(e.message.includes(s), `"${e.message}" should mention "${s}"`);
    return true;
  });
}

describe('loadOrCreateKey', () => {
  it('creates a 0600 key file at first start, whatever the umask, and reads the same key after', async () => {
    const path = join(fresh(), 'kiln-secrets.key');
    const old = process.umask(0o000);
    let box: Awaited<ReturnType<typeof loadOrCreateKey>>;
    try {
      box = await loadOrCreateKey(path, { env: {} });
    } finally {
      process.umask(old);
    }
    assert.equal(mode(path), 0o600);
    assert.equal(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64').length, 32);
    const again = await loadOrCreateKey(path, { env: {} });
    assert.equal(again.keyId, box.keyId);
    assert.equal(again.open(box.seal('hunter2')), 'hunter2');
    // No temporary file is left next to it.
    assert.deepEqual(readdirSync(join(path, '..')), ['kiln-secrets.key']);
  });

  it('gives conductors starting at once one and the same key', async () => {
    const path = join(fresh(), 'k');
    const boxes = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateKey(path, { env: {} })));
    assert.equal(new Set(boxes.map((b) => b.keyId)).size, 1);
    assert.deepEqual(readdirSync(join(path, '..')), ['k']);
  });

  it('refuses a key file readable by group or others, naming the file and the fix, and leaves it as it was', async () => {
    for (const m of [0o640, 0o604, 0o644, 0o660]) {
      const path = join(fresh(), 'k');
      const content = `${randomBytes(32).toString('base64')}\n`;
      writeFileSync(path, content);
      chmodSync(path, m);
      await rejectsWith(
        loadOrCreateKey(path, { env: {} }),
        'CONFIG_INVALID',
        path,
        `mode 0${m.toString(8)}`,
        `chmod 600 ${path}`,
      );
      assert.equal(mode(path), m);
      assert.equal(readFileSync(path, 'utf8'), content);
    }
  });

  it('refuses a key of the wrong length, or a typed passphrase, naming the file', async () => {
    for (const content of [
      randomBytes(16),
      `${randomBytes(16).toString('base64')}\n`,
      'correct horse battery staple!!!!', // 32 printable bytes
      '',
    ]) {
      const path = join(fresh(), 'k');
      writeFileSync(path, content, { mode: 0o600 });
      await rejectsWith(loadOrCreateKey(path, { env: {} }), 'CONFIG_INVALID', path, 'not a 32-byte key');
    }
  });

  it('accepts 32 raw bytes and base64url as well as base64', async () => {
    const k = randomBytes(32);
    const id = createSecretBox(k).keyId;
    for (const content of [k, k.toString('base64url'), `${k.toString('base64')}\n`]) {
      const path = join(fresh(), 'k');
      writeFileSync(path, content, { mode: 0o600 });
      assert.equal((await loadOrCreateKey(path, { env: {} })).keyId, id);
    }
  });

  it('takes the systemd credential over the key file, and creates no key file then', async () => {
    const creds = fresh();
    const k = randomBytes(32);
    writeFileSync(join(creds, CREDENTIAL_NAME), k.toString('base64'), { mode: 0o400 });
    const dir = fresh();
    const path = join(dir, 'kiln-secrets.key');
    const box = await loadOrCreateKey(path, { env: { CREDENTIALS_DIRECTORY: creds } });
    assert.equal(box.keyId, createSecretBox(k).keyId);
    assert.deepEqual(readdirSync(dir), []);
    // Even when a key file exists: the credential wins.
    writeFileSync(path, randomBytes(32).toString('base64'), { mode: 0o600 });
    assert.equal((await loadOrCreateKey(path, { env: { CREDENTIALS_DIRECTORY: creds } })).keyId, box.keyId);
  });

  it('falls back to the key file when the credentials directory has no kiln-secrets-key', async () => {
    const creds = fresh();
    writeFileSync(join(creds, 'other-credential'), 'x');
    const path = join(fresh(), 'k');
    const box = await loadOrCreateKey(path, { env: { CREDENTIALS_DIRECTORY: creds } });
    assert.equal(mode(path), 0o600);
    assert.equal((await loadOrCreateKey(path, { env: {} })).keyId, box.keyId);
  });

  it('refuses a credential of the wrong length, naming it', async () => {
    const creds = fresh();
    writeFileSync(join(creds, CREDENTIAL_NAME), 'short');
    await rejectsWith(
      loadOrCreateKey(join(fresh(), 'k'), { env: { CREDENTIALS_DIRECTORY: creds } }),
      'CONFIG_INVALID',
      join(creds, CREDENTIAL_NAME),
    );
  });

  it('names the directory when the key file cannot be created', async () => {
    const path = join(root, 'no', 'such', 'k');
    await rejectsWith(loadOrCreateKey(path, { env: {} }), 'CONFIG_INVALID', path, join(root, 'no', 'such'));
  });

  it('loadKeyFile never creates a key', async () => {
    const dir = fresh();
    await rejectsWith(loadKeyFile(join(dir, 'k')), 'CONFIG_INVALID', join(dir, 'k'), 'does not exist');
    assert.deepEqual(readdirSync(dir), []);
  });
});
