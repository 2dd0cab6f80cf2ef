// The hand-built certificate judged by three independent readers: OpenSSL's command line, Node's
// X509Certificate, and a real TLS handshake in which the client trusts only this certificate.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { selfSignedCertificate } from './x509.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-x509-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const made = selfSignedCertificate({
  commonName: 'kiln-agent',
  ips: ['127.0.0.1', '192.0.2.10', '2001:db8::7', '::ffff:198.51.100.4'],
  dnsNames: ['localhost', 'agent.example'],
  days: 30,
});
const certFile = join(dir, 'cert.pem');
writeFileSync(certFile, made.certPem);

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** GET https://<host>:<port>/ trusting only `ca`; resolves the body or rejects with the TLS error. */
function get(port: number, ca: string, host = '127.0.0.1', servername?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', ca, servername, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('selfSignedCertificate', () => {
  it('is a v3 ecdsa-with-SHA256 certificate with the names, usages and validity openssl reads back', () => {
    const text = openssl('x509', '-in', certFile, '-text', '-noout');
    assert.match(text, /Version: 3 \(0x2\)/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /Issuer: CN = kiln-agent/);
    assert.match(text, /Subject: CN = kiln-agent/);
    assert.match(text, /NIST CURVE: P-256/);
    assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, /Key Usage: critical\s+Digital Signature/);
    assert.match(text, /Extended Key Usage:\s+TLS Web Server Authentication/);
    assert.match(
      text,
      /DNS:localhost, DNS:agent\.example, IP Address:127\.0\.0\.1, IP Address:192\.0\.2\.10, IP Address:2001:DB8:0:0:0:0:0:7, IP Address:0:0:0:0:0:FFFF:C633:6404/,
    );
    assert.match(text, /Subject Key Identifier/);
    assert.match(text, /Authority Key Identifier/);

    const x = new X509Certificate(made.certPem);
    const from = Date.parse(x.validFrom);
    const to = Date.parse(x.validTo);
    assert.ok(from <= Date.now() - 23 * 3600_000, `validFrom ${x.validFrom} allows for a clock a day behind`);
    assert.ok(Math.abs(to - (Date.now() + 30 * 86400_000)) < 60_000, `validTo ${x.validTo} is 30 days out`);
  });

  it('verifies as its own trust anchor with openssl verify, strict mode included', () => {
    assert.equal(openssl('verify', '-CAfile', certFile, certFile).trim(), `${certFile}: OK`);
    assert.equal(openssl('verify', '-x509_strict', '-CAfile', certFile, certFile).trim(), `${certFile}: OK`);
    // And another certificate does not vouch for it.
    const other = join(dir, 'other.pem');
    writeFileSync(
      other,
      selfSignedCertificate({ commonName: 'kiln-agent', ips: ['127.0.0.1'], dnsNames: [], days: 1 }).certPem,
    );
    assert.throws(
      () => openssl('verify', '-CAfile', other, certFile),
      /unable to get local issuer|verification failed/,
    );
  });

  it('is signed by the returned key, names its IPs (and no others), and reports the fingerprint Node computes', () => {
    const x = new X509Certificate(made.certPem);
    const pub = createPublicKey(createPrivateKey(made.keyPem));
    assert.equal(x.verify(pub), true);
    assert.equal(x.checkPrivateKey(createPrivateKey(made.keyPem)), true);
    assert.equal(x.checkIP('192.0.2.10'), '192.0.2.10');
    assert.equal(x.checkIP('2001:db8::7'), '2001:db8::7');
    assert.equal(x.checkIP('192.0.2.11'), undefined);
    assert.equal(x.checkHost('agent.example'), 'agent.example');
    assert.equal(made.fingerprint256, x.fingerprint256);
    assert.match(made.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(x.ca, false);
  });

  it('makes a new key and serial every time', () => {
    const again = selfSignedCertificate({
      commonName: 'kiln-agent',
      ips: ['127.0.0.1'],
      dnsNames: [],
      days: 1,
    });
    const a = new X509Certificate(made.certPem);
    const b = new X509Certificate(again.certPem);
    assert.notEqual(a.serialNumber, b.serialNumber);
    assert.notEqual(a.publicKey.export({ format: 'jwk' }).x, b.publicKey.export({ format: 'jwk' }).x);
  });

  it('refuses a subjectAltName that is not an address, and a certificate naming nothing', () => {
    assert.throws(
      () => selfSignedCertificate({ commonName: 'x', ips: ['10.0.0.300'], dnsNames: [], days: 1 }),
      (e: Error & { code?: string }) =>
        e.code === 'VALIDATION_FAILED' && /"10\.0\.0\.300" is not an IPv4/.test(e.message),
    );
    assert.throws(
      () => selfSignedCertificate({ commonName: 'x', ips: [], dnsNames: [], days: 1 }),
      /at least one IP or DNS name/,
    );
    assert.throws(
      () => selfSignedCertificate({ commonName: 'x', ips: [], dnsNames: ['bad name'], days: 1 }),
      /"bad name" is not a DNS name/,
    );
  });

  it('serves TLS that a client pinning only this certificate accepts, by IP and by name; another pin is refused', async () => {
    const server = createServer({ cert: made.certPem, key: made.keyPem }, (_req, res) => res.end('pinned'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      assert.equal(await get(port, made.certPem), 'pinned');
      assert.equal(await get(port, made.certPem, 'localhost'), 'pinned');
      const stranger = selfSignedCertificate({
        commonName: 'kiln-agent',
        ips: ['127.0.0.1'],
        dnsNames: [],
        days: 1,
      });
      await assert.rejects(get(port, stranger.certPem), (e: NodeJS.ErrnoException) => {
        assert.match(String(e.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
        return true;
      });
      // The right certificate, a name it does not hold: hostname verification still applies.
      await assert.rejects(
        get(port, made.certPem, '127.0.0.1', 'elsewhere.example'),
        /ERR_TLS_CERT_ALTNAME_INVALID|altnames/i,
      );
    } finally {
      server.close();
    }
  });
});
