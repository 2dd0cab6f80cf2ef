// image_info as Ironic 2023.1 sends it (ipa-protocol §3.2), checked and reduced to what the
// writer needs. md5 is used only when the conductor asked for it: os_hash_algo=md5, or the
// legacy `checksum` field without a usable os_hash pair (IPA 9.4.3 treats it as md5 too).
// image_size, when given, is the byte count the download must have. The boot mode is the node's
// (IPA's get_node_boot_mode), else what image_info says; null leaves it to the ramdisk's own.
import { request } from 'undici';
import { type BootMode, nodeBootMode, nodeDiskLabel } from '../../shared/wire/ipa.ts';
import { imageDispatcher } from './stream/http-source.ts';
import type { HashAlgo } from './stream/write-image.ts';

export class ImageInfoError extends Error {
  readonly code = 'INVALID_IMAGE_INFO';
  constructor(message: string) {
    super(message);
    this.name = 'ImageInfoError';
  }
}

export interface ImageInfo {
  id: string;
  urls: string[];
  diskFormat: string | null;
  checksum: { algo: HashAlgo; value: string } | { algo: HashAlgo; url: string };
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

function bootModeOf(info: Record<string, unknown>, node: Record<string, unknown>): BootMode | null {
  const fromNode = nodeBootMode(node);
  if (fromNode) return fromNode;
  // Ironic derives image_info.deploy_boot_mode from the same node fields (and its configured default).
  const m = typeof info.deploy_boot_mode === 'string' ? info.deploy_boot_mode.toLowerCase() : null;
  return m === 'uefi' || m === 'bios' ? m : null;
}

export function parseImageInfo(raw: unknown, node: Record<string, unknown> = {}): ImageInfo {
  if (typeof raw !== 'object' || raw === null) throw new ImageInfoError('image_info is missing');
  const i = raw as Record<string, unknown>;
  if (typeof i.id !== 'string' || !i.id) throw new ImageInfoError('image_info.id is missing');
  if (!Array.isArray(i.urls) || i.urls.length === 0 || !i.urls.every((u) => typeof u === 'string')) {
    throw new ImageInfoError(`image_info for ${i.id} has no urls`);
  }
  let checksum: ImageInfo['checksum'] | null = null;
  const algo = typeof i.os_hash_algo === 'string' ? i.os_hash_algo.toLowerCase() : null;
  const legacy = typeof i.checksum === 'string' && i.checksum ? i.checksum : null;
  if (algo && typeof i.os_hash_value === 'string' && i.os_hash_value) {
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
          ephemeralFormat: typeof i.ephemeral_format === 'string' ? i.ephemeral_format : null,
          diskLabel: i.disk_label === 'gpt' || i.disk_label === 'msdos' ? i.disk_label : nodeDiskLabel(node),
        }
      : null;
  if (partition && partition.rootMb <= 0)
    throw new ImageInfoError(`partition image ${i.id} needs root_mb (or root_gb)`);
  return {
    id: i.id,
    urls: i.urls as string[],
    diskFormat: typeof i.disk_format === 'string' ? i.disk_format : null,
    checksum,
    partition,
    imageSize: byteCount(i.image_size, i.id),
    bootMode,
  };
}

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
