// A minimal JSON-over-HTTP client on node:http/https. The agent bundle avoids a client library:
// it talks to one API with small bodies, and `ipa-insecure` maps directly onto node's TLS option.
import http from 'node:http';
import https from 'node:https';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs?: number;
  /** Skip TLS certificate verification (ipa-insecure). */
  insecure?: boolean;
}

export type HttpClient = (req: HttpRequest) => Promise<HttpResponse>;

export const request: HttpClient = (req) =>
  new Promise((resolve, reject) => {
    const url = new URL(req.url);
    const mod = url.protocol === 'https:' ? https : http;
    const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const headers: Record<string, string> = { ...req.headers };
    if (body) headers['Content-Length'] = String(body.length);
    const r = mod.request(
      url,
      {
        method: req.method,
        headers,
        timeout: req.timeoutMs ?? 60_000,
        rejectUnauthorized: !req.insecure,
        // A fresh connection per call: heartbeats are minutes apart and the conductor may restart.
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`${req.method} ${url.origin}${url.pathname} timed out`)));
    r.on('error', reject);
    r.end(body);
  });
