// /v1/nodes: CRUD, provision and power actions, maintenance, events.
import Router from '@koa/router';
import { z } from 'zod';
import { KilnError } from '../../../shared/errors.ts';
import {
  ListQuery,
  MaintenanceRequest,
  NodeCreate,
  NodeUpdate,
  PowerRequest,
  ProvisionRequest,
} from '../../../shared/wire/api.ts';
import { approveBmc } from '../../enroll/approve.ts';
import type { EnrollmentSettings } from '../../enroll/discovery.ts';
import { resolveNode } from '../../nodes/service.ts';
import type { ApiDeps } from '../app.ts';
import { actorOf, bodyOf, parse } from '../http.ts';
import { presentEvent, presentNode, presentNodeSummary, presentPort } from '../present.ts';

const EventsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(10_000).default(100) });
const ShowQuery = z.strictObject({ fields: z.string().optional() });
const DetailQuery = ListQuery.extend({ detail: z.enum(['true', 'false']).optional() });
const ApproveBmcRequest = z.strictObject({ address: z.string().min(1).max(255).optional() });

export function nodesRouter(deps: ApiDeps): Router {
  const { store, nodes, engine } = deps;
  const r = new Router({ prefix: '/v1/nodes' });

  r.get('/', async (ctx) => {
    const q = parse(DetailQuery, ctx.query, 'query');
    const rows = await store.nodes.list({
      provision_state: q.provision_state,
      maintenance: q.maintenance === undefined ? undefined : q.maintenance === 'true',
      driver: q.driver,
      marker: q.marker,
      limit: q.limit,
    });
    const items = q.detail === 'true' ? rows.map((n) => presentNode(n)) : rows.map(presentNodeSummary);
    ctx.body = { nodes: items, next: rows.length === q.limit ? rows.at(-1)!.uuid : null };
  });

  r.post('/', async (ctx) => {
    const input = parse(NodeCreate, bodyOf(ctx), 'node');
    const node = await nodes.create(input, actorOf(ctx));
    ctx.status = 201;
    ctx.set('Location', `/v1/nodes/${node.uuid}`);
    ctx.body = presentNode(node, await store.ports.list({ node_uuid: node.uuid }));
  });

  r.get('/:ident', async (ctx) => {
    parse(ShowQuery, ctx.query, 'query');
    const node = await resolveNode(store, ctx.params.ident!);
    ctx.body = presentNode(node, await store.ports.list({ node_uuid: node.uuid }));
  });

  r.patch('/:ident', async (ctx) => {
    const input = parse(NodeUpdate, bodyOf(ctx), 'node update');
    const node = await nodes.update(ctx.params.ident!, input, actorOf(ctx));
    ctx.body = presentNode(node, await store.ports.list({ node_uuid: node.uuid }));
  });

  r.delete('/:ident', async (ctx) => {
    await nodes.delete(ctx.params.ident!, actorOf(ctx));
    ctx.status = 204;
  });

  r.get('/:ident/ports', async (ctx) => {
    const node = await resolveNode(store, ctx.params.ident!);
    ctx.body = { ports: (await store.ports.list({ node_uuid: node.uuid })).map(presentPort) };
  });

  r.get('/:ident/states', async (ctx) => {
    const n = await resolveNode(store, ctx.params.ident!);
    ctx.body = {
      provision_state: n.provision_state,
      target_provision_state: n.target_provision_state,
      power_state: n.power_state,
      last_error: n.last_error,
      maintenance: n.maintenance,
      provision_updated_at: n.provision_updated_at,
    };
  });

  // Like Ironic: the action is accepted (202) once the first transition is committed.
  r.put('/:ident/states/provision', async (ctx) => {
    const req = parse(ProvisionRequest, bodyOf(ctx), 'provision request');
    const node = await engine.act(ctx.params.ident!, req, actorOf(ctx));
    ctx.status = 202;
    ctx.body = presentNode(node);
  });

  r.put('/:ident/states/power', async (ctx) => {
    const req = parse(PowerRequest, bodyOf(ctx), 'power request');
    const node = await engine.setPower(ctx.params.ident!, req.target, actorOf(ctx));
    ctx.body = presentNode(node);
  });

  r.get('/:ident/states/power', async (ctx) => {
    const node = await engine.readPower(ctx.params.ident!, actorOf(ctx));
    ctx.body = { power_state: node.power_state };
  });

  r.put('/:ident/maintenance', async (ctx) => {
    const req = parse(MaintenanceRequest, bodyOf(ctx), 'maintenance request');
    const node = await resolveNode(store, ctx.params.ident!);
    const updated = await store.nodes.update(node.uuid, {
      maintenance: true,
      maintenance_reason: req.reason ?? null,
    });
    await store.events.add({
      node_uuid: node.uuid,
      event: 'maintenance_on',
      actor: actorOf(ctx),
      result: 'ok',
      message: req.reason ?? null,
    });
    ctx.body = presentNode(updated);
  });

  r.delete('/:ident/maintenance', async (ctx) => {
    const node = await resolveNode(store, ctx.params.ident!);
    const updated = await store.nodes.update(node.uuid, { maintenance: false, maintenance_reason: null });
    await store.events.add({
      node_uuid: node.uuid,
      event: 'maintenance_off',
      actor: actorOf(ctx),
      result: 'ok',
    });
    ctx.body = presentNode(updated);
  });

  r.get('/:ident/events', async (ctx) => {
    const q = parse(EventsQuery, ctx.query, 'query');
    const node = await resolveNode(store, ctx.params.ident!);
    ctx.body = { events: (await store.events.list(node.uuid, { limit: q.limit })).map(presentEvent) };
  });

  // An operator's approval of a discovered BMC: the enrollment credentials go to it only now.
  r.post('/:ident/bmc/approve', async (ctx) => {
    const req = parse(ApproveBmcRequest, bodyOf(ctx) ?? {}, 'BMC approval');
    const node = await approveBmc(
      { store, nodes, engine, log: deps.log, settings: deps.enrollment },
      ctx.params.ident!,
      req.address,
      actorOf(ctx),
    );
    ctx.body = presentNode(node, await store.ports.list({ node_uuid: node.uuid }));
  });

  // Anything else under a node: name the supported verbs rather than a bare 404.
  r.all('/:ident/states/:other', (ctx) => {
    throw new KilnError(
      'NOT_FOUND',
      `unknown state endpoint ${ctx.params.other}; use states/provision or states/power`,
    );
  });

  return r;
}
