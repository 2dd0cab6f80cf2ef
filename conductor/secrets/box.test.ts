import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createSecretBox, isSealed, sealedKeyId } from './box.ts';

const key = () => randomBytes(32);

/** Assert a KilnError of `code` whose message has every needle. */
function throwsWith(fn: () => unknown, code: string, ...needles: (string | RegExp)[]): void {
  assert.throws(fn, (e: Error & { code?: string }) => {
    assert.equal(e.name, 'KilnError', String(e));
    assert.equal(e.code, code, e.message);
    for (const n of needles) assert.match(e.message, typeof n === 'string' ? new RegExp(n) : n);
    return true;
  });
}

describe('SecretBox', () => {
  it('round-trips text, including empty and non-ASCII, in the versioned format', () => {
    const box = createSecretBox(key());
    for (const plain of ['hunter2', '', 'pässwörd ✓ with spaces', 'x'.repeat(10_000)]) {
      const sealed = box.seal(plain);
      assert.match(sealed, new RegExp(`^kiln:v1:${box.keyId}:[A-Za-z0-9_-]+$`));
      assert.ok(isSealed(sealed));
      assert.ok(!sealed.includes(plain) || plain === '');
      assert.equal(box.open(sealed), plain);
    }
  });

  it('uses a fresh nonce each time: the same secret never seals to the same text', () => {
    const box = createSecretBox(key());
    const seen = new Set(Array.from({ length: 50 }, () => box.seal('same')));
    assert.equal(seen.size, 50);
  });

  it('refuses a tampered value as damaged, not as a wrong key', () => {
    const box = createSecretBox(key());
    const sealed = box.seal('hunter2');
    const body = Buffer.from(sealed.split(':')[3]!, 'base64url');
    for (const i of [0, 13, body.length - 1]) {
      const flipped = Buffer.from(body);
      flipped[i]! ^= 1;
      const bad = `kiln:v1:${box.keyId}:${flipped.toString('base64url')}`;
      throwsWith(() => box.open(bad), 'INTERNAL', 'integrity check', 'altered or truncated');
    }
    const truncated = `kiln:v1:${box.keyId}:${body.subarray(0, 20).toString('base64url')}`;
    throwsWith(() => box.open(truncated), 'INTERNAL', 'integrity check');
  });

  it('authenticates the header: a value relabelled with another key id does not open', () => {
    const a = createSecretBox(key());
    const sealed = a.seal('hunter2');
    // Forge the id of a key the attacker controls: the wrong-key error names it, nothing opens.
    const b = createSecretBox(key());
    const relabelled = sealed.replace(`:${a.keyId}:`, `:${b.keyId}:`);
    throwsWith(() => b.open(relabelled), 'INTERNAL', 'integrity check');
  });

  it('reports a value sealed with another key as such, naming both key ids and the fix', () => {
    const a = createSecretBox(key());
    const b = createSecretBox(key());
    assert.notEqual(a.keyId, b.keyId);
    const sealed = a.seal('hunter2');
    assert.equal(sealedKeyId(sealed), a.keyId);
    assert.ok(a.sealedHere(sealed));
    assert.ok(!b.sealedHere(sealed));
    throwsWith(
      () => b.open(sealed),
      'CONFIG_INVALID',
      `sealed with another key \\(id ${a.keyId};`,
      b.keyId,
      'start with the key file that sealed it, see docs/security.md',
    );
  });

  it('keeps the same key id and opens across instances of the same key', () => {
    const k = key();
    const sealed = createSecretBox(k).seal('hunter2');
    assert.equal(createSecretBox(Buffer.from(k)).open(sealed), 'hunter2');
  });

  it('refuses a key of the wrong length and a value that is not sealed', () => {
    throwsWith(() => createSecretBox(randomBytes(16)), 'CONFIG_INVALID', '32 bytes, got 16');
    throwsWith(() => createSecretBox(key()).open('hunter2'), 'VALIDATION_FAILED', 'not a sealed secret');
    assert.ok(!isSealed('hunter2'));
    assert.ok(!isSealed('kiln:v1:zz:abc'));
    assert.ok(!isSealed(null));
    // A newer format is still recognised as sealed, and reported, never taken for plain text.
    const box = createSecretBox(key());
    const v2 = box.seal('x').replace('kiln:v1:', 'kiln:v2:');
    assert.ok(isSealed(v2));
    throwsWith(() => box.open(v2), 'CONFIG_INVALID', 'format v2 by a newer Kiln', 'upgrade Kiln');
  });

  it('derives stable, distinct 32-byte sub-keys per purpose and per key', () => {
    const k = key();
    const box = createSecretBox(k);
    const url = box.derive('image-url-signing');
    assert.equal(url.length, 32);
    assert.deepEqual(createSecretBox(k).derive('image-url-signing'), url);
    assert.notDeepEqual(box.derive('other'), url);
    assert.notDeepEqual(createSecretBox(key()).derive('image-url-signing'), url);
    assert.notDeepEqual(url, k);
    throwsWith(() => box.derive(''), 'VALIDATION_FAILED', 'purpose');
  });
});
