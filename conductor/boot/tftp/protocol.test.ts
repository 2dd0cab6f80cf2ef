import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { negotiate, Op, oackPacket, parseRequest } from './protocol.ts';
import { resolveUnderRoot } from './resolve.ts';

const rrq = (...parts: string[]) =>
  Buffer.concat([Buffer.from([0, Op.RRQ]), Buffer.from(parts.map((p) => `${p}\0`).join(''), 'latin1')]);
const limits = { maxBlksize: 1468, maxWindowsize: 64, defaultTimeoutMs: 1000 };

describe('TFTP protocol', () => {
  test('parses requests with options, case-insensitively', () => {
    const r = parseRequest(rrq('undionly.kpxe', 'OCTET', 'BLKSIZE', '1432', 'tsize', '0'));
    assert.ok(r.ok);
    assert.equal(r.req.filename, 'undionly.kpxe');
    assert.equal(r.req.mode, 'octet');
    assert.deepEqual(
      [...r.req.options],
      [
        ['blksize', '1432'],
        ['tsize', '0'],
      ],
    );
  });

  test('rejects malformed requests with a reason', () => {
    assert.equal(parseRequest(Buffer.from([0, 1])).ok, false);
    assert.equal(parseRequest(Buffer.from([0, 9, 65, 0, 66, 0])).ok, false);
    assert.equal(parseRequest(Buffer.from([0, 1, 65, 0, 66])).ok, false, 'no trailing NUL');
    assert.equal(parseRequest(rrq('f')).ok, false, 'no mode');
    assert.equal(parseRequest(rrq('f', 'octet', 'blksize')).ok, false, 'option without value');
  });

  test('negotiates within limits and echoes tsize with the real size', () => {
    const r = parseRequest(
      rrq(
        'f',
        'octet',
        'blksize',
        '65464',
        'windowsize',
        '500',
        'tsize',
        '0',
        'timeout',
        '3',
        'multicast',
        '',
      ),
    );
    assert.ok(r.ok);
    const n = negotiate(r.req, 1234, limits);
    assert.equal(n.blksize, 1468);
    assert.equal(n.windowsize, 64);
    assert.equal(n.timeoutMs, 3000);
    assert.deepEqual(n.oack, [
      ['blksize', '1468'],
      ['timeout', '3'],
      ['tsize', '1234'],
      ['windowsize', '64'],
    ]);
    assert.deepEqual(oackPacket([['tsize', '5']]), Buffer.from('\0\x06tsize\x005\0', 'latin1'));
  });

  test('ignores nonsense option values instead of failing the transfer', () => {
    const r = parseRequest(rrq('f', 'octet', 'blksize', '4', 'timeout', '0', 'windowsize', 'x'));
    assert.ok(r.ok);
    const n = negotiate(r.req, 10, limits);
    assert.deepEqual(n.oack, []);
    assert.equal(n.blksize, 512);
    assert.equal(n.windowsize, 1);
  });

  test('path resolution stays inside the root, symlinks included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-tftp-'));
    try {
      const root = join(dir, 'root');
      mkdirSync(join(root, 'efi'), { recursive: true });
      writeFileSync(join(root, 'efi', 'ipxe.efi'), 'x');
      writeFileSync(join(dir, 'secret'), 's');
      symlinkSync(join(dir, 'secret'), join(root, 'escape'));
      assert.equal((await resolveUnderRoot(root, 'efi/ipxe.efi')).ok, true);
      assert.equal((await resolveUnderRoot(root, '/efi//./ipxe.efi')).ok, true);
      for (const bad of ['../secret', 'efi/../../secret', 'escape', 'efi\\..\\..\\secret', 'a\nb', '', '/']) {
        const r = await resolveUnderRoot(root, bad);
        assert.equal(r.ok, false, bad);
      }
      const missing = await resolveUnderRoot(root, 'nope');
      assert.deepEqual(missing.ok ? null : missing.code, 'not-found');
      const dirItself = await resolveUnderRoot(root, 'efi');
      assert.equal(dirItself.ok, false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
