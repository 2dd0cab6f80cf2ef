// The steps the agent offers are the steps it can run. For every way the agent is put together
// (bare, with the protocol-test commands, with the disk plugin, with a plugin that failed to
// load), each step that get_clean_steps / get_deploy_steps lists, under every hardware manager,
// has a handler. IPA's steps that have none are not offered, and asking for one anyway gets IPA's
// answer for a method no hardware manager has. Nothing here executes a step that has a handler.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { silentLogger } from '../shared/log.ts';
import type { CommandRecord } from '../shared/wire/ipa.ts';
import { waitFor } from '../test/support/wait.ts';
import { genericCleanSteps, genericDeploySteps } from './commands/steps.ts';
import { resolveSettings } from './config.ts';
import { loadPlugins } from './plugins.ts';
import { type AgentHandle, type RunAgentOptions, runAgent } from './run.ts';

async function startAgent(opts: { testCommands?: boolean; loadPlugins?: RunAgentOptions['loadPlugins'] }) {
  const flags: Record<string, string | boolean> = {
    'listen-host': '127.0.0.1',
    'listen-port': '0',
    'power-action': 'none',
  };
  if (opts.testCommands) flags['test-commands'] = true;
  const agent = runAgent({
    settings: resolveSettings({ flags }),
    log: silentLogger(),
    powerOff: async () => {},
    loadPlugins: opts.loadPlugins,
  });
  const port = await waitFor('agent API listening', () => agent.state.port);
  const post = async (name: string, params: Record<string, unknown>): Promise<CommandRecord> => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/commands/?wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, params }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    return (await r.json()) as CommandRecord;
  };
  return { agent, post };
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
    { name: 'the bare agent', clean: [], deploy: [] },
    { name: 'with the protocol-test commands', testCommands: true, clean: ['kiln_test_wait'], deploy: [] },
    {
      name: 'with the disk plugin',
      // No device may be written: even a step run by mistake could not touch this machine.
      loadPlugins: () => loadPlugins({ allowOnly: [] }),
      clean: DISK_CLEAN,
      deploy: DISK_DEPLOY,
    },
    {
      name: 'with a plugin that failed to load',
      loadPlugins: async () => Promise.reject(new Error('no disk engine in this build')),
      clean: [],
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
    const { agent, post } = await startAgent({ loadPlugins: () => loadPlugins({ allowOnly: [] }) });
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
    const { agent, post } = await startAgent({ loadPlugins: () => loadPlugins({ allowOnly: [] }) });
    try {
      const unimplemented = {
        clean: genericCleanSteps()
          .map((s) => s.step)
          .filter((n) => !DISK_CLEAN.includes(n)),
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
