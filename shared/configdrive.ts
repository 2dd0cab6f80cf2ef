// Building an OpenStack config drive: the conductor makes one for every deploy, and tests and
// tools make them too. Putting one on a disk is the agent's business (agent/disk/configdrive.ts).
//   {hostname, uuid, public_keys, network_data, user_data} → ISO 9660 labelled config-2
//   (xorriso, Rock Ridge + Joliet so the long names survive) with
//   openstack/latest/{meta_data.json,network_data.json,user_data}, or a FAT image
//   (mkfs.vfat + mcopy) when asked or when xorriso is missing; gzip + base64 for the wire.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { run as defaultRun, type Runner } from './exec.ts';

export const CONFIG_DRIVE_LABEL = 'config-2';

export interface ConfigDriveContent {
  hostname: string;
  uuid: string;
  /** name → OpenSSH public key line. */
  public_keys?: Record<string, string>;
  /** OpenStack network_data.json (links, networks with static IPs, services). */
  network_data?: Record<string, unknown>;
  /** cloud-init user data (#cloud-config, a script, ...). */
  user_data?: string | null;
  /** Extra meta_data.json keys (availability_zone, meta, ...). */
  meta_data?: Record<string, unknown>;
}

export interface BuildOptions {
  format?: 'iso' | 'vfat';
  run?: Runner;
}

async function populate(root: string, c: ConfigDriveContent): Promise<void> {
  const dir = join(root, 'openstack', 'latest');
  await mkdir(dir, { recursive: true });
  const meta = {
    ...c.meta_data,
    uuid: c.uuid,
    hostname: c.hostname,
    name: c.hostname,
    public_keys: c.public_keys ?? {},
  };
  await writeFile(join(dir, 'meta_data.json'), JSON.stringify(meta));
  await writeFile(
    join(dir, 'network_data.json'),
    JSON.stringify(c.network_data ?? { links: [], networks: [], services: [] }),
  );
  if (c.user_data != null) await writeFile(join(dir, 'user_data'), c.user_data);
}

/** The config drive image (ISO 9660 or FAT) as bytes. */
export async function buildConfigDriveImage(c: ConfigDriveContent, opts: BuildOptions = {}): Promise<Buffer> {
  const run = opts.run ?? defaultRun;
  const tmp = await mkdtemp(join(tmpdir(), 'kiln-configdrive-'));
  try {
    const root = join(tmp, 'root');
    await populate(root, c);
    const out = join(tmp, 'configdrive.img');
    let format = opts.format ?? 'iso';
    if (format === 'iso') {
      try {
        await run('xorriso', [
          '-as',
          'mkisofs',
          '-quiet',
          '-o',
          out,
          '-V',
          CONFIG_DRIVE_LABEL,
          '-R',
          '-J',
          '-input-charset',
          'utf-8',
          root,
        ]);
      } catch (e) {
        if ((e as { missing?: boolean }).missing !== true || opts.format === 'iso') throw e;
        format = 'vfat';
      }
    }
    if (format === 'vfat') {
      await run('mkfs.vfat', ['-n', 'CONFIG-2', '-C', out, '4096']);
      await run('mcopy', ['-s', '-i', out, join(root, 'openstack'), '::']);
    }
    return await readFile(out);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** What the conductor sends: base64(gzip(image)). */
export async function buildConfigDrive(c: ConfigDriveContent, opts: BuildOptions = {}): Promise<string> {
  return gzipSync(await buildConfigDriveImage(c, opts)).toString('base64');
}
