// IPA's auto-TLS: when the conductor's API is new enough to take agent_verify_ca (1.68), the
// agent makes a self-signed certificate for this boot naming the address it advertises, serves
// its command API over HTTPS with it, and sends the PEM with every heartbeat; the conductor then
// trusts that certificate and nothing else for this node. An older conductor could not learn the
// certificate, so the agent stays on plain HTTP for it (and says so).
import { isIP } from 'node:net';
import type { Logger } from '../shared/log.ts';
import { compareVersions, IRONIC_API } from '../shared/wire/ipa.ts';
import { selfSignedCertificate } from '../shared/x509.ts';

export interface AgentTls {
  certPem: string;
  keyPem: string;
  fingerprint256: string;
}

/** Long enough for any deployment; the key never leaves this boot's memory anyway. */
const CERT_DAYS = 365;

export function autoTls(opts: {
  enabled: boolean;
  /** The conductor API version in use (discovered or the fallback). */
  apiVersion: string;
  /** The host put into callback_url: an IP (usual) or a name from ipa-advertise-host. */
  advertiseHost: string;
  log: Logger;
}): AgentTls | null {
  if (!opts.enabled) {
    opts.log.warn({}, 'auto-TLS is off (ipa-enable-auto-tls): the command API is served over plain HTTP');
    return null;
  }
  if (compareVersions(opts.apiVersion, IRONIC_API.agentVerifyCa) < 0) {
    opts.log.warn(
      { version: opts.apiVersion, needs: IRONIC_API.agentVerifyCa },
      'the conductor API predates agent_verify_ca: serving the command API over plain HTTP',
    );
    return null;
  }
  const host = opts.advertiseHost;
  const ip = isIP(host) !== 0;
  const cert = selfSignedCertificate({
    commonName: host.slice(0, 64),
    ips: ip ? [host] : [],
    dnsNames: ip ? [] : [host],
    days: CERT_DAYS,
  });
  opts.log.info({ host, fingerprint256: cert.fingerprint256 }, "auto-TLS: made this boot's certificate");
  return cert;
}
