// A config drive as OpenStack lays it out (ISO9660, volume label config-2,
// openstack/latest/meta_data.json), for booting the demo image by hand and in tests. The
// conductor's deploy writes its own; this one only needs xorriso.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { run as defaultRun, type Runner } from '../shared/exec.ts';

export interface ConfigDriveContent {
  /** meta_data.json, e.g. { uuid, hostname, name }. */
  metaData: Record<string, unknown>;
  userData?: string;
}

export async function makeConfigDriveIso(
  out: string,
  content: ConfigDriveContent,
  run: Runner = defaultRun,
): Promise<void> {
  mkdirSync(dirname(out), { recursive: true });
  const tree = mkdtempSync(join(dirname(out), '.configdrive-'));
  try {
    const latest = join(tree, 'openstack', 'latest');
    mkdirSync(latest, { recursive: true });
    writeFileSync(join(latest, 'meta_data.json'), JSON.stringify(content.metaData));
    if (content.userData !== undefined) writeFileSync(join(latest, 'user_data'), content.userData);
    await run('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'config-2', '-J', '-r', '-o', out, tree], {
      timeoutMs: 60_000,
    });
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}
