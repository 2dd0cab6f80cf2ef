// `kiln lab up`: the whole of Kiln on one machine. It builds the ramdisk and the demo OS image,
// creates an isolated bridge with N QEMU VMs and their virtual BMCs, starts a conductor whose
// DHCP/TFTP/HTTP serve that bridge only, and then drives every VM through Kiln's normal REST API,
// exactly as an operator would: power on → enrolled by its first PXE boot (inventory included)
// → BMC set → manageable → provide (cleaning) → available → deploy the demo image with a hostname
// → boot from disk, where the image prints that hostname from its config drive → undeploy →
// cleaning wipes the disk (checked) → available. Per-phase timings are printed at the end.
import {
  closeSync,
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import { ApiClient, type Connection } from '../cli/client.ts';
import { createToken, hashToken } from '../conductor/auth/tokens.ts';
import { loadConfig } from '../conductor/config.ts';
import { type RunningConductor, startConductor } from '../conductor/server.ts';
import { buildRamdisk, defaultAgentPath, defaultCacheDir } from '../ramdisk-build/index.ts';
import { createLogger, type Logger } from '../shared/log.ts';
import type { NodeView } from '../shared/wire/api.ts';
import { buildDemoImage, DEMO_BOOTED } from './demo-image.ts';
import { type Lab, type LabMachine, startLab } from './lab.ts';

export interface LabFlowOptions {
  vms: number;
  bmc: 'ipmi' | 'redfish';
  stateDir: string;
  index?: number;
  /** Stop after the node is active and booted (skip undeploy), e.g. to look around. */
  keep?: boolean;
  /** Deploy with the agent killed mid-write once, then retry (the fault run). */
  faultRun?: boolean;
  /** Lines for the person watching; defaults to stderr. */
  say?: (line: string) => void;
  apiPort?: number;
  /** bios (SeaBIOS, the default) or uefi (OVMF) for every VM. */
  firmware?: 'bios' | 'uefi';
}

export interface PhaseTiming {
  vm: string;
  phase: string;
  seconds: number;
}

export interface LabFlowResult {
  timings: PhaseTiming[];
  nodes: NodeView[];
}

class Clock {
  private t = performance.now();
  lap(): number {
    const now = performance.now();
    const s = (now - this.t) / 1000;
    this.t = now;
    return Math.round(s * 10) / 10;
  }
}

/** A plain static file server on the bridge: the demo image's origin (the conductor caches it). */
/**
 * The lab's admin token (a file readable only by its owner) and how a second shell reaches the
 * API with it: the token by file, never on a command line, and the self-signed certificate pinned.
 */
async function labAccess(
  conductor: RunningConductor,
  stateDir: string,
): Promise<{ connection: Connection; env: string }> {
  const file = join(stateDir, 'admin.token');
  let token = await readFile(file, 'utf8').then(
    (t) => t.trim(),
    () => '',
  );
  if (!token || !(await conductor.store.tokens.getByHash(hashToken(token)))) {
    await conductor.store.tokens.find('lab-admin').then((t) => t && conductor.store.tokens.delete(t.id));
    token = (await createToken(conductor.store.tokens, { name: 'lab-admin', role: 'admin', expiresAt: null }))
      .token;
    await rm(file, { force: true });
    await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  }
  const fp = conductor.tls?.fingerprint256;
  return {
    connection: { token, caFingerprint: fp },
    env: `KILN_API=${conductor.url} KILN_TOKEN_FILE=${file}${fp ? ` KILN_CA_FINGERPRINT=${fp}` : ''} kiln node list`,
  };
}

async function serveFile(
  path: string,
  host: string,
  rateBps?: number,
): Promise<{ url: string; server: Server }> {
  const size = statSync(path).size;
  const server = createServer((req, res) => {
    if (req.url !== '/demo.raw') {
      res.writeHead(404).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const end = m?.[2] ? Number(m[2]) : size - 1;
    res.writeHead(m ? 206 : 200, {
      'content-length': end - start + 1,
      'accept-ranges': 'bytes',
      ...(m ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
    });
    if (req.method === 'HEAD') return res.end();
    const body = createReadStream(path, { start, end, highWaterMark: 64 * 1024 });
    if (!rateBps) return body.pipe(res);
    // A slow origin, so that a write lasts long enough to be interrupted on purpose.
    body.on('data', (chunk) => {
      body.pause();
      res.write(chunk, () => setTimeout(() => body.resume(), (1000 * chunk.length) / rateBps));
    });
    body.on('end', () => res.end());
    res.on('close', () => body.destroy());
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://${host}:${port}/demo.raw`, server };
}

/** True when the first and last MiB of the disk file are zero (what metadata cleaning wipes). */
function diskEndsZeroed(path: string): boolean {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1024 * 1024);
    for (const pos of [0, size - buf.length]) {
      readSync(fd, buf, 0, buf.length, pos);
      if (buf.some((b) => b !== 0)) return false;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

/**
 * The disk holds the image: every byte of it, except the MBR partition table, which gains the
 * config drive's partition (boot code before it and everything after sector 0 must match).
 */
function diskHoldsImage(path: string, image: string): boolean {
  const size = statSync(image).size;
  const fd = openSync(path, 'r');
  const fi = openSync(image, 'r');
  try {
    const a = Buffer.alloc(1024 * 1024);
    const b = Buffer.alloc(1024 * 1024);
    for (let pos = 0; pos < size; pos += b.length) {
      const n = Math.min(b.length, size - pos);
      readSync(fd, a, 0, n, pos);
      readSync(fi, b, 0, n, pos);
      if (pos === 0) {
        b.copy(a, 446, 446, 510);
      }
      if (!a.subarray(0, n).equals(b.subarray(0, n))) return false;
    }
    return true;
  } finally {
    closeSync(fd);
    closeSync(fi);
  }
}

async function waitFor<T>(what: string, timeoutS: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutS * 1000;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`lab: timed out after ${timeoutS} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Poll a node until it rests; print state and live progress as they change. */
async function settle(
  api: ApiClient,
  uuid: string,
  want: string,
  say: (l: string) => void,
  label: string,
  timeoutS: number,
): Promise<NodeView> {
  let last = '';
  const end = Date.now() + timeoutS * 1000;
  for (;;) {
    const n = await api.call<NodeView>('GET', `/v1/nodes/${uuid}`);
    const p = n.progress as {
      phase?: string;
      bytes_done?: number;
      bytes_total?: number;
      rate_bps?: number;
    } | null;
    const prog = p?.phase
      ? ` ${p.phase}${p.bytes_done !== undefined ? ` ${(p.bytes_done / 1048576).toFixed(0)}${p.bytes_total ? `/${(p.bytes_total / 1048576).toFixed(0)}` : ''} MiB${p.rate_bps ? ` @ ${(p.rate_bps / 1048576).toFixed(1)} MiB/s` : ''}` : ''}`
      : '';
    const line = `${n.provision_state}${n.target_provision_state ? ` → ${n.target_provision_state}` : ''}${prog}`;
    if (line !== last) say(`  ${label}: ${line}`);
    last = line;
    if (n.provision_state === want && !n.target_provision_state) return n;
    if (/failed|^error$/.test(n.provision_state) || (n.provision_state === 'enroll' && n.last_error)) {
      throw new Error(`lab: ${label} ended in ${n.provision_state}: ${n.last_error ?? 'no error recorded'}`);
    }
    if (Date.now() > end)
      throw new Error(`lab: ${label} still ${n.provision_state} after ${timeoutS} s (wanted ${want})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function runLabFlow(opts: LabFlowOptions, log?: Logger): Promise<LabFlowResult> {
  const say = opts.say ?? ((l: string) => process.stderr.write(`${l}\n`));
  const stateDir = resolve(opts.stateDir);
  mkdirSync(stateDir, { recursive: true });
  const flog =
    log ??
    createLogger({
      name: 'kiln-lab',
      level: 'debug',
      destination: createWriteStream(join(stateDir, 'lab.log'), { flags: 'a' }),
    });
  // Each run starts from scratch: a new database, no leases, blank VM disks.
  for (const f of ['kiln.db', 'kiln.db-wal', 'kiln.db-shm', 'dhcp-leases.jsonl'])
    rmSync(join(stateDir, f), { force: true });
  for (let i = 0; i < opts.vms; i++) rmSync(join(stateDir, 'lab', `vm${i}`, 'disk.raw'), { force: true });
  const timings: PhaseTiming[] = [];
  const clock = new Clock();

  const agentPath = defaultAgentPath();
  if (!existsSync(agentPath)) throw new Error(`lab: ${agentPath} is missing; run 'npm run build' first`);
  say('building the ramdisk (cached after the first run) ...');
  const ramdisk = await buildRamdisk({
    outDir: join(stateDir, 'ramdisk'),
    agentPath,
    cacheDir: defaultCacheDir(),
    compression: 'zstd',
    log: flog,
  });
  say(`  initramfs ${(statSync(ramdisk.initramfs).size / 1048576).toFixed(1)} MiB`);
  say('building the demo OS image (cached after the first run) ...');
  const demo = await buildDemoImage({ log: flog, downloadCache: defaultCacheDir() });
  timings.push({ vm: '-', phase: 'build ramdisk + demo image', seconds: clock.lap() });

  let lab: Lab | undefined;
  let conductor: RunningConductor | undefined;
  let origin: Server | undefined;
  try {
    lab = await startLab({
      index: opts.index ?? 0,
      stateDir: join(stateDir, 'lab'),
      vms: opts.vms,
      bmc: opts.bmc,
      firmware: opts.firmware,
      diskBytes: 5 * 1024 ** 3,
      log: flog,
    });
    const net = lab.network;
    say(
      `lab bridge ${net.bridge}: ${net.subnet}, conductor at ${net.hostIp}; ${opts.vms} ${opts.firmware ?? 'bios'} VM(s) with ${opts.bmc} BMCs`,
    );
    const apiPort = opts.apiPort ?? 6385;
    const config = loadConfig({
      env: {},
      flags: {
        // The operator API on loopback with TLS and tokens, as in production; only the
        // provisioning endpoints face the lab's machines.
        'api.host': '127.0.0.1',
        'api.port': apiPort,
        'api.tls.dir': join(stateDir, 'tls'),
        'provisioning.host': net.hostIp,
        'provisioning.port': apiPort + 100,
        'secrets.key_file': join(stateDir, 'kiln-secrets.key'),
        'database.url': `sqlite:${join(stateDir, 'kiln.db')}`,
        'conductor.id': 'lab',
        'conductor.power_sync_interval_s': 30,
        'conductor.callback_timeout_s': 900,
        'conductor.watchdog_interval_s': 10,
        'boot.dhcp.mode': 'full',
        'boot.interfaces': [net.bridge],
        'boot.dhcp.subnets': [
          { cidr: net.subnet, range_start: net.dhcpRange.first, range_end: net.dhcpRange.last },
        ],
        'boot.dhcp.lease_file': join(stateDir, 'dhcp-leases.jsonl'),
        'boot.ramdisk_dir': join(stateDir, 'ramdisk'),
        // The fault run kills the agent from the ramdisk's console shell.
        'boot.kernel_args': ['console=ttyS0', ...(opts.faultRun ? ['kiln-shell=1'] : [])],
        'images.cache_dir': join(stateDir, 'image-cache'),
        'log.level': 'debug',
      },
    });
    conductor = await startConductor(config, flog);
    const access = await labAccess(conductor, stateDir);
    const api = new ApiClient(conductor.url, access.connection, 'lab');
    const served = await serveFile(demo.path, net.hostIp, opts.faultRun ? 1024 * 1024 : undefined);
    origin = served.server;
    await api.call('POST', '/v1/images', {
      name: 'kiln-demo',
      url: served.url,
      checksum: `sha256:${demo.sha256}`,
      size: demo.size,
    });
    say(`conductor ${conductor.url}; demo image ${demo.size} bytes, sha256 ${demo.sha256.slice(0, 16)}…`);
    say(`drive it from another shell: ${access.env}`);

    const runOne = async (m: LabMachine) => {
      const t = new Clock();
      const lap = (phase: string) => timings.push({ vm: m.name, phase, seconds: t.lap() });
      say(`${m.name}: power on (first PXE boot; nothing is registered for ${m.mac})`);
      await m.vm.setBootDevice('pxe', { persistent: false });
      await m.vm.powerOn();
      const node = await waitFor(`${m.name} to enroll itself by PXE boot`, 600, async () => {
        const r = await api.call<{ ports: { node_uuid: string }[] }>('GET', `/v1/ports?address=${m.mac}`);
        return r.ports[0] ? api.call<NodeView>('GET', `/v1/nodes/${r.ports[0].node_uuid}`) : undefined;
      });
      say(
        `  ${m.name}: enrolled as ${node.name} (${node.uuid}); inventory: ${JSON.stringify(node.properties)}`,
      );
      lap('power on → enrolled + inspected');

      // The operator's one step: tell Kiln the BMC of the machine that just appeared.
      await api.call('PATCH', `/v1/nodes/${node.uuid}`, {
        name: `lab-${m.name}`,
        bmc_address: m.bmcAddress,
        bmc_password: m.bmcPassword,
        properties: { root_device: { name: '/dev/vda' } },
      });
      await api.call('PUT', `/v1/nodes/${node.uuid}/states/provision`, { target: 'manage' });
      await settle(api, node.uuid, 'manageable', say, m.name, 120);
      lap('manage (BMC verified)');

      await api.call('PUT', `/v1/nodes/${node.uuid}/states/provision`, { target: 'provide' });
      await settle(api, node.uuid, 'available', say, m.name, 900);
      lap('provide (cleaning)');

      const hostname = `demo-${m.name}`;
      // The fault run takes place on the first VM; the others deploy straight away, alongside.
      if (opts.faultRun && m === lab!.machines[0]) {
        // Kill the agent mid-write: the deploy must fail with a clear error, and a retry succeed.
        await api.call('PUT', `/v1/nodes/${node.uuid}/states/provision`, {
          target: 'deploy',
          image: 'kiln-demo',
          hostname,
        });
        await waitFor('the image write to start', 300, async () => {
          const n = await api.call<NodeView>('GET', `/v1/nodes/${node.uuid}`);
          return (n.progress as { bytes_done?: number } | null)?.bytes_done ? n : undefined;
        });
        await m.vm.sendConsole('\r');
        await m.vm.sendConsole(
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not JS
          'for p in /proc/[0-9]*; do grep -q agent.mjs $p/cmdline 2>/dev/null && kill -9 ${p#/proc/}; done\r',
        );
        say(`  ${m.name}: killed the agent during the image write`);
        const failed = await waitFor('deploy failed', 600, async () => {
          const n = await api.call<NodeView>('GET', `/v1/nodes/${node.uuid}`);
          return n.provision_state === 'deploy failed' ? n : undefined;
        });
        say(`  ${m.name}: deploy failed as expected: ${failed.last_error}`);
        lap('fault run: agent killed → deploy failed');
      }
      await api.call('PUT', `/v1/nodes/${node.uuid}/states/provision`, {
        target: 'deploy',
        image: 'kiln-demo',
        hostname,
      });
      const consoleMark = m.vm.consoleMark();
      await settle(api, node.uuid, 'active', say, m.name, 1200);
      lap('deploy (stream + verify + reboot)');
      const booted = await m.vm.waitForConsole(DEMO_BOOTED, { since: consoleMark, timeoutMs: 300_000 });
      if (booted.match[1] !== hostname)
        throw new Error(`lab: ${m.name} booted with hostname ${booted.match[1]}, expected ${hostname}`);
      if (!diskHoldsImage(m.vm.diskPath, demo.path))
        throw new Error(`lab: ${m.name}'s disk does not hold the demo image byte for byte`);
      say(`  ${m.name}: console says "${booted.match[0]}"`);
      lap('boot from disk → marker with hostname');
      if (opts.keep) return;

      await api.call('PUT', `/v1/nodes/${node.uuid}/states/provision`, { target: 'undeploy' });
      await settle(api, node.uuid, 'available', say, m.name, 900);
      if (!diskEndsZeroed(m.vm.diskPath))
        throw new Error(`lab: ${m.name}'s disk still has data in its first or last MiB after cleaning`);
      say(`  ${m.name}: disk wiped (first and last MiB read back as zeros)`);
      lap('undeploy (cleaning, verified)');
    };
    await Promise.all(lab.machines.map(runOne));
    const nodes = (await api.call<{ nodes: NodeView[] }>('GET', '/v1/nodes?detail=true')).nodes;
    say('\nper-phase timings (seconds):');
    for (const t of timings)
      say(`  ${t.vm.padEnd(5)} ${t.phase.padEnd(42)} ${t.seconds.toFixed(1).padStart(7)}`);
    return { timings, nodes };
  } finally {
    origin?.close();
    await conductor?.close().catch(() => {});
    await lab?.down().catch(() => {});
  }
}
