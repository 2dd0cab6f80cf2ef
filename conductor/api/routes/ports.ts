// /v1/ports: a node's NICs by MAC; how PXE boots and ramdisk lookups find their node.
import Router from '@koa/router';
import { z } from 'zod';
import { KilnError } from '../../../shared/errors.ts';
import { normaliseMac } from '../../../shared/mac.ts';
import { PortCreate } from '../../../shared/wire/api.ts';
import { resolveNode } from '../../nodes/service.ts';
import type { ApiDeps } from '../app.ts';
import { actorOf, bodyOf, parse } from '../http.ts';
import { presentPort } from '../present.ts';

const PortQuery = z.strictObject({
  node: z.string().optional(),
  address: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(1000),
  marker: z.string().optional(),
});

export function portsRouter(deps: ApiDeps): Router {
  const { store, nodes } = deps;
  const r = new Router({ prefix: '/v1/ports' });

  r.get('/', async (ctx) => {
    const q = parse(PortQuery, ctx.query, 'query');
    if (q.address) {
      const p = await store.ports.getByAddress(normaliseMac(q.address) ?? q.address);
      ctx.body = { ports: p ? [presentPort(p)] : [] };
      return;
    }
    const node_uuid = q.node ? (await resolveNode(store, q.node)).uuid : undefined;
    ctx.body = {
      ports: (await store.ports.list({ node_uuid, limit: q.limit, marker: q.marker })).map(presentPort),
    };
  });

  r.post('/', async (ctx) => {
    const input = parse(PortCreate, bodyOf(ctx), 'port');
    const port = await nodes.addPort(input, actorOf(ctx));
    ctx.status = 201;
    ctx.body = presentPort(port);
  });

  r.get('/:uuid', async (ctx) => {
    const p = await store.ports.get(ctx.params.uuid!);
    if (!p) throw new KilnError('NOT_FOUND', `port ${ctx.params.uuid} not found`);
    ctx.body = presentPort(p);
  });

  r.delete('/:ident', async (ctx) => {
    await nodes.deletePort(ctx.params.ident!, actorOf(ctx));
    ctx.status = 204;
  });
  return r;
}
