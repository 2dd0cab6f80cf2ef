// GET / and GET /v1: the version documents, shaped like the Ironic API's so that a ramdisk
// (Kiln's agent or a stock ironic-python-agent) can discover the microversion it may use.
// Kiln-only capabilities are advertised in a separate `kiln` member a stock agent ignores.
import Router from '@koa/router';
import type { Context } from 'koa';
import { IRONIC_API_MAX_VERSION, IRONIC_API_MIN_VERSION, KILN_VERSION } from '../../../shared/version.ts';

/** Kiln protocol extensions a Kiln agent may use once it sees them here. */
export const KILN_EXTENSIONS = ['progress'] as const;

function base(ctx: Context, publicUrl?: string): string {
  return (publicUrl ?? `${ctx.protocol}://${ctx.host}`).replace(/\/$/, '');
}

function v1(url: string) {
  return {
    id: 'v1',
    status: 'CURRENT',
    version: IRONIC_API_MAX_VERSION,
    min_version: IRONIC_API_MIN_VERSION,
    links: [{ href: `${url}/v1/`, rel: 'self' }],
  };
}

export function versionRouter(publicUrl?: string): Router {
  const r = new Router();
  r.get('/', (ctx) => {
    const url = base(ctx, publicUrl);
    ctx.body = {
      name: 'Kiln',
      description: 'Kiln bare-metal provisioning API (Ironic-compatible for ramdisks)',
      default_version: v1(url),
      versions: [v1(url)],
      kiln: { version: KILN_VERSION, extensions: KILN_EXTENSIONS },
    };
  });
  r.get(['/v1', '/v1/'], (ctx) => {
    const url = base(ctx, publicUrl);
    ctx.set('X-OpenStack-Ironic-API-Minimum-Version', IRONIC_API_MIN_VERSION);
    ctx.set('X-OpenStack-Ironic-API-Maximum-Version', IRONIC_API_MAX_VERSION);
    ctx.body = {
      id: 'v1',
      version: v1(url),
      media_types: [{ base: 'application/json', type: 'application/vnd.openstack.ironic.v1+json' }],
      links: [{ href: `${url}/v1/`, rel: 'self' }],
      nodes: [{ href: `${url}/v1/nodes/`, rel: 'self' }],
      ports: [{ href: `${url}/v1/ports/`, rel: 'self' }],
      lookup: [{ href: `${url}/v1/lookup/`, rel: 'self' }],
      heartbeat: [{ href: `${url}/v1/heartbeat/`, rel: 'self' }],
      images: [{ href: `${url}/v1/images/`, rel: 'self' }],
      openapi: [{ href: `${url}/v1/openapi.json`, rel: 'describedby' }],
    };
  });
  return r;
}
