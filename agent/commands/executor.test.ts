import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KilnError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
import { CommandExecutor } from './executor.ts';
import { CommandRegistry } from './registry.ts';
import { stepsExtension } from './step-commands.ts';
import { StepTable } from './steps.ts';

function executor() {
  const deploy = new StepTable('deploy');
  deploy.implement('write_image', async (args, ctx) => {
    ctx.progress({ phase: 'writing', bytes_done: 1 });
    return { wrote: args.image_info };
  });
  const registry = new CommandRegistry([
    stepsExtension(deploy),
    {
      name: 'standby',
      commands: {
        text: { async: false, run: async () => 'plain text' },
        boom: { async: false, run: async () => Promise.reject(new Error('kaput')) },
        strict: {
          async: false,
          validate: (p) => {
            if (!p.x) throw new KilnError('VALIDATION_FAILED', 'x is required');
          },
          run: async () => null,
        },
      },
    },
  ]);
  const ended: string[] = [];
  return {
    ex: new CommandExecutor({ registry, log: silentLogger(), onAsyncDone: (r) => ended.push(r.name) }),
    ended,
  };
}

test('sync results: strings wrapped as {result}, errors become FAILED records', async () => {
  const { ex } = executor();
  const t = await ex.execute('standby.text', {});
  assert.deepEqual(t.serialize(false), {
    id: t.id,
    command_name: 'text',
    command_status: 'SUCCEEDED',
    command_error: null,
    command_result: { result: 'plain text' },
  });
  const b = await ex.execute('standby.boom', {});
  assert.equal(b.status, 'FAILED');
  assert.deepEqual(b.error, {
    type: 'CommandExecutionError',
    code: 500,
    message: 'Command execution failed',
    details: 'kaput',
  });
  await assert.rejects(ex.execute('standby.strict', {}), /Invalid command parameters: x is required/);
  assert.equal(ex.runs.length, 2, 'rejected requests leave no record');
});

test('deploy step dispatch echoes the step and reports progress only when asked', async () => {
  const { ex, ended } = executor();
  const step = { interface: 'deploy', step: 'write_image', args: { image_info: { id: 'img' } } };
  const r = await ex.execute('deploy.execute_deploy_step', {
    step,
    node: {},
    ports: [],
    deploy_version: null,
  });
  await r.done;
  assert.deepEqual(r.result, { deploy_result: { wrote: { id: 'img' } }, deploy_step: step });
  assert.equal(r.serialize(true).kiln_progress?.phase, 'writing');
  assert.equal('kiln_progress' in r.serialize(false), false);
  assert.deepEqual(ended, ['execute_deploy_step']);
  const steps = await ex.execute('deploy.get_deploy_steps', { node: {}, ports: [] });
  const list = (
    steps.result as { deploy_steps: { GenericHardwareManager: { step: string; priority: number }[] } }
  ).deploy_steps.GenericHardwareManager;
  // Only what has a handler is offered, with IPA's metadata for it.
  assert.deepEqual(
    list.map((s) => [s.step, s.priority]),
    [['write_image', 0]],
  );
});

test('malformed execute_*_step params fail the command naming the field, as IPA fails a malformed step', async () => {
  const { ex } = executor();
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['no step', { node: {}, ports: [] }, /step: /],
    ['a step with no name', { step: { interface: 'deploy' } }, /step\.step/],
    ['args that are a list', { step: { step: 'write_image', interface: 'deploy', args: [1] } }, /step\.args/],
    [
      'ports that are not a list',
      { step: { step: 'write_image', interface: 'deploy' }, ports: 'eth0' },
      /ports/,
    ],
  ];
  for (const [what, params, field] of cases) {
    const r = await ex.execute('deploy.execute_deploy_step', params);
    await r.done;
    const rec = r.serialize(false);
    assert.equal(rec.command_status, 'FAILED', what);
    const err = rec.command_error as { details: string };
    assert.match(err.details, /Malformed execute_deploy_step params/, what);
    assert.match(err.details, field, what);
  }
  // What Ironic sends: a step without an interface is still one IPA runs.
  const r = await ex.execute('deploy.execute_deploy_step', { step: { step: 'write_image', args: {} } });
  await r.done;
  assert.equal(r.serialize(false).command_status, 'SUCCEEDED');
});

test('StepTable refuses a second handler for one step', () => {
  const t = new StepTable('clean');
  t.implement('erase_devices', async () => null);
  assert.throws(() => t.implement('erase_devices', async () => null), /implemented twice/);
  assert.throws(
    () =>
      new CommandRegistry([
        { name: 'a', commands: { x: { async: false, run: async () => 1 } } },
        { name: 'a', commands: { x: { async: false, run: async () => 1 } } },
      ]),
    /defined twice/,
  );
});
