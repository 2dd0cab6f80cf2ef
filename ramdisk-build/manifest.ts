// The shape of manifest.json, written by lib/manifest.mjs next to `kernel` and `initramfs`.
// Readers (the CLI, the conductor serving a ramdisk, tests) parse it with this schema so a
// manifest from another Kiln version fails loudly instead of half-working.
import { z } from 'zod';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const RamdiskManifestSchema = z.object({
  schema: z.literal(1),
  sourceDateEpoch: z.number().int().nonnegative(),
  compression: z.enum(['zstd', 'xz', 'gzip']),
  kernel: z.object({
    file: z.literal('kernel'),
    /** uname -r of the kernel, e.g. 6.1.0-56-amd64 */
    release: z.string(),
    package: z.string(),
    version: z.string(),
    size: z.number().int().positive(),
    sha256,
  }),
  initramfs: z.object({
    file: z.literal('initramfs'),
    size: z.number().int().positive(),
    sha256,
    uncompressedSize: z.number().int().positive(),
    /** Concatenated archives: the cached base (everything but the agent), then the agent. */
    layers: z.array(
      z.object({
        name: z.string(),
        key: z.string().optional(),
        size: z.number().int().positive(),
        sha256,
        uncompressedSize: z.number().int().positive(),
      }),
    ),
  }),
  node: z.object({ package: z.string(), version: z.string(), integrity: z.string() }),
  busybox: z.object({ package: z.string(), version: z.string() }),
  agent: z.object({ path: z.string(), size: z.number().int().positive(), sha256 }),
  components: z.array(z.object({ name: z.string(), files: z.number().int(), bytes: z.number().int() })),
  packages: z.array(
    z.object({
      role: z.enum(['kernel', 'busybox', 'tool', 'lib']),
      name: z.string(),
      version: z.string(),
      debSha256: sha256,
    }),
  ),
});

export type RamdiskManifest = z.infer<typeof RamdiskManifestSchema>;
