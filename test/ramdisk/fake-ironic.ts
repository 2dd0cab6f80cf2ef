// The smallest conductor a ramdisk agent can talk to: answers IPA's version discovery (GET /),
// lookup (known MAC -> node + token) and heartbeat, and records every request with the time it
// arrived. Listens on loopback only; QEMU's user network forwards the guest's connections here.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  /** performance.now() when the request arrived. */
  at: number;
  method: string;
  path: string;
  query: URLSearchParams;
  userAgent: string;
  body: unknown;
}

export interface FakeIronic {
  port: number;
  nodeUuid: string;
  agentToken: string;
  seen: SeenRequest[];
  /** Resolves with the first request matching pred (already seen or still to come). */
  waitFor(pred: (r: SeenRequest) => boolean, timeoutMs: number, what: string): Promise<SeenRequest>;
  close(): Promise<void>;
}

export async function startFakeIronic(opts: { knownMac: string }): Promise<FakeIronic> {
  const nodeUuid = randomUUID();
  const agentToken = randomUUID().replaceAll('-', '');
  const seen: SeenRequest[] = [];
  const waiters: { pred: (r: SeenRequest) => boolean; resolve: (r: SeenRequest) => void }[] = [];

  const server: Server = createServer((req, res) => {
    const at = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://conductor');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        // keep the raw text
      }
      const r: SeenRequest = {
        at,
        method: req.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        userAgent: String(req.headers['user-agent'] ?? ''),
        body,
      };
      seen.push(r);
      for (const w of [...waiters]) {
        if (w.pred(r)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(r);
        }
      }
      const send = (status: number, doc?: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(doc === undefined ? '' : JSON.stringify(doc));
      };
      if (r.method === 'GET' && r.path === '/') {
        send(200, {
          name: 'OpenStack Ironic API',
          versions: [{ id: 'v1', status: 'CURRENT', version: '1.68', min_version: '1.1' }],
          default_version: { id: 'v1', status: 'CURRENT', version: '1.68', min_version: '1.1' },
        });
      } else if (r.method === 'GET' && r.path === '/v1/lookup') {
        const macs = (r.query.get('addresses') ?? '').toLowerCase().split(',');
        if (!macs.includes(opts.knownMac.toLowerCase()))
          return send(404, { error_message: 'Node not found' });
        send(200, { node: { uuid: nodeUuid }, config: { heartbeat_timeout: 300, agent_token: agentToken } });
      } else if (r.method === 'POST' && r.path === `/v1/heartbeat/${nodeUuid}`) {
        send(202);
      } else {
        send(404, { error_message: `no route for ${r.method} ${r.path}` });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    port: (server.address() as AddressInfo).port,
    nodeUuid,
    agentToken,
    seen,
    waitFor(pred, timeoutMs, what) {
      const hit = seen.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(entry), 1);
          reject(new Error(`no ${what} within ${timeoutMs / 1000}s; requests seen: ${describe(seen)}`));
        }, timeoutMs);
        const entry = {
          pred,
          resolve: (r: SeenRequest) => {
            clearTimeout(timer);
            resolve(r);
          },
        };
        waiters.push(entry);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function describe(seen: SeenRequest[]): string {
  return seen.length ? seen.map((r) => `${r.method} ${r.path}`).join(', ') : 'none';
}
