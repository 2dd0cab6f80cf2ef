// A real HTTP server for image downloads on 127.0.0.1: serves files with Content-Length, ETag,
// Last-Modified and single byte ranges (If-Range honoured), and injects faults per path:
// drop the connection after N bytes, truncate the body, send more than announced, throttle.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Fault {
  /** Destroy the socket after this many body bytes (counted per response). */
  dropAfter?: number;
  /** How many responses the drop applies to (default 1; Infinity for every one). */
  dropTimes?: number;
  /** Announce and send only this many bytes: a short file. */
  truncateTo?: number;
  /** Serve this many junk bytes after the file, as part of the body (a bigger image than expected). */
  oversizeBy?: number;
  /** Announce no length (chunked encoding). */
  chunked?: boolean;
  /** Ignore Range headers (always answer 200 with the whole file). */
  noRange?: boolean;
  /** Bytes per second. */
  rateBps?: number;
}

export interface ImageServer {
  url(name: string): string;
  serve(name: string, file: string, fault?: Fault): void;
  requests: Array<{ path: string; range: string | undefined; ifRange: string | undefined; status: number }>;
  close(): Promise<void>;
}

export async function startImageServer(): Promise<ImageServer> {
  const files = new Map<string, { file: string; fault: Fault; drops: number }>();
  const requests: ImageServer['requests'] = [];
  const server: Server = createServer((req, res) => void handle(req, res));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const name = decodeURIComponent((req.url ?? '/').slice(1).split('?')[0] ?? '');
    const entry = files.get(name);
    const rec = {
      path: name,
      range: req.headers.range,
      ifRange: req.headers['if-range'] as string | undefined,
      status: 0,
    };
    requests.push(rec);
    if (!entry) {
      rec.status = 404;
      res.writeHead(404).end('not found');
      return;
    }
    const { file, fault } = entry;
    const st = await stat(file);
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const lastModified = st.mtime.toUTCString();
    const fileBytes = fault.truncateTo !== undefined ? Math.min(fault.truncateTo, st.size) : st.size;
    const size = fileBytes + (fault.oversizeBy ?? 0);
    let start = 0;
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (range && !fault.noRange && (!ifRange || ifRange === etag || ifRange === lastModified)) {
      start = Number(range[1]);
      status = 206;
    }
    const headers: Record<string, string | number> = {
      etag,
      'last-modified': lastModified,
      'accept-ranges': 'bytes',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${size - 1}/${size}`;
    if (!fault.chunked) headers['content-length'] = size - start;
    rec.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const dropping = fault.dropAfter !== undefined && entry.drops < (fault.dropTimes ?? 1);
    if (dropping) entry.drops++;
    let sent = 0;
    const body = async function* () {
      if (start < fileBytes)
        yield* createReadStream(file, { start, end: fileBytes - 1, highWaterMark: 64 * 1024 });
      if (fault.oversizeBy) yield Buffer.alloc(Math.min(fault.oversizeBy, size - start), 0x55);
    };
    for await (const chunk of body()) {
      const c = chunk as Buffer;
      if (dropping && sent + c.length >= fault.dropAfter!) {
        res.write(c.subarray(0, fault.dropAfter! - sent));
        await new Promise((r) => setTimeout(r, 20));
        res.socket?.destroy();
        return;
      }
      if (fault.rateBps) await new Promise((r) => setTimeout(r, (c.length / fault.rateBps!) * 1000));
      sent += c.length;
      if (!res.write(c)) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (name) => `http://127.0.0.1:${port}/${encodeURIComponent(name)}`,
    serve: (name, file, fault = {}) => {
      files.set(name, { file, fault, drops: 0 });
    },
    requests,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
