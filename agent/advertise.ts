// The address the conductor should call back on: ipa-advertise-host if given, else the source
// address the kernel would use towards the API host (`ip route get`), retried like IPA
// (ipa-ip-lookup-attempts × ipa-ip-lookup-timeout) while DHCP may still be settling.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Runner } from '../shared/exec.ts';
import type { Logger } from '../shared/log.ts';

export function parseRouteSrc(text: string): string | null {
  const m = /\bsrc\s+(\S+)/.exec(text);
  if (!m) return null;
  const ip = m[1]!;
  // Link-local sources can't be reached from another subnet; IPA ignores them too.
  if (ip.startsWith('169.254.') || ip.toLowerCase().startsWith('fe80')) return null;
  return ip;
}

export async function detectAdvertiseHost(opts: {
  apiUrl: string;
  run: Runner;
  attempts: number;
  delayS: number;
  log: Logger;
}): Promise<string> {
  const host = new URL(opts.apiUrl).hostname.replace(/^\[|\]$/g, '');
  let last = '';
  for (let i = 1; i <= Math.max(1, opts.attempts); i++) {
    try {
      const ip = isIP(host) ? host : (await lookup(host)).address;
      const r = await opts.run('ip', ['route', 'get', ip]);
      const src = parseRouteSrc(r.stdout);
      if (src) return src;
      last = `no usable source address in "${r.stdout.trim()}"`;
    } catch (e) {
      last = (e as Error).message;
    }
    opts.log.warn({ attempt: i, err: last }, 'cannot determine the address to advertise yet');
    if (i < opts.attempts) await new Promise((r) => setTimeout(r, opts.delayS * 1000));
  }
  throw new Error(`cannot determine the callback address towards ${host}: ${last}; set ipa-advertise-host`);
}

export function callbackUrl(protocol: string, host: string, port: number): string {
  return `${protocol}://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}
