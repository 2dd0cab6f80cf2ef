// The steps the agent offers are the steps it can run. For every way the agent is put together
// (bare, with the protocol-test commands, with the disk plugin, with a plugin that failed to
// load), each step that get_clean_steps / get_deploy_steps lists, under every hardware manager,
// has a handler. IPA's steps that have none are not offered, and asking for one anyway gets IPA's
// answer for a method no hardware manager has. Nothing here executes a step that has a handler.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startInProcessAgent } from '../test/agent/in-process.ts';
import { genericCleanSteps, genericDeploySteps } from './commands/steps.ts';
import { loadPlugins } from './plugins.ts';
import { type AgentHandle, type RunAgentOptions, resolvePowerAction } from './run.ts';

async function startAgent(opts: { testCommands?: boolean; loadPlugins?: RunAgentOptions['loadPlugins'] }) {
  const a = await startInProcessAgent({
    flags: opts.testCommands ? { 'test-commands': true } : {},
    loadPlugins: opts.loadPlugins,
  });
  return { agent: a.agent, post: a.command };
}

async function advertised(
  post: Awaited<ReturnType<typeof startAgent>>['post'],
  agent: AgentHandle,
  kind: 'clean' | 'deploy',
): Promise<string[]> {
  const rec = await post(`${kind}.get_${kind}_steps`, { node: {}, ports: [] });
  assert.equal(rec.command_status, 'SUCCEEDED');
  const byManager = (rec.command_result as Record<string, Record<string, unknown[]>>)[`${kind}_steps`]!;
  const names: string[] = [];
  for (const [manager, steps] of Object.entries(byManager)) {
    for (const step of steps as Array<{ step: string; interface: string; priority: number }>) {
      assert.ok(
        agent.steps[kind].handler(step.step),
        `${manager} offers ${kind} step ${step.step} without a handler`,
      );
      assert.equal(typeof step.interface, 'string');
      assert.equal(typeof step.priority, 'number');
      names.push(step.step);
    }
  }
  return names;
}

const DISK_CLEAN = ['erase_devices', 'erase_devices_metadata', 'erase_devices_express'];
const DISK_DEPLOY = ['erase_devices_metadata', 'write_image'];

describe('advertised steps', () => {
  const configs: Array<{
    name: string;
    testCommands?: boolean;
    loadPlugins?: RunAgentOptions['loadPlugins'];
    clean: string[];
    deploy: string[];
  }> = [
    { name: 'the bare agent', clean: ['erase_pstore'], deploy: [] },
    {
      name: 'with the protocol-test commands',
      testCommands: true,
      clean: ['erase_pstore', 'kiln_test_wait'],
      deploy: [],
    },
    {
      name: 'with the disk plugin',
      // Not the ramdisk and no --allow-device: even a step run by mistake could write nothing.
      loadPlugins,
      clean: [...DISK_CLEAN, 'erase_pstore'],
      deploy: DISK_DEPLOY,
    },
    {
      name: 'with a plugin that failed to load',
      loadPlugins: async () => Promise.reject(new Error('no disk engine in this build')),
      clean: ['erase_pstore'],
      deploy: [],
    },
  ];
  for (const c of configs) {
    test(`${c.name}: every step get_*_steps lists has a handler, and nothing else is listed`, async () => {
      const { agent, post } = await startAgent(c);
      try {
        assert.deepEqual((await advertised(post, agent, 'clean')).sort(), [...c.clean].sort());
        assert.deepEqual((await advertised(post, agent, 'deploy')).sort(), [...c.deploy].sort());
      } finally {
        await agent.stop();
      }
    });
  }

  test("implemented IPA steps keep IPA's interface and priorities", async () => {
    const { agent, post } = await startAgent({ loadPlugins });
    try {
      const rec = await post('clean.get_clean_steps', { node: {}, ports: [] });
      const steps = (rec.command_result as { clean_steps: Record<string, Array<Record<string, unknown>>> })
        .clean_steps.GenericHardwareManager!;
      const ipa = Object.fromEntries(genericCleanSteps().map((s) => [s.step, s]));
      for (const s of steps) assert.deepEqual(s, ipa[s.step as string]);
    } finally {
      await agent.stop();
    }
  });

  test("IPA steps without a handler are refused with IPA's HardwareManagerMethodNotFound", async () => {
    const { agent, post } = await startAgent({ loadPlugins });
    try {
      const unimplemented = {
        clean: genericCleanSteps()
          .map((s) => s.step)
          .filter((n) => !DISK_CLEAN.includes(n) && n !== 'erase_pstore'),
        deploy: genericDeploySteps()
          .map((s) => s.step)
          .filter((n) => !DISK_DEPLOY.includes(n)),
      };
      assert.ok(unimplemented.clean.includes('burnin_cpu') && unimplemented.deploy.includes('inject_files'));
      for (const kind of ['clean', 'deploy'] as const) {
        for (const step of [...unimplemented[kind], 'no_such_step']) {
          const rec = await post(`${kind}.execute_${kind}_step`, {
            step: { step, interface: 'deploy', priority: 0 },
            node: {},
            ports: [],
          });
          assert.equal(rec.command_status, 'FAILED', `${kind} ${step}`);
          const err = rec.command_error as Record<string, unknown>;
          assert.equal(err.type, 'HardwareManagerMethodNotFound');
          assert.equal(err.code, 500);
          assert.equal(err.message, 'No HardwareManager found to handle method');
          assert.match(String(err.details), new RegExp(`^Could not find method: ${step} \\(`));
        }
      }
    } finally {
      await agent.stop();
    }
  });
});

describe('power action', () => {
  test('standby.power_off powers off only in the Kiln ramdisk unless told otherwise', () => {
    assert.equal(resolvePowerAction(null, true), 'poweroff');
    assert.equal(resolvePowerAction(null, false), 'exit', 'a workstation is never shut down by default');
    assert.equal(resolvePowerAction('poweroff', false), 'poweroff', 'asked for explicitly');
    assert.equal(resolvePowerAction('none', true), 'none');
  });
});
