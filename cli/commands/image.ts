// `kiln image …`: the image catalog.
import type { Command } from 'commander';
import type { ImageView } from '../../shared/wire/api.ts';
import type { ApiClient } from '../client.ts';
import { keyValues, print, table } from '../output.ts';

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
      print(img, json, () => keyValues(img as unknown as Record<string, unknown>));
    });
  image.command('list').action(async () => {
    const { client, json } = ctx();
    const r = await client.call<{ images: ImageView[] }>('GET', '/v1/images');
    print(r, json, () =>
      table(r.images as unknown as Record<string, unknown>[], [
        'uuid',
        'name',
        'format',
        'size',
        'checksum_algo',
        'url',
      ]),
    );
  });
  image.command('show <image>').action(async (ident) => {
    const { client, json } = ctx();
    const img = await client.call<ImageView>('GET', `/v1/images/${encodeURIComponent(ident)}`);
    print(img, json, () => keyValues(img as unknown as Record<string, unknown>));
  });
  image
    .command('rm <image>')
    .alias('delete')
    .action(async (ident) => {
      const { client, json } = ctx();
      await client.call('DELETE', `/v1/images/${encodeURIComponent(ident)}`);
      print({ deleted: ident }, json, () => `deleted ${ident}`);
    });
}
