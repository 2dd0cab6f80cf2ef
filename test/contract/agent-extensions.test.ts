// Runs the agent extension contract against every extension the agent registers: the built-in
// ones as runAgent wires them (agent/run.ts), kiln_test, and the disk plugin's (standby, image)
// loaded through loadPlugins with an empty allow-list, as outside the Kiln ramdisk with no
// --allow-device: every write or erase is refused before a device is opened. The runner is a
// recording fake that runs nothing; a device path reaching it fails the file.
//
// runAgent builds its registry inline (no exported "the agent's extensions" function), so the
// wiring below mirrors agent/run.ts.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { CommandExecutor } from '../../agent/commands/executor.ts';
import { logExtension } from '../../agent/commands/log.ts';
import { pollExtension } from '../../agent/commands/poll.ts';
import { implementPstoreStep } from '../../agent/commands/pstore.ts';
import { CommandRegistry } from '../../agent/commands/registry.ts';
import { standbyExtension } from '../../agent/commands/standby.ts';
import { stepsExtension } from '../../agent/commands/step-commands.ts';
import { StepTable } from '../../agent/commands/steps.ts';
import { implementTestSteps, testExtension } from '../../agent/commands/test-commands.ts';
import type { CommandExtension } from '../../agent/commands/types.ts';
import { loadPlugins } from '../../agent/plugins.ts';
import type { StepTables } from '../../agent/run.ts';
import { ExecError, type Runner } from '../../shared/exec.ts';
import { silentLogger } from '../../shared/log.ts';
import type { Inventory } from '../../shared/wire/ipa.ts';
import { agentExtensionContract } from './agent-extensions.contract.ts';

const ran: string[] = [];
const deviceTouches: string[] = [];
/** Runs nothing: `sync` succeeds, every other tool is "command not found". */
const fakeRun: Runner = async (file, args) => {
  ran.push([file, ...args].join(' '));
  if (args.some((a) => a.startsWith('/dev/'))) deviceTouches.push([file, ...args].join(' '));
  await new Promise((r) => setImmediate(r));
  if (file === 'sync') return { stdout: '', stderr: '', exitCode: 0 };
  throw new ExecError([file, ...args].join(' '), null, '', '', false, true);
};
after(() => {
  assert.deepEqual(deviceTouches, [], 'no command may hand a device to a tool');
  assert.ok(ran.length > 0, 'the commands went through the fake runner');
});

const powerOffs: number[] = [];
const INVENTORY = { hostname: 'contract' } as unknown as Inventory;
const IMAGE_INFO = {
  id: 'contract-image',
  urls: ['http://127.0.0.1:9/never-fetched.raw'],
  os_hash_algo: 'sha256',
  os_hash_value: 'a'.repeat(64),
  disk_format: 'raw',
};

const [disk] = await loadPlugins({ access: { inRamdisk: false, allowed: [] } }, { run: fakeRun });

async function build(): Promise<{ registry: CommandRegistry; extensions: CommandExtension[] }> {
  const tables: StepTables = { clean: new StepTable('clean'), deploy: new StepTable('deploy') };
  implementPstoreStep(tables.clean, { inRamdisk: false, pstoreDir: async () => null });
  implementTestSteps(tables);
  const extensions: CommandExtension[] = [
    stepsExtension(tables.clean),
    stepsExtension(tables.deploy),
    standbyExtension({ run: fakeRun, powerOff: async () => void powerOffs.push(Date.now()) }),
    logExtension({ run: fakeRun, agentLog: () => 'agent log line\n' }),
    pollExtension(async () => INVENTORY),
    testExtension,
  ];
  const registry = new CommandRegistry(extensions);
  // A fresh plugin per agent, as loadPlugins gives each agent start.
  const [plugin] = await loadPlugins({ access: { inRamdisk: false, allowed: [] } }, { run: fakeRun });
  for (const e of plugin!.extensions ?? []) {
    registry.add(e);
    extensions.push(e);
  }
  plugin!.configureSteps?.(tables);
  return { registry, extensions };
}

// A fresh agent (registry, plugin, executor) per call, so no command sees another's records.
const listing = await build();
const open = async () => {
  const { registry } = await build();
  return { registry, executor: new CommandExecutor({ registry, log: silentLogger() }) };
};
const of = (name: string) => listing.extensions.filter((e) => e.name === name);
assert.ok(disk?.extensions?.length, 'the disk plugin loads');

agentExtensionContract('clean', {
  open,
  extensions: of('clean'),
  calls: {
    get_clean_steps: {},
    // Refused by the empty allow-list before any device is listed for writing.
    execute_clean_step: {
      step: { step: 'erase_devices_metadata', interface: 'deploy', priority: 99, args: {} },
      node: { uuid: 'n1' },
      ports: [],
    },
  },
});

agentExtensionContract('deploy', {
  open,
  extensions: of('deploy'),
  calls: {
    get_deploy_steps: {},
    execute_deploy_step: {
      step: { step: 'write_image', interface: 'deploy', priority: 0, args: { image_info: IMAGE_INFO } },
      node: { uuid: 'n1' },
      ports: [],
    },
  },
});

agentExtensionContract('standby', {
  open,
  extensions: of('standby'),
  calls: {
    sync: {},
    power_off: {},
    // Valid image_info; refused by the allow-list when it picks the root disk, before download.
    prepare_image: { image_info: IMAGE_INFO, node: { uuid: 'n1' } },
    get_partition_uuids: {},
  },
  badParams: {
    prepare_image: { image_info: { id: 'no-urls' } },
  },
});

agentExtensionContract('image', {
  open,
  extensions: of('image'),
  // Not the ramdisk: the firmware's boot entries are left alone (answers "skipped").
  calls: { install_bootloader: { target_boot_mode: 'uefi', node: { uuid: 'n1' } } },
});

agentExtensionContract('log', { open, extensions: of('log'), calls: { collect_system_logs: {} } });

agentExtensionContract('poll', { open, extensions: of('poll'), calls: { get_hardware_info: {} } });

agentExtensionContract('kiln_test', { open, extensions: of('kiln_test'), calls: { wait: { seconds: 0.1 } } });
