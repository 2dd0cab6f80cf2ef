// `kiln agent` outside the Kiln ramdisk writes only to the devices it was given with
// --allow-device: its command API, with the disk plugin as the agent loads it, against two loop
// devices this test made. The allowed one is erased; the other one, and every disk of this
// machine, is refused by name with the flag that would allow it, and is read back untouched.
// Every erase here runs with an allow-list or is refused before any device is opened.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { rescanPartitions } from '../../agent/disk/rescan.ts';
import { loadPlugins } from '../../agent/plugins.ts';
import type { CommandRecord } from '../../shared/wire/ipa.ts';
import { createLoopDevice, type LoopDevice } from '../support/loopdev.ts';
import { type InProcessAgent, startInProcessAgent } from './in-process.ts';

const MiB = 1024 * 1024;
let allowed: LoopDevice;
let other: LoopDevice;

/** A GPT with an ext4 partition: what the metadata erase must remove. */
async function format(disk: LoopDevice): Promise<void> {
  await execa('sgdisk', ['--zap-all', disk.path], { reject: false });
  await execa('sgdisk', ['-n', '1:0:+16M', disk.path]);
  const [part] = await rescanPartitions(disk.path);
  await execa('mkfs.ext4', ['-q', '-F', part!.path]);
}

async function pttype(disk: LoopDevice): Promise<string> {
  const r = await execa('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', disk.path], { reject: false });
  return r.stdout.trim();
}

const eraseMetadata = (agent: InProcessAgent, args: Record<string, unknown>) =>
  agent.command('clean.execute_clean_step', {
    step: { step: 'erase_devices_metadata', interface: 'deploy', priority: 99, args },
    node: { driver_internal_info: {} },
    ports: [],
  });

const details = (rec: CommandRecord) => String((rec.command_error as { details?: unknown } | null)?.details);

before(async () => {
  allowed = await createLoopDevice(32 * MiB);
  other = await createLoopDevice(32 * MiB);
});
after(async () => {
  await allowed?.destroy();
  await other?.destroy();
});

describe('outside the Kiln ramdisk, with --allow-device', () => {
  let agent: InProcessAgent;
  before(async () => {
    agent = await startInProcessAgent({ flags: { 'allow-device': [allowed.path] }, loadPlugins });
  });
  after(async () => {
    await agent?.stop();
  });

  test('erasing a device that was not allowed is refused, naming it and the flag; it stays intact', async () => {
    await format(other);
    const rec = await eraseMetadata(agent, { devices: [other.path] });
    assert.equal(rec.command_status, 'FAILED');
    assert.equal((rec.command_error as { type?: string }).type, 'BlockDeviceEraseError');
    assert.match(
      details(rec),
      new RegExp(`^refusing to write to ${other.path}: the agent is not running in the Kiln ramdisk`),
    );
    assert.match(details(rec), new RegExp(`start the agent with --allow-device ${other.path}$`));
    assert.equal(await pttype(other), 'gpt');
  });

  test('the allowed device is erased; without a device list only the allowed one is', async () => {
    await format(allowed);
    await format(other);
    const one = await eraseMetadata(agent, { devices: [allowed.path] });
    assert.equal(one.command_status, 'SUCCEEDED', details(one));
    assert.equal(await pttype(allowed), '');
    await format(allowed);
    const all = await eraseMetadata(agent, {});
    assert.equal(all.command_status, 'SUCCEEDED', details(all));
    const erased = (all.command_result as { clean_result: { erased: Array<{ device: string }> } })
      .clean_result.erased;
    assert.deepEqual(
      erased.map((e) => e.device),
      [allowed.path],
    );
    assert.equal(await pttype(allowed), '');
    assert.equal(await pttype(other), 'gpt', 'the device that was not allowed is untouched');
  });

  test('write_image onto a device that was not allowed is refused before anything is downloaded', async () => {
    await format(other);
    const node = { instance_info: { root_device: { name: other.path } } };
    const rec = await agent.command('deploy.execute_deploy_step', {
      step: {
        step: 'write_image',
        interface: 'deploy',
        args: {
          image_info: {
            id: 'img',
            urls: ['http://127.0.0.1:9/img'],
            os_hash_algo: 'sha256',
            os_hash_value: '0'.repeat(64),
          },
        },
      },
      node,
      ports: [],
    });
    assert.equal(rec.command_status, 'FAILED');
    assert.match(
      details(rec),
      new RegExp(`refusing to write to ${other.path}: .*--allow-device ${other.path}`),
    );
    assert.equal(await pttype(other), 'gpt');
  });

  test("install_bootloader leaves this machine's EFI boot entries alone", async () => {
    const rec = await agent.command('image.install_bootloader', {
      root_uuid: null,
      target_boot_mode: 'uefi',
    });
    assert.equal(rec.command_status, 'SUCCEEDED');
    assert.match(
      String((rec.command_result as { result?: string }).result),
      /^install_bootloader: skipped: UEFI boot entry not written: the agent is not running in the Kiln ramdisk/,
    );
  });
});

describe('outside the Kiln ramdisk, without --allow-device', () => {
  let agent: InProcessAgent;
  before(async () => {
    agent = await startInProcessAgent({ loadPlugins });
  });
  after(async () => {
    await agent?.stop();
  });

  test("an erase of every disk is refused, naming this machine's disks it would have taken", async () => {
    await format(allowed);
    const rec = await eraseMetadata(agent, {});
    assert.equal(rec.command_status, 'FAILED');
    // Which disks this machine has is not the test's business; that they are named and refused is.
    assert.match(
      details(rec),
      /^refusing to write to (any disk|\/dev\/\S+(, \/dev\/\S+)*): the agent is not running in the Kiln ramdisk \(no \/etc\/kiln-ramdisk\), so it writes only to devices given with --allow-device \(none\); /,
    );
    assert.match(details(rec), /--allow-device \/dev\//);
    assert.equal(await pttype(allowed), 'gpt');
  });

  test('an erase of a named device is refused, naming it', async () => {
    await format(allowed);
    const rec = await eraseMetadata(agent, { devices: [allowed.path] });
    assert.equal(rec.command_status, 'FAILED');
    assert.match(
      details(rec),
      new RegExp(`^refusing to write to ${allowed.path}: .*--allow-device ${allowed.path}$`),
    );
    assert.equal(await pttype(allowed), 'gpt');
  });
});
