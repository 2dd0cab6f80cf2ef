// The operator API over TLS as an operator and as someone in the middle meets it: a self-signed
// certificate made once and kept (so a pinned fingerprint stays right across restarts), a key
// only its owner reads, a CLI that talks only to the pinned certificate and says what to do.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ApiClient, CliError, EXIT } from '../../cli/client.ts';
import { selfSignedCertificate } from '../../shared/x509.ts';
import { startTestConductor } from '../support/conductor.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function refused(client: ApiClient): Promise<CliError> {
  const e = await client.call('GET', '/v1/nodes').then(
    () => assert.fail('the call should have been refused'),
    (e: unknown) => e,
  );
  assert.ok(e instanceof CliError, String(e));
  return e;
}

describe('operator API TLS', () => {
  it('makes a self-signed certificate once, keeps its key 0600, and the pinned CLI works', async () => {
    const tlsDir = join(dir, 'auto');
    const c = await startTestConductor({}, { 'api.tls.mode': 'auto', 'api.tls.dir': tlsDir });
    let first: string;
    try {
      assert.match(c.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      first = c.tls!.fingerprint256;
      assert.match(first, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      assert.equal(statSync(join(tlsDir, 'api.key')).mode & 0o777, 0o600);
      assert.equal(statSync(tlsDir).mode & 0o077, 0);
      assert.ok(
        c.logs.some((l) => l.includes(first)),
        'the fingerprint is logged for operators to pin',
      );
      const client = new ApiClient(c.url, { token: c.adminToken, caFingerprint: first });
      const r = await client.call<{ nodes: unknown[] }>('GET', '/v1/nodes');
      assert.deepEqual(r.nodes, []);
      // Without a token, the pinned connection still gets only the 401, with the hint.
      const anon = await refused(new ApiClient(c.url, { caFingerprint: first }));
      assert.equal(anon.exitCode, EXIT.denied);
      assert.match(anon.message, /this CLI sent no token: set KILN_TOKEN/);
      // Plain HTTP to the TLS port gets nowhere.
      await assert.rejects(fetch(c.url.replace('https:', 'http:') + '/v1/nodes'));
    } finally {
      await c.close();
    }
    const again = await startTestConductor({}, { 'api.tls.mode': 'auto', 'api.tls.dir': tlsDir });
    try {
      assert.equal(again.tls!.fingerprint256, first, 'a restart keeps the certificate operators pinned');
    } finally {
      await again.close();
    }
  });

  it('refuses an unpinned self-signed certificate and a different one, naming the fix', async () => {
    const c = await startTestConductor({}, { 'api.tls.mode': 'auto', 'api.tls.dir': join(dir, 'mitm') });
    try {
      const unpinned = await refused(new ApiClient(c.url, { token: c.adminToken }));
      assert.equal(unpinned.exitCode, EXIT.unreachable);
      assert.match(unpinned.message, /does not trust .*--ca-fingerprint or KILN_CA_FINGERPRINT/);
      const other = selfSignedCertificate({ commonName: 'mitm', ips: ['127.0.0.1'], dnsNames: [], days: 1 });
      const wrong = await refused(
        new ApiClient(c.url, { token: c.adminToken, caFingerprint: other.fingerprint256 }),
      );
      assert.match(wrong.message, /presented certificate .* not the pinned/);
      assert.match(wrong.message, /someone may be in the middle/);
    } finally {
      await c.close();
    }
  });

  it('never sends the token to a server presenting another certificate', async () => {
    const mitm = selfSignedCertificate({ commonName: 'mitm', ips: ['127.0.0.1'], dnsNames: [], days: 1 });
    const real = selfSignedCertificate({ commonName: 'real', ips: ['127.0.0.1'], dnsNames: [], days: 1 });
    const seen: string[] = [];
    const server = createServer({ cert: mitm.certPem, key: mitm.keyPem }, (req, res) => {
      seen.push(String(req.headers.authorization));
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      await refused(new ApiClient(url, { token: 'kiln_secret-token', caFingerprint: real.fingerprint256 }));
      assert.deepEqual(seen, [], 'no request reached the impostor');
    } finally {
      server.close();
    }
  });

  it('takes a certificate and key from files, and refuses a key others can read', async () => {
    const pair = selfSignedCertificate({ commonName: 'files', ips: ['127.0.0.1'], dnsNames: [], days: 1 });
    const cert = join(dir, 'f.crt');
    const key = join(dir, 'f.key');
    writeFileSync(cert, pair.certPem);
    writeFileSync(key, pair.keyPem, { mode: 0o644 });
    chmodSync(key, 0o644);
    const flags = { 'api.tls.mode': 'files', 'api.tls.cert_file': cert, 'api.tls.key_file': key };
    await assert.rejects(startTestConductor({}, flags), /readable by others .*chmod 600/);
    chmodSync(key, 0o600);
    const c = await startTestConductor({}, flags);
    try {
      assert.equal(c.tls!.fingerprint256, pair.fingerprint256);
      const client = new ApiClient(c.url, { token: c.adminToken, caFingerprint: pair.fingerprint256 });
      assert.ok(await client.call('GET', '/v1/nodes'));
    } finally {
      await c.close();
    }
  });
});
