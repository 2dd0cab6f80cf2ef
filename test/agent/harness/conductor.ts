// A conductor-side process for protocol tests: the real ramdisk router and version router on koa
// over an SQLite store, plus /test/* endpoints to seed nodes and read back what arrived.
// Usage: node --import tsx test/agent/harness/conductor.ts --db PATH [--port N]
//          [--heartbeat-timeout S] [--stock] [--fast-track]
// Prints one JSON line {"port": N} once listening. --stock answers GET / like a stock Ironic
// (no "kiln" member), so agents must not use Kiln extensions.
import { parseArgs } from 'node:util';
import Router from '@koa/router';
import Koa from 'koa';
import {
  createRamdiskRouter,
  recordingHeartbeats,
  versionRouter,
  wipeAgentToken,
} from '../../../conductor/ramdisk/ramdisk-api.ts';
import { openSqliteStore } from '../../../conductor/store/sqlite.ts';
import { createLogger } from '../../../shared/log.ts';
import type { ProvisionState } from '../../../shared/states.ts';
import { IRONIC_API_MAX_VERSION, IRONIC_API_MIN_VERSION } from '../../../shared/version.ts';

const { values } = parseArgs({
  options: {
    db: { type: 'string' },
    port: { type: 'string', default: '0' },
    'heartbeat-timeout': { type: 'string', default: '300' },
    stock: { type: 'boolean', default: false },
    'fast-track': { type: 'boolean', default: false },
  },
});

const store = await openSqliteStore(values.db ?? ':memory:');
const log = createLogger({ name: 'harness', level: process.env.KILN_LOG_LEVEL ?? 'warn' });

interface Seen {
  at: number;
  method: string;
  path: string;
  query: string;
  version: string | null;
  body: unknown;
  status: number;
}
const seen: Seen[] = [];
const heartbeatsHandled: string[] = [];

const app = new Koa();
app.silent = true;
app.use(async (ctx, next) => {
  const at = Date.now();
  // Capture the JSON body for the record, then hand it to the router already parsed.
  if (ctx.method === 'POST') {
    const chunks: Buffer[] = [];
    for await (const c of ctx.req as AsyncIterable<Buffer>) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      (ctx.request as { body?: unknown }).body = text ? JSON.parse(text) : {};
    } catch {
      (ctx.request as { body?: unknown }).body = text;
    }
  }
  await next();
  if (!ctx.path.startsWith('/test/')) {
    seen.push({
      at,
      method: ctx.method,
      path: ctx.path,
      query: ctx.querystring,
      version: ctx.get('X-OpenStack-Ironic-API-Version') || null,
      body: (ctx.request as { body?: unknown }).body ?? null,
      status: ctx.status,
    });
  }
});

const test = new Router({ prefix: '/test' });
test.post('/nodes', async (ctx) => {
  const b = (ctx.request as { body?: unknown }).body as {
    uuid: string;
    name?: string;
    provision_state: ProvisionState;
    macs: string[];
  };
  await store.nodes.create({
    uuid: b.uuid,
    name: b.name,
    driver: 'fake',
    provision_state: b.provision_state,
  });
  for (const [i, mac] of b.macs.entries()) {
    await store.ports.create({
      uuid: crypto.randomUUID(),
      address: mac,
      node_uuid: b.uuid,
      pxe_enabled: i === 0,
    });
  }
  ctx.body = await store.nodes.get(b.uuid);
});
test.get('/nodes/:uuid', async (ctx) => {
  ctx.body = (await store.nodes.get(ctx.params.uuid!)) ?? null;
});
test.post('/nodes/:uuid/wipe', async (ctx) => {
  ctx.body = await wipeAgentToken(store, ctx.params.uuid!);
});
test.get('/seen', (ctx) => {
  ctx.body = { seen, heartbeats_handled: heartbeatsHandled };
});

// A stand-in for the enrollment call-back: known MACs name their node, unknown ones get a new
// node waiting for inspection.
const inspection = new Router();
inspection.post('/v1/continue', async (ctx) => {
  const body = (ctx.request as { body?: unknown }).body as {
    inventory?: { interfaces?: { mac_address: string }[] };
  };
  const macs = (body.inventory?.interfaces ?? []).map((i) => i.mac_address);
  for (const mac of macs) {
    const port = await store.ports.getByAddress(mac);
    if (port) {
      ctx.body = { uuid: port.node_uuid };
      return;
    }
  }
  const uuid = crypto.randomUUID();
  await store.nodes.create({ uuid, driver: 'fake', provision_state: 'inspect wait' });
  for (const mac of macs)
    await store.ports.create({ uuid: crypto.randomUUID(), address: mac, node_uuid: uuid });
  ctx.body = { uuid };
});

const stockVersion = new Router();
stockVersion.get('/', (ctx) => {
  const v = {
    id: 'v1',
    links: [{ href: `${ctx.origin}/v1/`, rel: 'self' }],
    status: 'CURRENT',
    min_version: IRONIC_API_MIN_VERSION,
    version: IRONIC_API_MAX_VERSION,
  };
  ctx.body = { name: 'OpenStack Ironic API', description: 'stock', default_version: v, versions: [v] };
});

const ramdisk = createRamdiskRouter({
  store,
  log,
  fastTrack: values['fast-track'] ?? false,
  heartbeatTimeoutS: Number(values['heartbeat-timeout']),
  heartbeats: recordingHeartbeats(store, 'harness', (node) => heartbeatsHandled.push(node.uuid)),
});

for (const r of [values.stock ? stockVersion : versionRouter(), ramdisk, inspection, test]) {
  app.use(r.routes());
  app.use(r.allowedMethods());
}

const server = app.listen(Number(values.port), '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : null })}\n`);
});

const shutdown = () => {
  server.close();
  server.closeAllConnections();
  void store.close().then(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
