// The inspection call-back (ipa-inspection-callback-url): before lookup, post the inventory the
// way IPA posts it to ironic-inspector's /v1/continue. Kiln's conductor uses it to enroll
// machines it has never seen. A `{"uuid": ...}` answer names the node for the lookup that follows.
// Failures are logged and the agent goes on to lookup, as IPA does.
import type { Logger } from '../shared/log.ts';
import { defaultRootDisk } from '../shared/root-disk.ts';
import type { KilnInventory } from '../shared/wire/ipa.ts';
import type { HttpClient } from './http.ts';
import { AGENT_VERSION } from './version.ts';

/** IPA's default root disk without hints (shared/root-disk.ts). */
export { defaultRootDisk };

export interface InspectionOptions {
  url: string;
  inventory: KilnInventory;
  bootif: string | null;
  /** base64 tar.gz of the system logs (IPA's "logs" collector), if collected. */
  logs?: string;
  http: HttpClient;
  log: Logger;
  insecure?: boolean;
  attempts?: number;
  delayMs?: number;
}

/** Post the inspection data; returns the node UUID from the answer, or null. */
export async function callInspector(opts: InspectionOptions): Promise<string | null> {
  const body = {
    inventory: opts.inventory,
    root_disk: defaultRootDisk(opts.inventory.disks),
    boot_interface: opts.bootif,
    configuration: {
      collectors: opts.logs ? ['default', 'logs'] : ['default'],
      managers: [{ name: 'generic_hardware_manager', version: '1.1' }],
    },
    ...(opts.logs ? { logs: opts.logs } : {}),
    error: opts.inventory.kiln_collector_failures.length
      ? opts.inventory.kiln_collector_failures.map((f) => `${f.collector}: ${f.message}`).join('\n')
      : null,
  };
  const attempts = opts.attempts ?? 5;
  for (let i = 1; i <= attempts; i++) {
    try {
      const res = await opts.http({
        method: 'POST',
        url: opts.url,
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          'User-Agent': `kiln-agent/${AGENT_VERSION}`,
        },
        body,
        insecure: opts.insecure,
        timeoutMs: 60_000,
      });
      if (res.status >= 200 && res.status < 300) {
        let uuid: string | null = null;
        try {
          const j = JSON.parse(res.text) as { uuid?: unknown };
          uuid = typeof j.uuid === 'string' ? j.uuid : null;
        } catch {
          uuid = null;
        }
        opts.log.info({ node: uuid }, 'inspection data accepted');
        return uuid;
      }
      opts.log.error(
        { status: res.status, body: res.text.slice(0, 300) },
        'inspection call-back refused the data',
      );
      return null;
    } catch (e) {
      // Only connection problems are retried; the conductor may still be starting.
      opts.log.warn({ attempt: i, err: (e as Error).message }, 'inspection call-back unreachable');
      if (i < attempts) await new Promise((r) => setTimeout(r, opts.delayMs ?? 5000));
    }
  }
  return null;
}
