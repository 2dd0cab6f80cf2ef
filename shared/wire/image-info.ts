// image_info as Ironic 2023.1 sends it (ipa-protocol §3.2): one schema for what travels, and one
// parser that reduces it to what the writer needs. The conductor checks what it builds with it
// before sending; the agent reads what it receives with it. md5 is used only when the conductor
// asked for it: os_hash_algo=md5, or the legacy `checksum` field without a usable os_hash pair
// (IPA 9.4.3 treats it as md5 too). image_size, when given, is the byte count the download must
// have. The boot mode is the node's (IPA's get_node_boot_mode), else what image_info says; null
// leaves it to the ramdisk's own.
// zod/mini: the agent bundles this file.
import * as z from 'zod/mini';
import { type BootMode, checkWire, nodeBootMode, nodeDiskLabel } from './ipa.ts';

export class ImageInfoError extends Error {
  readonly code = 'INVALID_IMAGE_INFO';
  constructor(message: string) {
    super(message);
    this.name = 'ImageInfoError';
  }
}

const onstr = z.optional(z.nullable(z.string()));
/** Sizes: Ironic sends integers; digits in a string and '' are tolerated, as IPA tolerates them. */
const size = z.optional(z.nullable(z.union([z.number(), z.string()])));

/** image_info on the wire (extra keys pass: Ironic adds more than an agent reads). */
export const ImageInfoWire = z.looseObject({
  id: z.string().check(z.minLength(1)),
  urls: z.array(z.string()),
  disk_format: onstr,
  container_format: onstr,
  checksum: onstr,
  os_hash_algo: onstr,
  os_hash_value: onstr,
  image_size: size,
  image_type: onstr,
  root_mb: size,
  root_gb: size,
  swap_mb: size,
  ephemeral_mb: size,
  ephemeral_format: onstr,
  disk_label: onstr,
  deploy_boot_mode: onstr,
  boot_option: onstr,
  stream_raw_images: z.optional(z.nullable(z.boolean())),
  node_uuid: onstr,
});
export type ImageInfoWire = z.input<typeof ImageInfoWire>;

/** Params of standby.prepare_image, and args of the write_image deploy step. */
export const PrepareImageParams = z.looseObject({
  image_info: ImageInfoWire,
  configdrive: z.optional(z.nullable(z.string())),
});
export type PrepareImageParams = z.input<typeof PrepareImageParams>;

export type ImageHashAlgo = 'sha256' | 'sha512' | 'md5';

export interface ImageInfo {
  id: string;
  urls: string[];
  diskFormat: string | null;
  checksum: { algo: ImageHashAlgo; value: string } | { algo: ImageHashAlgo; url: string };
  partition: null | {
    rootMb: number;
    swapMb: number;
    ephemeralMb: number;
    ephemeralFormat: string | null;
    diskLabel: 'gpt' | 'msdos' | null;
  };
  imageSize: number | null;
  /** What the node (or else image_info.deploy_boot_mode) asks for; null: the node says nothing. */
  bootMode: BootMode | null;
}

const num = (v: unknown): number => (v === undefined || v === null || v === '' ? 0 : Number(v));

/** image_size: the image's length in bytes as the catalog knows it (a number, or digits in a string). */
function byteCount(v: unknown, id: string): number | null {
  if (v === undefined || v === null || v === '') return null;
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
    throw new ImageInfoError(`image ${id}: image_size ${JSON.stringify(v)} is not a byte count`);
  return n;
}

function bootModeOf(
  info: { deploy_boot_mode?: string | null },
  node: Record<string, unknown>,
): BootMode | null {
  const fromNode = nodeBootMode(node);
  if (fromNode) return fromNode;
  // Ironic derives image_info.deploy_boot_mode from the same node fields (and its configured default).
  const m = info.deploy_boot_mode?.toLowerCase() ?? null;
  return m === 'uefi' || m === 'bios' ? m : null;
}

/** Check image_info and reduce it to what the writer needs; ImageInfoError names what is wrong. */
export function parseImageInfo(raw: unknown, node: Record<string, unknown> = {}): ImageInfo {
  if (typeof raw !== 'object' || raw === null) throw new ImageInfoError('image_info is missing');
  const checked = checkWire(ImageInfoWire, raw, 'image_info');
  if (!checked.ok) throw new ImageInfoError(`malformed image_info: ${checked.message}`);
  const i = checked.data;
  if (i.urls.length === 0) throw new ImageInfoError(`image_info for ${i.id} has no urls`);
  let checksum: ImageInfo['checksum'] | null = null;
  const algo = i.os_hash_algo ? i.os_hash_algo.toLowerCase() : null;
  const legacy = i.checksum || null;
  if (algo && i.os_hash_value) {
    if (algo === 'sha256' || algo === 'sha512' || algo === 'md5') {
      checksum = /^https?:\/\//.test(i.os_hash_value)
        ? { algo, url: i.os_hash_value }
        : { algo, value: i.os_hash_value };
    } else if (!legacy) {
      throw new ImageInfoError(`image ${i.id}: os_hash_algo ${algo} is not supported (sha256, sha512, md5)`);
    }
  }
  // IPA falls back to the legacy md5 `checksum` when it can't use the os_hash pair.
  if (!checksum && legacy) {
    checksum = /^https?:\/\//.test(legacy) ? { algo: 'md5', url: legacy } : { algo: 'md5', value: legacy };
  }
  if (!checksum) {
    throw new ImageInfoError(
      `image ${i.id} has neither os_hash_algo/os_hash_value nor checksum; refusing to write an unverified image`,
    );
  }
  const bootMode = bootModeOf(i, node);
  const partition: ImageInfo['partition'] =
    i.image_type === 'partition'
      ? {
          rootMb: num(i.root_mb) || num(i.root_gb) * 1024,
          swapMb: num(i.swap_mb),
          ephemeralMb: num(i.ephemeral_mb),
          ephemeralFormat: i.ephemeral_format ?? null,
          diskLabel: i.disk_label === 'gpt' || i.disk_label === 'msdos' ? i.disk_label : nodeDiskLabel(node),
        }
      : null;
  if (partition && !(partition.rootMb > 0))
    throw new ImageInfoError(`partition image ${i.id} needs root_mb (or root_gb)`);
  return {
    id: i.id,
    urls: i.urls,
    diskFormat: i.disk_format ?? null,
    checksum,
    partition,
    imageSize: byteCount(i.image_size, i.id),
    bootMode,
  };
}
