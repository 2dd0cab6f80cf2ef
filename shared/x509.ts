// One self-signed X.509 v3 certificate, built by hand in DER. Node can parse and verify
// certificates (X509Certificate) but not issue them, and a dependency for one structure is not
// worth its weight in the ramdisk. The agent makes one per boot for its API (IPA's auto-TLS: the
// conductor is sent the PEM and trusts only it); the conductor makes one for its operator API.
//
// What is encoded (RFC 5280), and nothing else:
//   key         EC P-256, signature ecdsa-with-SHA256
//   serial      16 random bytes, positive
//   validity    from one day ago (a ramdisk's clock is often behind) for `days` days
//   subject     = issuer = CN=<commonName>
//   extensions  basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
//               extendedKeyUsage serverAuth, subjectAltName (the IPs and DNS names),
//               subject and authority key identifiers (strict verifiers want both)
// A client pins the certificate itself (`ca: certPem`), so it is its own trust anchor; it is not
// a CA and may not sign anything else.

import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { KilnError } from './errors.js';

export interface SelfSignedRequest {
  commonName: string;
  /** IPv4 or IPv6 addresses for subjectAltName iPAddress entries. */
  ips: string[];
  dnsNames: string[];
  /** How long the certificate is valid, counted from now. */
  days: number;
}

export interface SelfSigned {
  certPem: string;
  /** PKCS#8 PEM of the certificate's private key. */
  keyPem: string;
  /** SHA-256 of the DER, colon-separated upper-case hex, as X509Certificate.fingerprint256. */
  fingerprint256: string;
}

// ---- DER (X.690) -------------------------------------------------------------------------

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...items: Buffer[]) => der(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => der(0x31, Buffer.concat(items));
const octetString = (b: Buffer) => der(0x04, b);
const bitString = (b: Buffer) => der(0x03, Buffer.concat([Buffer.from([0]), b]));
const bool = (v: boolean) => der(0x01, Buffer.from([v ? 0xff : 0]));
const utf8 = (s: string) => der(0x0c, Buffer.from(s, 'utf8'));
/** Context-specific tag: constructed for EXPLICIT wrappers, primitive for IMPLICIT strings. */
const ctx = (n: number, content: Buffer, constructed: boolean) =>
  der((constructed ? 0xa0 : 0x80) | n, content);

/** A non-negative INTEGER from its big-endian magnitude (leading 0x00 when the top bit is set). */
function uint(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  return der(0x02, m[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m);
}

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const base128: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) base128.unshift(0x80 | (v & 0x7f));
    out.push(...base128);
  }
  return der(0x06, Buffer.from(out));
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5); seconds, always Z. */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = d.getUTCFullYear();
  return year < 2050 ? der(0x17, Buffer.from(`${digits.slice(2)}Z`)) : der(0x18, Buffer.from(`${digits}Z`));
}

// ---- addresses ---------------------------------------------------------------------------

function ipv4Bytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

/** The 16 bytes of an IPv6 address in any textual form ("::", embedded IPv4, zone-less). */
function ipv6Bytes(ip: string): number[] {
  let text = ip;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail = ipv4Bytes(v4[1]!);
    text = `${text.slice(0, v4.index)}0:0`; // placeholder groups, overwritten below
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  const bytes = words.flatMap((w) => [w >> 8, w & 0xff]);
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ipv4Bytes(ip));
  if (isIPv6(ip)) return Buffer.from(ipv6Bytes(ip));
  throw new KilnError(
    'VALIDATION_FAILED',
    `certificate subjectAltName: "${ip}" is not an IPv4 or IPv6 address`,
    {
      details: { ip },
    },
  );
}

// ---- the certificate ---------------------------------------------------------------------

const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
} as const;

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octetString(value)) : seq(oid(id), octetString(value));
}

function validate(req: SelfSignedRequest): void {
  const bad = (message: string) =>
    new KilnError('VALIDATION_FAILED', `certificate: ${message}`, { details: req });
  if (!req.commonName || Buffer.byteLength(req.commonName) > 64)
    throw bad('commonName must be 1 to 64 bytes');
  if (req.ips.length + req.dnsNames.length === 0)
    throw bad('name at least one IP or DNS name for subjectAltName');
  if (!Number.isInteger(req.days) || req.days < 1 || req.days > 3650)
    throw bad('days must be a whole 1 to 3650');
  for (const name of req.dnsNames) {
    if (
      !/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(
        name,
      )
    )
      throw bad(`"${name}" is not a DNS name`);
  }
}

/** A fresh EC P-256 key and a self-signed certificate for it naming the given IPs and DNS names. */
export function selfSignedCertificate(req: SelfSignedRequest): SelfSigned {
  validate(req);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // The key identifier is the SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2, method 1):
  // for P-256 that is the 65-byte uncompressed point at the end of the SPKI.
  const keyId = createHash('sha1')
    .update(spki.subarray(spki.length - 65))
    .digest();

  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and exactly 16 bytes
  const now = Date.now();
  const notBefore = new Date(now - 24 * 3600_000);
  const notAfter = new Date(now + req.days * 24 * 3600_000);
  const name = seq(set(seq(oid(OID.commonName), utf8(req.commonName))));
  const sigAlg = seq(oid(OID.ecdsaWithSha256));

  const altNames = seq(
    ...req.dnsNames.map((n) => ctx(2, Buffer.from(n, 'ascii'), false)),
    ...req.ips.map((ip) => ctx(7, ipBytes(ip), false)),
  );
  const extensions = seq(
    extension(OID.basicConstraints, true, seq()),
    // keyUsage BIT STRING: digitalSignature is bit 0; 7 unused bits in the one content byte.
    extension(OID.keyUsage, true, der(0x03, Buffer.from([7, 0x80]))),
    extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
    extension(OID.subjectAltName, false, altNames),
    extension(OID.subjectKeyId, false, octetString(keyId)),
    extension(OID.authorityKeyId, false, seq(ctx(0, keyId, false))),
  );

  const tbs = seq(
    ctx(0, uint(Buffer.from([2])), true), // version v3
    uint(serial),
    sigAlg,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    spki,
    ctx(3, extensions, true),
  );
  const signature = sign('sha256', tbs, privateKey); // DER Ecdsa-Sig-Value, as X.509 wants
  const cert = seq(tbs, sigAlg, bitString(signature));

  const b64 = cert.toString('base64').replace(/.{1,64}/g, '$&\n');
  const certPem = `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
  return {
    certPem,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    fingerprint256: new X509Certificate(cert).fingerprint256,
  };
}
