// /v1/images: the image catalog. An image is a URL plus the checksum the agent verifies while
// it streams; Kiln never deploys bytes it can't verify. Its URL must be http(s), on a host
// images.allowed_hosts allows: the conductor's cache fetches it, from the conductor's network.
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import { KilnError } from '../../../shared/errors.ts';
import { ProvisionState } from '../../../shared/states.ts';
import { ImageCreate } from '../../../shared/wire/api.ts';
import { imageUrlProblem, maskUrl } from '../../images/url-policy.ts';
import type { Store } from '../../store/store.ts';
import type { ApiDeps } from '../app.ts';
import { bodyOf, parse } from '../http.ts';
import { presentImage } from '../present.ts';

export async function resolveImage(store: Store, ident: string) {
  const img = (await store.images.get(ident)) ?? (await store.images.getByName(ident));
  if (!img) throw new KilnError('NOT_FOUND', `image ${ident} not found; list images with 'kiln image list'`);
  return img;
}

/** The images router's own settings, beside the API's dependencies. */
export interface ImagesRouterDeps {
  /** images.allowed_hosts: hosts an image URL may name (exact or .suffix); empty or absent: any host. */
  imageAllowedHosts?: readonly string[];
}

/** A 400 naming the url field, unless the URL is http(s) on an allowed host. Never echoes secrets. */
export function checkImageUrl(input: unknown, allowedHosts: readonly string[]): void {
  const url = (input as { url?: unknown } | null)?.url;
  if (typeof url !== 'string') return; // the schema reports a missing or non-string url
  const problem = imageUrlProblem(url, allowedHosts);
  if (problem)
    throw new KilnError('VALIDATION_FAILED', `invalid image: url: ${problem}`, {
      details: [{ path: 'url', message: problem, url: maskUrl(url) }],
    });
}

export function imagesRouter(deps: ApiDeps & ImagesRouterDeps): Router {
  const { store } = deps;
  const allowedHosts = deps.imageAllowedHosts ?? [];
  const r = new Router({ prefix: '/v1/images' });

  r.get('/', async (ctx) => {
    ctx.body = { images: (await store.images.list()).map(presentImage) };
  });

  r.post('/', async (ctx) => {
    // Before the schema, so a file:// or gopher:// URL gets the reason, not "Invalid URL".
    checkImageUrl(bodyOf(ctx), allowedHosts);
    const input = parse(ImageCreate, bodyOf(ctx), 'image');
    if (await store.images.getByName(input.name)) {
      throw new KilnError(
        'CONFLICT',
        `an image named ${input.name} already exists; remove it first or pick another name`,
      );
    }
    const img = await store.images.create({
      uuid: randomUUID(),
      name: input.name,
      url: input.url,
      checksum_algo: input.checksum.algo,
      checksum: input.checksum.hex,
      format: input.format,
      size: input.size ?? null,
      image_type: input.image_type,
    });
    ctx.status = 201;
    ctx.body = presentImage(img);
  });

  r.get('/:ident', async (ctx) => {
    ctx.body = presentImage(await resolveImage(store, ctx.params.ident!));
  });

  r.delete('/:ident', async (ctx) => {
    const img = await resolveImage(store, ctx.params.ident!);
    // Refuse while a node is being deployed from it: its agent may still be streaming it.
    for (const state of [ProvisionState.deploying, ProvisionState.waitCallBack]) {
      const users = (await store.nodes.list({ provision_state: state, limit: 100_000 })).filter(
        (n) => n.instance_info.image_uuid === img.uuid,
      );
      if (users.length) {
        throw new KilnError(
          'CONFLICT',
          `image ${img.name} is being deployed to ${users.map((n) => n.name ?? n.uuid).join(', ')}; wait for the deploy to finish`,
        );
      }
    }
    await store.images.delete(img.uuid);
    ctx.status = 204;
  });
  return r;
}
