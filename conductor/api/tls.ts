// The operator API's TLS: a certificate and key from files, or (auto) a self-signed pair made at
// first start and kept, so that its fingerprint stays what operators pinned. The fingerprint is
// logged at every start; `kiln --ca-fingerprint` (or ca_fingerprint: in the CLI's config) pins it.
import { X509Certificate } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { KilnError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { ConductorConfig } from '../config.ts';

export interface ApiTls {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the certificate, colon-separated hex as openssl and Node print it. */
  fingerprint256: string;
}

async function readPair(certFile: string, keyFile: string): Promise<ApiTls> {
  const [certPem, keyPem] = await Promise.all(
    [certFile, keyFile].map((f) =>
      readFile(f, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new KilnError(
          'CONFIG_INVALID',
          `cannot read ${f} for the API's TLS (${e.code ?? e.message}); check api.tls.cert_file and api.tls.key_file`,
        );
      }),
    ),
  );
  let fingerprint256: string;
  try {
    fingerprint256 = new X509Certificate(certPem!).fingerprint256;
  } catch (e) {
    throw new KilnError('CONFIG_INVALID', `${certFile} is not a PEM certificate: ${(e as Error).message}`);
  }
  const mode = (await stat(keyFile)).mode & 0o077;
  if (mode !== 0)
    throw new KilnError(
      'CONFIG_INVALID',
      `the API's TLS key ${keyFile} is readable by others (mode ${(mode | 0o600).toString(8)}); chmod 600 ${keyFile}`,
    );
  return { certPem: certPem!, keyPem: keyPem!, fingerprint256 };
}

/** Write a file that must not exist yet, 0600 from its first byte. */
async function writeNew(path: string, data: string): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}

/** The names a self-signed certificate is valid for: this host, loopback, and the listen address. */
function subjectNames(host: string): { ips: string[]; dnsNames: string[] } {
  const ips = new Set(['127.0.0.1', '::1']);
  const dnsNames = new Set(['localhost', hostname()]);
  if (isIP(host) && host !== '0.0.0.0' && host !== '::') ips.add(host);
  else if (!isIP(host)) dnsNames.add(host);
  return { ips: [...ips], dnsNames: [...dnsNames] };
}

export async function apiTls(config: ConductorConfig, log: Logger): Promise<ApiTls | null> {
  const t = config.api.tls;
  if (t.mode === 'off') return null;
  if (t.mode === 'files') return readPair(t.cert_file!, t.key_file!);
  const dir = resolve(t.dir);
  const certFile = join(dir, 'api.crt');
  const keyFile = join(dir, 'api.key');
  const have = await stat(certFile).then(
    () => true,
    () => false,
  );
  if (!have) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const { selfSignedCertificate } = await import('../../shared/x509.ts');
    const cert = selfSignedCertificate({
      commonName: `kiln conductor ${config.conductor.id}`,
      ...subjectNames(config.api.host),
      days: 3650,
    });
    // Key first: a crash between the two leaves no certificate without its key.
    await writeNew(keyFile, cert.keyPem);
    await writeNew(certFile, cert.certPem);
    log.info({ cert: certFile }, 'made a self-signed certificate for the API');
  }
  const pair = await readPair(certFile, keyFile);
  log.info(
    { fingerprint: pair.fingerprint256, cert: certFile },
    `the API's TLS certificate is self-signed; clients pin it with --ca-fingerprint ${pair.fingerprint256}`,
  );
  return pair;
}
