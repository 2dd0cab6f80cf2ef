// The lab's demo OS image: built by demo-image/build.sh (syslinux + Debian kernel + a busybox
// initramfs that reports its config drive on the console), cached under a key of everything that
// goes into it, so only the first `kiln lab up` on a machine pays the ~20 s build.
//
// On boot the image prints one of these lines on the serial console, then stays up with a shell:
//   KILN-DEMO-BOOTED hostname=<hostname> uuid=<uuid> configdrive=<device> uptime=<s>
//   KILN-DEMO-NO-CONFIGDRIVE uptime=<s>
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { run as defaultRun, type Runner } from '../shared/exec.ts';
import type { Logger } from '../shared/log.ts';
import { silentLogger } from '../shared/log.ts';

export const DEMO_BOOTED = /KILN-DEMO-BOOTED hostname=(\S+) uuid=(\S+)/;
export const DEMO_NO_CONFIGDRIVE = /KILN-DEMO-NO-CONFIGDRIVE/;

export interface DemoImage {
  path: string;
  sha256: string;
  size: number;
  kernel: string;
}

export interface DemoImageOptions {
  /** Where built images are kept; default $KILN_LAB_CACHE or ~/.cache/kiln/lab. */
  cacheDir?: string;
  /** Where Debian packages are downloaded; shared with the ramdisk build by default. */
  downloadCache?: string;
  kernelPackage?: string;
  log?: Logger;
  run?: Runner;
}

/** lab/demo-image beside this module, or, once bundled into dist/kiln.mjs, ../lab/demo-image. */
const HERE =
  [join(import.meta.dirname, 'demo-image'), join(import.meta.dirname, '..', 'lab', 'demo-image')].find((d) =>
    existsSync(join(d, 'build.sh')),
  ) ?? join(import.meta.dirname, 'demo-image');

export function defaultLabCache(): string {
  return (
    process.env.KILN_LAB_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kiln', 'lab')
  );
}

/** The candidate version apt would download, so a Debian kernel update makes a new image. */
function candidate(pkg: string): string {
  const r = spawnSync('apt-cache', ['policy', pkg], { encoding: 'utf8' });
  return /Candidate:\s*(\S+)/.exec(r.stdout ?? '')?.[1] ?? 'unknown';
}

export function demoImageKey(kernelPackage = 'linux-image-amd64'): string {
  const h = createHash('sha256');
  for (const f of ['build.sh', 'init']) h.update(readFileSync(join(HERE, f)));
  h.update(`${kernelPackage} ${candidate(kernelPackage)} busybox-static ${candidate('busybox-static')}`);
  h.update(process.env.SOURCE_DATE_EPOCH ?? '');
  return h.digest('hex').slice(0, 16);
}

/** Build the demo image, or return the cached one for the same inputs. */
export async function buildDemoImage(opts: DemoImageOptions = {}): Promise<DemoImage> {
  const log = (opts.log ?? silentLogger()).child({ component: 'lab-demo-image' });
  const run = opts.run ?? defaultRun;
  const kernelPackage = opts.kernelPackage ?? 'linux-image-amd64';
  const dir = join(opts.cacheDir ?? defaultLabCache(), 'demo-image');
  mkdirSync(dir, { recursive: true });
  const key = demoImageKey(kernelPackage);
  const out = join(dir, `kiln-demo-${key}.raw`);
  if (!existsSync(`${out}.json`) || !existsSync(out)) {
    const started = Date.now();
    // build.sh takes a lock and re-checks, so concurrent callers build once.
    const args = [join(HERE, 'build.sh'), '--out', out, '--if-missing', '--kernel-package', kernelPackage];
    if (opts.downloadCache) args.push('--cache', opts.downloadCache);
    await run('bash', args, { timeoutMs: 15 * 60_000 });
    log.info({ path: out, ms: Date.now() - started }, 'demo image built');
    // Images of older inputs are never used again.
    for (const f of readdirSync(dir)) {
      if (f.startsWith('kiln-demo-') && !f.startsWith(`kiln-demo-${key}.`))
        rmSync(join(dir, f), { force: true });
    }
  }
  const meta = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as {
    size: number;
    sha256: string;
    kernel: string;
  };
  return { path: out, sha256: meta.sha256, size: meta.size, kernel: meta.kernel };
}

/**
 * Copy an image onto the start of a disk file without truncating it, as a deploy writes a block
 * device (the rest of the disk keeps whatever it held).
 */
export async function writeImageToDisk(image: string, disk: string): Promise<void> {
  await pipeline(createReadStream(image), createWriteStream(disk, { flags: 'r+' }));
}
