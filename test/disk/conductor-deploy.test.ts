// Deploys from the catalog the way Kiln runs them: the conductor's provision engine and agent
// workflow build image_info and drive the real agent (its command API, executor and disk engine,
// in this process) over HTTP with the conductor's agent client, onto a loop device. So what the
// conductor sends is checked against what the agent reads: the catalog size must reach the
// agent's length check, and the node's boot mode the partition layout.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { loadPlugins } from '../../agent/plugins.ts';
import { FakePowerDriver } from '../../conductor/power/fake.ts';
import { createAgentWorkflow } from '../../conductor/provision/agent-workflow.ts';
import { ProvisionEngine } from '../../conductor/provision/engine.ts';
import { AgentClient } from '../../conductor/ramdisk/client.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import type { ImageRecord, NewNode, NodeRecord } from '../../conductor/store/store.ts';
import { silentLogger } from '../../shared/log.ts';
import { type InProcessAgent, startInProcessAgent } from '../agent/in-process.ts';
import { type Fault, type ImageServer, startImageServer } from '../support/image-server.ts';
import { createLoopDevice, type LoopDevice } from '../support/loopdev.ts';
import { waitFor } from '../support/wait.ts';
import { MiB, makeRawImage, sha256File } from './fixtures.ts';

const log = silentLogger();
const TOKEN = 'k'.repeat(43);
const client = new AgentClient({ log, retryDelayMs: 100, pollIntervalMs: 100 });
let dir: string;
let server: ImageServer;
let disk: LoopDevice;
let agent: InProcessAgent;
let agentUrl: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-conductor-deploy-'));
  server = await startImageServer();
  disk = await createLoopDevice(256 * MiB);
  agent = await startInProcessAgent({
    flags: { 'agent-token': TOKEN, 'allow-device': [disk.path] },
    // The ramdisk "booted in UEFI", so only the node's own boot mode can make a BIOS layout.
    loadPlugins: (ctx) => loadPlugins(ctx, { bootedInUefi: async () => true }),
    log,
  });
  agentUrl = agent.url;
});
after(async () => {
  await client.close();
  await agent?.stop();
  await server?.close();
  await disk?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function agentIdle(target: NodeRecord): Promise<void> {
  await waitFor(
    'the agent to finish its last command',
    async () => (await client.listCommands(target)).at(-1)?.command_status !== 'RUNNING',
    120_000,
  );
}

/**
 * Deploy `image` from a fresh catalog to a node whose agent is alive (fast-track), wait for the
 * agent's write_image, then let the workflow look (what the agent's heartbeat would trigger).
 */
async function deploy(
  image: Pick<ImageRecord, 'url' | 'checksum' | 'size'> & Partial<ImageRecord>,
  node: Partial<NewNode> = {},
): Promise<NodeRecord> {
  const store = await openSqliteStore(':memory:');
  const fake = new FakePowerDriver({ initialPower: 'on' });
  const engine = new ProvisionEngine({
    store,
    power: { get: () => fake },
    log,
    workflowFor: () =>
      createAgentWorkflow({
        clientFor: (n) => client.forNode(n),
        imageUrl: (img) => img.url,
        fastTrack: true,
      }),
    conductorId: 'test',
  });
  try {
    await store.images.create({
      uuid: randomUUID(),
      name: 'catalog-image',
      checksum_algo: 'sha256',
      format: 'raw',
      image_type: 'whole-disk',
      ...image,
    });
    const uuid = randomUUID();
    await store.nodes.create({
      uuid,
      driver: 'fake',
      bmc_address: `fake://${uuid}`,
      provision_state: 'available',
      power_state: 'power on',
      ...node,
      properties: { root_device: { name: disk.path }, ...node.properties },
      driver_internal_info: {
        agent_url: agentUrl,
        agent_secret_token: TOKEN,
        agent_last_heartbeat: new Date().toISOString(),
      },
    });
    const target = (await store.nodes.get(uuid))!;
    // The previous deploy's standby.power_off (a sync) may still be running.
    await agentIdle(target);
    await engine.act(uuid, { target: 'deploy', image: 'catalog-image' }, 'test');
    await engine.drain();
    await agentIdle(target);
    await engine.resume(uuid);
    await engine.drain();
    return (await store.nodes.get(uuid))!;
  } finally {
    await store.close();
  }
}

describe('catalog image size', () => {
  let file: string;
  let bytes: number;
  let checksum: string;

  before(async () => {
    file = join(dir, 'image.raw');
    bytes = (await makeRawImage(file, 8 * MiB)).length;
    checksum = await sha256File(file);
  });

  const serve = (name: string, fault?: Fault) => {
    server.serve(name, file, fault);
    return server.url(name);
  };

  test('an image of the catalog size is written and the node goes active', async () => {
    const n = await deploy({ url: serve('exact.raw'), checksum, size: bytes });
    assert.equal(n.provision_state, 'active', n.last_error ?? '');
  });

  test('a server announcing fewer bytes than the catalog says fails, naming both sizes', async () => {
    const n = await deploy({ url: serve('short.raw'), checksum, size: bytes + 4096 });
    assert.equal(n.provision_state, 'deploy failed');
    assert.match(
      n.last_error ?? '',
      new RegExp(`server says ${bytes} bytes, the image should have ${bytes + 4096}`),
    );
  });

  test('a server announcing more bytes than the catalog says fails, naming both sizes', async () => {
    const n = await deploy({ url: serve('long.raw'), checksum, size: bytes - 4096 });
    assert.equal(n.provision_state, 'deploy failed');
    assert.match(
      n.last_error ?? '',
      new RegExp(`server says ${bytes} bytes, the image should have ${bytes - 4096}`),
    );
  });

  test('without Content-Length, a body shorter than the catalog size fails, naming both sizes', async () => {
    const n = await deploy({
      url: serve('short-chunked.raw', { chunked: true }),
      checksum,
      size: bytes + 4096,
    });
    assert.equal(n.provision_state, 'deploy failed');
    assert.match(n.last_error ?? '', new RegExp(`delivered ${bytes} bytes, expected ${bytes + 4096}`));
  });

  test('without Content-Length, a body longer than the catalog size fails, naming both sizes', async () => {
    const n = await deploy({
      url: serve('long-chunked.raw', { chunked: true }),
      checksum,
      size: bytes - 4096,
    });
    assert.equal(n.provision_state, 'deploy failed');
    assert.match(
      n.last_error ?? '',
      new RegExp(`sent at least (\\d+) bytes, more than the expected ${bytes - 4096}`),
    );
    const sent = Number(/sent at least (\d+) bytes/.exec(n.last_error ?? '')![1]);
    assert.ok(sent > bytes - 4096 && sent <= bytes, `${sent}`);
  });
});

describe('partition image boot mode', () => {
  let image: Pick<ImageRecord, 'url' | 'checksum' | 'size' | 'image_type'>;
  let fsUuid: string;

  before(async () => {
    const rootDir = join(dir, 'rootfs');
    await mkdir(join(rootDir, 'etc'), { recursive: true });
    await writeFile(join(rootDir, 'etc', 'hostname'), 'partition\n');
    const fs = join(dir, 'root.img');
    await execa('truncate', ['-s', '64M', fs]);
    await execa('mkfs.ext4', ['-q', '-F', '-d', rootDir, fs]);
    fsUuid = (await execa('blkid', ['-p', '-o', 'value', '-s', 'UUID', fs])).stdout.trim();
    await execa('gzip', ['-1', '-k', '-f', fs]);
    server.serve('root.img.gz', `${fs}.gz`);
    image = {
      url: server.url('root.img.gz'),
      checksum: await sha256File(`${fs}.gz`),
      size: null,
      image_type: 'partition',
    };
  });

  const pttype = async () =>
    (await execa('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', disk.path])).stdout.trim();

  test("a node that booted in BIOS mode (Kiln's properties.boot_mode) gets an MBR layout without an ESP", async () => {
    const n = await deploy(image, { properties: { boot_mode: 'bios' }, instance_info: { root_mb: 96 } });
    assert.equal(n.provision_state, 'active', n.last_error ?? '');
    assert.equal(await pttype(), 'dos');
    assert.equal(n.instance_info.root_uuid, fsUuid);
    const types = (await execa('lsblk', ['-n', '-o', 'PARTTYPE', disk.path])).stdout.trim().split('\n');
    assert.ok(!types.some((t) => t.trim() === '0xef'), `no ESP: ${types.join(', ')}`);
  });

  test('the boot_mode capability (IPA) wins over what inspection found', async () => {
    const n = await deploy(image, {
      properties: { boot_mode: 'uefi', capabilities: 'boot_mode:bios,disk_label:gpt' },
      instance_info: { root_mb: 96 },
    });
    assert.equal(n.provision_state, 'active', n.last_error ?? '');
    // BIOS on GPT: a 1 MiB BIOS boot partition first, then the root filesystem.
    assert.equal(await pttype(), 'gpt');
    const parts = (await execa('sgdisk', ['-p', disk.path])).stdout;
    assert.match(parts, /^\s+1\s.*\sEF02\s/m);
    assert.equal(n.instance_info.root_uuid, fsUuid);
  });
});
