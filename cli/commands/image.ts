// `kiln image …`: the image catalog.
import type { Command } from 'commander';
import type { ImageView } from '../../shared/wire/api.ts';
import type { ApiClient } from '../client.ts';
import {
  addOutputOptions,
  bytes,
  keyValues,
  type ListSpec,
  outputOpts,
  print,
  renderList,
  renderShow,
} from '../output.ts';

const IMAGE_LIST: ListSpec = {
  key: 'images',
  columns: ['uuid', 'name', 'format', 'size', 'checksum_algo', 'url'],
  long: ['uuid', 'name', 'image_type', 'format', 'size', 'checksum_algo', 'checksum', 'url', 'created_at'],
};

/** An image for people: its size in GiB beside the bytes. json/yaml keep the raw number. */
function humanImage(img: Record<string, unknown>): Record<string, unknown> {
  return typeof img.size === 'number' ? { ...img, size: `${bytes(img.size)} (${img.size} bytes)` } : img;
}

export function registerImageCommands(
  program: Command,
  ctx: () => { client: ApiClient; json: boolean },
): void {
  const image = program.command('image').description('the image catalog');
  image
    .command('add <name> <url>')
    .description('register an image by URL and checksum')
    .requiredOption(
      '--checksum <[algo:]hex>',
      'sha256:HEX, sha512:HEX or md5:HEX; a bare HEX of 64 or 128 digits is sha256 or sha512',
    )
    .option('--size <bytes>', 'expected download size in bytes')
    .option('--format <format>', 'raw, qcow2, gzip, xz, zstd or auto (detected from the bytes)', 'auto')
    .option('--partition', 'a partition image (root filesystem only) rather than a whole disk')
    .action(async (name, url, o) => {
      const { client, json } = ctx();
      const img = await client.call<ImageView>('POST', '/v1/images', {
        name,
        url,
        checksum: o.checksum,
        size: o.size ? Number(o.size) : undefined,
        format: o.format,
        image_type: o.partition ? 'partition' : 'whole-disk',
      });
      print(img, json, () => keyValues(humanImage(img as unknown as Record<string, unknown>)));
    });
  addOutputOptions(image.command('list').description('list the images'), 'list').action(async (o) => {
    const { client, json } = ctx();
    const r = await client.call<{ images: ImageView[] }>('GET', '/v1/images');
    process.stdout.write(
      `${renderList(r.images as unknown as Record<string, unknown>[], IMAGE_LIST, outputOpts(o, json))}\n`,
    );
  });
  addOutputOptions(image.command('show <image>').description('show an image'), 'show').action(
    async (ident, o) => {
      const { client, json } = ctx();
      const img = await client.call<ImageView>('GET', `/v1/images/${encodeURIComponent(ident)}`);
      process.stdout.write(
        `${renderShow(img as unknown as Record<string, unknown>, outputOpts(o, json), humanImage)}\n`,
      );
    },
  );
  image
    .command('rm <image>')
    .alias('delete')
    .action(async (ident) => {
      const { client, json } = ctx();
      await client.call('DELETE', `/v1/images/${encodeURIComponent(ident)}`);
      print({ deleted: ident }, json, () => `deleted ${ident}`);
    });
}
