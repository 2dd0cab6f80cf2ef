// Builds the real ramdisk (Debian kernel, busybox init, Node 24, tools, the agent bundled from
// agent/main.ts) and boots it under QEMU (TCG, 1 GiB RAM, a virtio disk and NIC). The agent inside
// must find the conductor by itself: DHCP from QEMU's user network, ipa-api-url on the kernel
// command line, GET / and GET /v1/lookup with the VM's MAC, then heartbeats; the test then asks
// the agent for its inventory through its own API and looks for the VM's disk and NIC.
//
// The first run downloads ~90 MB of .debs and the 52 MB node tarball and compresses the base
// layer (a few minutes); later runs reuse the cache (KILN_RAMDISK_CACHE, default
// ~/.cache/kiln/ramdisk) and only rebuild the small agent layer.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { checkServerIdentity } from 'node:tls';
import { Agent, request } from 'undici';
import { type BuildRamdiskResult, buildRamdisk, defaultCacheDir } from '../../ramdisk-build/index.ts';
import { buildAgent } from '../agent/helpers.ts';
import { type FakeIronic, startFakeIronic } from './fake-ironic.ts';
import { CONDUCTOR_IP, freePort, GUEST_IP, startVm, type Vm } from './vm.ts';

const MAC = '52:54:00:6b:69:6c';
const DISK_BYTES = 64 * 1024 * 1024;
const BOOT_BUDGET_MS = 240_000;

const tmp = mkdtempSync(join(tmpdir(), 'kiln-ramdisk-test-'));
let built: BuildRamdiskResult;
const ironics: FakeIronic[] = [];
const vms: Vm[] = [];

before(async () => {
  const agent = await buildAgent(join(tmp, 'agent.mjs'));
  built = await buildRamdisk({
    outDir: join(tmp, 'out'),
    agentPath: agent,
    cacheDir: defaultCacheDir(),
    compression: 'zstd',
  });
  console.log(built.sizeTable);
});

after(async () => {
  for (const v of vms) await v.stop();
  for (const i of ironics) await i.close();
  rmSync(tmp, { recursive: true, force: true });
});

function sparseDisk(name: string): string {
  const disk = join(tmp, name);
  writeFileSync(disk, '');
  truncateSync(disk, DISK_BYTES);
  return disk;
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

test('the build writes kernel, initramfs and a manifest that describes them', () => {
  const m = built.manifest;
  assert.equal(m.kernel.sha256, sha256(built.kernel));
  assert.equal(m.kernel.size, statSync(built.kernel).size);
  assert.equal(m.initramfs.sha256, sha256(built.initramfs));
  assert.equal(m.initramfs.size, statSync(built.initramfs).size);
  assert.equal(
    m.initramfs.layers.reduce((s, l) => s + l.size, 0),
    m.initramfs.size,
  );
  assert.match(m.node.version, /^24\./);
  assert.equal(m.agent.sha256, sha256(join(tmp, 'agent.mjs')));
  const names = m.components.map((c) => c.name);
  for (const c of ['node', 'modules', 'libs', 'tools', 'busybox', 'agent']) assert.ok(names.includes(c), c);
  for (const p of ['gdisk', 'util-linux', 'ipmitool', 'nvme-cli', 'e2fsprogs', 'efibootmgr']) {
    assert.ok(
      m.packages.some((x) => x.name === p && x.role === 'tool'),
      `${p} listed as a tool package`,
    );
  }
  // The budget: 60 MB compressed at most.
  assert.ok(m.initramfs.size <= 60_000_000, `initramfs is ${m.initramfs.size} bytes`);
});

test('the ramdisk boots in 1 GiB, the agent looks itself up, heartbeats and reports its inventory', async () => {
  const ironic = await startFakeIronic({ knownMac: MAC });
  ironics.push(ironic);
  const disk = sparseDisk('disk.img');
  const agentPort = await freePort();
  const vm = startVm({
    kernel: built.kernel,
    initramfs: built.initramfs,
    append: `ipa-api-url=http://${CONDUCTOR_IP} BOOTIF=01-${MAC.replaceAll(':', '-')} ipa-insecure=1`,
    mac: MAC,
    disk,
    conductorPort: ironic.port,
    agentPort,
    consoleLog: join(tmp, 'console.log'),
  });
  vms.push(vm);
  const t0 = vm.startedAt;
  const since = (at: number) => `${((at - t0) / 1000).toFixed(1)} s`;
  try {
    const root = await ironic.waitFor(
      (r) => r.method === 'GET' && r.path === '/' && r.userAgent.startsWith('kiln-agent'),
      BOOT_BUDGET_MS,
      'GET / from the agent',
    );
    const lookup = await ironic.waitFor(
      (r) => r.method === 'GET' && r.path === '/v1/lookup',
      30_000,
      'GET /v1/lookup',
    );
    assert.ok(
      (lookup.query.get('addresses') ?? '').split(',').includes(MAC),
      `lookup addresses ${lookup.query.get('addresses')} include ${MAC}`,
    );
    const hb = await ironic.waitFor(
      (r) => r.method === 'POST' && r.path === `/v1/heartbeat/${ironic.nodeUuid}`,
      60_000,
      'heartbeat',
    );
    const body = hb.body as { callback_url: string; agent_token?: string; agent_verify_ca?: string };
    // Auto-TLS, as IPA does it: a per-boot certificate for the guest's address, sent to be pinned.
    assert.equal(body.callback_url, `https://${GUEST_IP}:9999`);
    assert.match(body.agent_verify_ca ?? '', /^-----BEGIN CERTIFICATE-----/);
    // The agent is reached through QEMU's port forward on loopback, but the certificate names
    // the guest's own address: that is the name to verify.
    const pinned = new Agent({
      connect: {
        ca: body.agent_verify_ca,
        checkServerIdentity: (_host, cert) => checkServerIdentity(GUEST_IP, cert),
      },
    });
    assert.equal(body.agent_token, ironic.agentToken);
    console.log(
      `QEMU start -> GET / ${since(root.at)}, -> lookup ${since(lookup.at)}, -> first heartbeat ${since(hb.at)}`,
    );

    // The init's own view: the NIC that reached the conductor.
    await vm.waitForConsole(/kiln-init: network: eth0 10\.0\.2\.15\/24 reaches 10\.0\.2\.100:80/, 1000);

    const res = await request(
      `https://127.0.0.1:${agentPort}/v1/commands/?wait=true&agent_token=${ironic.agentToken}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'poll.get_hardware_info', params: {} }),
        signal: AbortSignal.timeout(120_000),
        dispatcher: pinned,
      },
    );
    assert.equal(res.statusCode, 200);
    const record = (await res.body.json()) as {
      command_status: string;
      command_result: {
        interfaces: { name: string; mac_address: string }[];
        disks: { name: string; size: number; serial?: string | null }[];
        memory: { physical_mb?: number; total?: number };
        kiln_collector_failures: { collector: string; message: string }[];
      };
    };
    assert.equal(record.command_status, 'SUCCEEDED');
    const inv = record.command_result;
    const nic = inv.interfaces.find((i) => i.mac_address === MAC);
    assert.ok(nic, `inventory interfaces ${JSON.stringify(inv.interfaces)} include ${MAC}`);
    const vda = inv.disks.find((d) => d.name === '/dev/vda');
    assert.ok(vda, `inventory disks ${JSON.stringify(inv.disks)} include /dev/vda`);
    assert.equal(vda.size, DISK_BYTES);
    console.log(`inventory: nic ${nic.name} ${nic.mac_address}, disk ${vda.name} ${vda.size} bytes`);
    if (inv.kiln_collector_failures.length) console.log('collector failures:', inv.kiln_collector_failures);
  } catch (e) {
    console.log(`--- VM console (tail) ---\n${vm.console().split('\n').slice(-80).join('\n')}`);
    throw e;
  }
});

test('with two NICs the init skips the BOOTIF NIC that cannot reach the conductor and uses the other', async () => {
  // eth0 (BOOTIF) gets a DHCP lease on a network with no way to the conductor; eth1 reaches it.
  const bootifMac = '52:54:00:6b:69:01';
  const ironic = await startFakeIronic({ knownMac: bootifMac });
  ironics.push(ironic);
  const vm = startVm({
    kernel: built.kernel,
    initramfs: built.initramfs,
    append: `ipa-api-url=http://${CONDUCTOR_IP} BOOTIF=${bootifMac}`,
    mac: MAC,
    extraNics: [{ mac: bootifMac, net: '10.0.3.0/24' }],
    disk: sparseDisk('disk2.img'),
    conductorPort: ironic.port,
    agentPort: await freePort(),
    consoleLog: join(tmp, 'console2.log'),
  });
  vms.push(vm);
  try {
    await vm.waitForConsole(/kiln-init: NICs: eth0 eth1 \(BOOTIF NIC: eth0\)/, BOOT_BUDGET_MS);
    await vm.waitForConsole(/kiln-init: network: eth1 10\.0\.2\.15\/24 reaches 10\.0\.2\.100:80/, 60_000);
    const lookup = await ironic.waitFor((r) => r.path === '/v1/lookup', 60_000, 'GET /v1/lookup');
    const addresses = (lookup.query.get('addresses') ?? '').split(',');
    assert.ok(addresses.includes(bootifMac) && addresses.includes(MAC), `lookup addresses ${addresses}`);
    const hb = await ironic.waitFor(
      (r) => r.path === `/v1/heartbeat/${ironic.nodeUuid}`,
      60_000,
      'heartbeat',
    );
    // The agent advertises the address of the NIC that reached the conductor.
    assert.equal((hb.body as { callback_url: string }).callback_url, `https://${GUEST_IP}:9999`);
    console.log(`two NICs: QEMU start -> lookup ${((lookup.at - vm.startedAt) / 1000).toFixed(1)} s`);
  } catch (e) {
    console.log(`--- VM console (tail) ---\n${vm.console().split('\n').slice(-60).join('\n')}`);
    throw e;
  }
});
