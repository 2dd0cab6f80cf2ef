// The agent workflow against a scripted agent at its seam (AgentCommands): which commands it
// sends in which order, how it waits, and how it fails. The real agent is driven end to end by
// the lab test; these pin the sequencing rules.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { silentLogger } from '../../shared/log.ts';
import type { CommandRecord, Inventory, Step } from '../../shared/wire/ipa.ts';
import { FakePowerDriver } from '../power/fake.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import { type AgentCommands, createAgentWorkflow } from './agent-workflow.ts';
import { ProvisionEngine } from './engine.ts';

/** A scripted agent: records what it is sent; the test decides what its command list says. */
class ScriptedAgent implements AgentCommands {
  sent: string[] = [];
  commands: CommandRecord[] = [];
  private rec(name: string, status: CommandRecord['command_status'], result: unknown = null): CommandRecord {
    const c = {
      id: randomUUID(),
      command_name: name,
      command_status: status,
      command_error: null,
      command_result: result,
    } as CommandRecord;
    this.commands.push(c);
    return c;
  }
  finishLast(status: 'SUCCEEDED' | 'FAILED', result: unknown = null, error: unknown = null) {
    const c = this.commands.at(-1)!;
    Object.assign(c, { command_status: status, command_result: result, command_error: error });
  }
  async getCleanSteps(): Promise<Step[]> {
    this.sent.push('get_clean_steps');
    return ['erase_devices', 'erase_devices_metadata', 'erase_devices_express', 'burnin_cpu'].map(
      (step) => ({ step, interface: 'deploy', priority: 0 }) as Step,
    );
  }
  async executeCleanStep(step: Step): Promise<CommandRecord> {
    this.sent.push(`clean:${step.step}`);
    return this.rec('execute_clean_step', 'RUNNING');
  }
  async executeDeployStep(step: Step): Promise<CommandRecord> {
    this.sent.push(`deploy:${step.step}`);
    this.lastDeployArgs = step.args as Record<string, unknown>;
    return this.rec('execute_deploy_step', 'RUNNING');
  }
  lastDeployArgs: Record<string, unknown> = {};
  async listCommands() {
    return this.commands;
  }
  async getPartitionUuids() {
    this.sent.push('get_partition_uuids');
    return { 'root uuid': '0x1234abcd' };
  }
  async installBootloader(): Promise<CommandRecord> {
    this.sent.push('install_bootloader');
    return this.rec('install_bootloader', 'SUCCEEDED');
  }
  inventory?: Inventory;
  async getHardwareInfo(): Promise<Inventory> {
    this.sent.push('get_hardware_info');
    if (this.inventory) return this.inventory;
    return {
      interfaces: [{ mac_address: '52:54:00:aa:00:02' }],
      cpu: { count: 4, architecture: 'x86_64' },
      memory: { total: 2 ** 31, physical_mb: 2048 },
      disks: [{ name: '/dev/vda', size: 8 * 2 ** 30 }],
    } as unknown as Inventory;
  }
  async powerOff() {
    this.sent.push('power_off');
  }
}

async function setup(alive: boolean) {
  const store = await openSqliteStore(':memory:');
  const fake = new FakePowerDriver({ initialPower: 'on' });
  const agent = new ScriptedAgent();
  const workflow = createAgentWorkflow({
    clientFor: () => agent,
    imageUrl: (img) => `http://conductor/images/${img.uuid}`,
    configDrive: async (n) => `cd-for-${n.instance_info.hostname}`,
    fastTrack: true,
  });
  const engine = new ProvisionEngine({
    store,
    power: { get: () => fake },
    log: silentLogger(),
    workflowFor: () => workflow,
    conductorId: 't',
  });
  await store.images.create({
    uuid: randomUUID(),
    name: 'img',
    url: 'http://origin/img',
    checksum_algo: 'sha256',
    checksum: 'b'.repeat(64),
    format: 'raw',
    size: 100,
    image_type: 'whole-disk',
  });
  const node = await store.nodes.create({
    uuid: randomUUID(),
    driver: 'fake',
    bmc_address: 'fake://n',
    provision_state: 'manageable',
    power_state: 'power on',
    driver_internal_info: alive
      ? {
          agent_url: 'http://10.0.0.9:9999',
          agent_secret_token: 't'.repeat(43),
          agent_last_heartbeat: new Date().toISOString(),
        }
      : {},
  });
  const state = async () => (await store.nodes.get(node.uuid))!;
  return { store, fake, agent, engine, node, state };
}

/** manageable → available without cleaning, as if the node had been cleaned before. */
async function makeAvailable(t: Awaited<ReturnType<typeof setup>>): Promise<void> {
  const r = await t.store.nodes.reserve(t.node.uuid, 't:x');
  await t.store.nodes.transition({
    uuid: t.node.uuid,
    from: 'manageable',
    to: 'available',
    target: null,
    reservation: r.reservation!,
    event: { node_uuid: t.node.uuid, event: 'x', actor: 't', result: 'ok' },
  });
  await t.store.nodes.release(t.node.uuid, 't:x');
}

/** A partition image called "part" in the catalog. */
function addPartitionImage(t: { store: Awaited<ReturnType<typeof setup>>['store'] }) {
  return t.store.images.create({
    uuid: randomUUID(),
    name: 'part',
    url: 'http://origin/part',
    checksum_algo: 'sha256',
    checksum: 'c'.repeat(64),
    format: 'raw',
    size: null,
    image_type: 'partition',
  });
}

describe('agent workflow', () => {
  it('cleans a live agent at once (fast-track): metadata then express, one step per call-back', async () => {
    const t = await setup(true);
    await t.engine.act(t.node.uuid, { target: 'provide' }, 'op');
    await t.engine.drain();
    assert.equal((await t.state()).provision_state, 'clean wait');
    assert.deepEqual(t.agent.sent, ['get_clean_steps', 'clean:erase_devices_metadata']);
    await t.engine.resume(t.node.uuid);
    assert.deepEqual(t.agent.sent.length, 2, 'a running step is left alone');
    t.agent.finishLast('SUCCEEDED', { clean_step: { step: 'erase_devices_metadata', interface: 'deploy' } });
    await t.engine.resume(t.node.uuid);
    assert.equal(t.agent.sent.at(-1), 'clean:erase_devices_express');
    t.agent.finishLast('SUCCEEDED', { clean_step: { step: 'erase_devices_express', interface: 'deploy' } });
    await t.engine.resume(t.node.uuid);
    const n = await t.state();
    assert.equal(n.provision_state, 'available');
    assert.equal(n.driver_internal_info.clean_step_list, undefined);
    assert.ok(n.driver_internal_info.agent_url, 'fast-track keeps the agent');
  });

  it('reboots into the ramdisk over PXE when no agent is alive', async () => {
    const t = await setup(false);
    await t.engine.act(t.node.uuid, { target: 'provide' }, 'op');
    await t.engine.drain();
    assert.equal((await t.state()).provision_state, 'clean wait');
    assert.deepEqual(t.agent.sent, []);
    const bmc = t.fake.state('fake://n');
    const pxe = bmc.calls.findIndex((c) => c.startsWith('setBootDevice pxe'));
    const reboot = bmc.calls.findIndex((c) => c.startsWith('setPower reboot'));
    assert.ok(pxe >= 0 && reboot > pxe, bmc.calls.join(', '));
    assert.equal(bmc.lastBootDevice, 'pxe', 'the reboot used the one-time PXE override');
  });

  it('deploys: write_image with the cached URL, checksum and config drive, then boots from disk', async () => {
    const t = await setup(true);
    await makeAvailable(t);
    await t.engine.act(t.node.uuid, { target: 'deploy', image: 'img', hostname: 'web-1' }, 'op');
    await t.engine.drain();
    assert.equal((await t.state()).provision_state, 'wait call-back');
    const info = t.agent.lastDeployArgs.image_info as Record<string, unknown>;
    assert.match(String((info.urls as string[])[0]), /^http:\/\/conductor\/images\//);
    assert.equal(info.os_hash_algo, 'sha256');
    assert.equal(info.os_hash_value, 'b'.repeat(64));
    assert.equal(info.image_size, 100, "the catalog size, under IPA's name");
    assert.equal(t.agent.lastDeployArgs.configdrive, 'cd-for-web-1');
    t.agent.finishLast('SUCCEEDED', { deploy_step: { step: 'write_image', interface: 'deploy' } });
    await t.engine.resume(t.node.uuid);
    const n = await t.state();
    assert.equal(n.provision_state, 'active');
    assert.equal(n.instance_info.root_uuid, '0x1234abcd');
    assert.equal(
      n.driver_internal_info.agent_secret_token,
      undefined,
      'the ramdisk is gone once the instance boots',
    );
    assert.deepEqual(t.agent.sent, ['deploy:write_image', 'get_partition_uuids', 'power_off']);
    const bmc = t.fake.state('fake://n');
    assert.equal(bmc.bootDevice, 'disk');
    assert.equal(bmc.bootPersistent, true);
    assert.equal(bmc.power, 'on');
  });

  it("a partition image carries the node's boot mode (when it has one) and disk label, as Ironic sends them", async () => {
    const deployPartition = async (properties: Record<string, unknown>) => {
      const t = await setup(true);
      await makeAvailable(t);
      await addPartitionImage(t);
      await t.store.nodes.update(t.node.uuid, { properties, instance_info: { root_mb: 2048 } });
      await t.engine.act(t.node.uuid, { target: 'deploy', image: 'part' }, 'op');
      await t.engine.drain();
      return t.agent.lastDeployArgs.image_info as Record<string, unknown>;
    };
    const info = await deployPartition({ boot_mode: 'bios', capabilities: 'disk_label:gpt' });
    assert.equal(info.image_type, 'partition');
    assert.equal(info.root_mb, 2048);
    assert.equal(info.deploy_boot_mode, 'bios');
    assert.equal(info.boot_option, 'local');
    assert.equal(info.disk_label, 'gpt');
    assert.equal('image_size' in info, false, 'no catalog size, no image_size');
    // A node that says nothing about its boot mode leaves the choice to the ramdisk.
    const silent = await deployPartition({});
    assert.equal('deploy_boot_mode' in silent, false);
    assert.equal('disk_label' in silent, false);
  });

  it('refuses to send image_info the agent would refuse: a partition image with no root_mb', async () => {
    const t = await setup(true);
    await makeAvailable(t);
    await addPartitionImage(t);
    await t.engine.act(t.node.uuid, { target: 'deploy', image: 'part' }, 'op');
    await t.engine.drain();
    const n = await t.state();
    assert.equal(n.provision_state, 'deploy failed');
    assert.match(n.last_error!, /cannot deploy image part .*partition image part needs root_mb/);
    assert.ok(!t.agent.sent.includes('deploy:write_image'), 'nothing sent to the agent');
  });

  it('fails a deploy whose agent restarted mid-write, and forgets that agent', async () => {
    const t = await setup(true);
    await makeAvailable(t);
    await t.engine.act(t.node.uuid, { target: 'deploy', image: 'img' }, 'op');
    await t.engine.drain();
    t.agent.commands = [];
    assert.equal(await t.engine.pollWaiting(), 1);
    const n = await t.state();
    assert.equal(n.provision_state, 'deploy failed');
    assert.match(n.last_error!, /no longer knows the write_image it was running/);
    assert.equal(n.driver_internal_info.agent_url, undefined);
    assert.equal(n.driver_internal_info.agent_secret_token, undefined);
  });

  it("a failed step fails the node with the agent's own error", async () => {
    const t = await setup(true);
    await t.engine.act(t.node.uuid, { target: 'provide' }, 'op');
    await t.engine.drain();
    t.agent.finishLast('FAILED', null, {
      type: 'BlockDeviceEraseError',
      message: 'Error erasing block device',
      details: 'wipefs: /dev/vda: Device or resource busy',
    });
    await t.engine.resume(t.node.uuid);
    const n = await t.state();
    assert.equal(n.provision_state, 'clean failed');
    assert.match(
      n.last_error!,
      /clean step erase_devices_metadata failed in the agent: wipefs: \/dev\/vda: Device or resource busy/,
    );
  });

  it('inspects a live agent: inventory and properties stored, new NICs become ports', async () => {
    const t = await setup(true);
    await t.engine.act(t.node.uuid, { target: 'inspect' }, 'op');
    await t.engine.drain();
    const n = await t.state();
    assert.equal(n.provision_state, 'manageable');
    assert.equal(n.properties.memory_mb, 2048);
    assert.equal(n.properties.cpus, 4);
    assert.ok(await t.store.ports.getByAddress('52:54:00:aa:00:02'));
  });

  it('inspection takes node fields as enrollment does: only the boot NIC is pxe_enabled, no all-zero port, a value the inventory lacks is kept', async () => {
    // Used to: every new port pxe_enabled, 00:00:00:00:00:00 registered as a port, and a missing
    // memory size erasing the node's memory_mb.
    const t = await setup(true);
    await t.store.nodes.update(t.node.uuid, { properties: { memory_mb: 4096, capabilities: 'x' } });
    t.agent.inventory = {
      interfaces: [
        { mac_address: '52:54:00:AA:00:02' },
        { mac_address: '52:54:00:aa:00:03' },
        { mac_address: '00:00:00:00:00:00' },
      ],
      cpu: { count: 4, architecture: 'x86_64' },
      disks: [
        { name: '/dev/vdb', size: 2 * 2 ** 30 },
        { name: '/dev/vda', size: 8.5 * 2 ** 30 },
      ],
      boot: { current_boot_mode: 'uefi', pxe_interface: '01-52-54-00-aa-00-03' },
    } as unknown as Inventory;
    await t.engine.act(t.node.uuid, { target: 'inspect' }, 'op');
    await t.engine.drain();
    const n = await t.state();
    assert.equal(n.provision_state, 'manageable');
    assert.deepEqual(
      { ...n.properties },
      { memory_mb: 4096, capabilities: 'x', cpus: 4, cpu_arch: 'x86_64', local_gb: 7, boot_mode: 'uefi' },
    );
    const ports = await t.store.ports.list({ node_uuid: t.node.uuid });
    assert.deepEqual(ports.map((p) => [p.address, p.pxe_enabled]).sort(), [
      ['52:54:00:aa:00:02', false],
      ['52:54:00:aa:00:03', true],
    ]);
  });
});
