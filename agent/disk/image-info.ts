// image_info's schema and parser are shared with the conductor (shared/wire/image-info.ts); here
// is what only the agent does with it: fetch a checksum given as a URL.
import { request } from 'undici';
import { type ImageInfo, ImageInfoError } from '../../shared/wire/image-info.ts';
import { imageDispatcher } from './stream/http-source.ts';
import type { HashAlgo } from './stream/write-image.ts';

/** A checksum given as a URL: fetch the checksums file and find the image's line. */
export async function resolveChecksum(
  c: ImageInfo['checksum'],
  imageUrl: string,
  imageId: string,
): Promise<{ algo: HashAlgo; value: string }> {
  if ('value' in c) return c;
  const res = await request(c.url, { dispatcher: imageDispatcher });
  const text = await res.body.text();
  if (res.statusCode !== 200)
    throw new ImageInfoError(`checksum file ${c.url} answered HTTP ${res.statusCode}`);
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const file = imageUrl.split('/').pop() ?? imageId;
  const hex = /^[0-9a-f]{32,128}$/i;
  const pick =
    lines.length === 1 && hex.test(lines[0]!.split(/\s+/)[0]!)
      ? lines[0]!
      : lines.find((l) =>
          l
            .split(/\s+/)
            .slice(1)
            .some((n) => n.replace(/^\*/, '') === file || n.replace(/^\*/, '') === imageId),
        );
  const value = pick?.split(/\s+/)[0];
  if (!value || !hex.test(value)) throw new ImageInfoError(`checksum file ${c.url} has no entry for ${file}`);
  return { algo: c.algo, value };
}
