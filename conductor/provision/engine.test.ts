// Every (state, action) pair through the engine: legal ones move exactly as the table says,
// illegal ones answer INVALID_STATE naming the allowed actions and write nothing.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isKilnError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
import {
  allowedActions,
  findTransition,
  PROVISION_ACTIONS,
  PROVISION_STATES,
  type ProvisionAction,
  type ProvisionState,
} from '../../shared/states.ts';
import { FakePowerDriver } from '../power/fake.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import { ProvisionEngine } from './engine.ts';
import { createFakeWorkflow } from './fake-workflow.ts';
import type { PhaseResult, Workflow } from './workflow.ts';

/** A workflow that waits for the ramdisk in every phase, like the agent workflow does. */
const waitingWorkflow: Workflow = {
  name: 'waiting',
  inspect: async (): Promise<PhaseResult> => 'wait',
  clean: async (): Promise<PhaseResult> => 'wait',
  deploy: async (): Promise<PhaseResult> => 'wait',
  tearDown: async () => {},
  resume: async (): Promise<PhaseResult> => 'done',
};

async function setup(workflow: Workflow = createFakeWorkflow(), fakeOpts = {}) {
  const store = await openSqliteStore(':memory:');
  const fake = new FakePowerDriver(fakeOpts);
  const engine = new ProvisionEngine({
    store,
    power: { get: () => fake },
    log: silentLogger(),
    workflowFor: () => workflow,
    conductorId: 'test',
    callbackTimeoutS: 60,
  });
  const image = await store.images.create({
    uuid: randomUUID(),
    name: 'img',
    url: 'http://127.0.0.1/img.raw',
    checksum_algo: 'sha256',
    checksum: 'a'.repeat(64),
    format: 'raw',
    size: null,
    image_type: 'whole-disk',
  });
  const nodeIn = async (state: ProvisionState) =>
    store.nodes.create({
      uuid: randomUUID(),
      driver: 'fake',
      bmc_address: 'fake://bmc',
      provision_state: state,
    });
  return { store, fake, engine, image, nodeIn };
}

/**
 * Every provision command that `message` suggests ('kiln node VERB NODE …') names `ref` and is
 * allowed by the state table from `state`, or from where an earlier suggestion ("… and then …")
 * leads: pasting them in order works.
 */
function assertHintsAllowed(message: string, state: ProvisionState, ref: string): void {
  const hinted = [...message.matchAll(/'kiln node (\w+) ([^\s']+)/g)].filter(([, verb]) =>
    (PROVISION_ACTIONS as readonly string[]).includes(verb!),
  );
  assert.ok(hinted.length > 0, `no provision command in: ${message}`);
  const reachable = new Set<ProvisionState>([state]);
  for (const [cmd, verb, node] of hinted) {
    const from = [...reachable].find((s) => findTransition(s, verb as ProvisionAction));
    assert.ok(from, `${cmd}' is not allowed from ${[...reachable].join(' or ')}`);
    const t = findTransition(from, verb as ProvisionAction)!;
    reachable.add(t.target ?? t.to);
    assert.equal(node, ref, cmd);
  }
}

describe('provision engine: every state × action', () => {
  let env: Awaited<ReturnType<typeof setup>>;
  before(async () => {
    env = await setup(waitingWorkflow);
  });
  after(() => env.store.close());

  for (const state of PROVISION_STATES) {
    for (const action of PROVISION_ACTIONS) {
      const t = findTransition(state, action);
      it(`${state} + ${action} → ${t ? t.to : '409'}`, async () => {
        const node = await env.nodeIn(state);
        const eventsBefore = (await env.store.events.list(node.uuid)).length;
        if (!t) {
          await assert.rejects(
            env.engine.act(node.uuid, { target: action, image: 'img' }, 'test'),
            (e: unknown) => {
              assert.ok(isKilnError(e));
              assert.equal(e.code, 'INVALID_STATE');
              assert.equal(e.status, 409);
              assert.match(e.message, new RegExp(`is ${state}`));
              assert.deepEqual(
                (e.details as { allowed_actions: string[] }).allowed_actions,
                allowedActions(state),
              );
              return true;
            },
          );
          const same = await env.store.nodes.get(node.uuid);
          assert.equal(same!.provision_state, state);
          assert.equal(same!.reservation, null);
          assert.equal((await env.store.events.list(node.uuid)).length, eventsBefore);
          return;
        }
        const moved = await env.engine.act(node.uuid, { target: action, image: 'img' }, 'test');
        assert.equal(moved.provision_state, t.to);
        assert.equal(moved.target_provision_state, t.target ?? null);
        await env.engine.drain();
        const final = await env.store.nodes.get(node.uuid);
        assert.equal(final!.reservation, null, 'reservation released');
        const events = await env.store.events.list(node.uuid);
        assert.ok(events.some((e) => e.event === action && e.from_state === state && e.to_state === t.to));
      });
    }
  }
});

describe('provision engine: work behind the states', () => {
  it('enroll → manageable verifies the BMC and records the power state', async () => {
    const env = await setup();
    const n = await env.nodeIn('enroll');
    env.fake.state('fake://bmc').power = 'on';
    await env.engine.act(n.uuid, { target: 'manage' }, 'test');
    await env.engine.drain();
    const got = await env.store.nodes.get(n.uuid);
    assert.equal(got!.provision_state, 'manageable');
    assert.equal(got!.power_state, 'power on');
    await env.store.close();
  });

  it('a BMC that fails verification sends the node back to enroll with a last_error naming it', async () => {
    const env = await setup(createFakeWorkflow(), { fail: () => 'timed out after 3 tries' });
    const n = await env.nodeIn('enroll');
    await env.engine.act(n.uuid, { target: 'manage' }, 'test');
    await env.engine.drain();
    const got = await env.store.nodes.get(n.uuid);
    assert.equal(got!.provision_state, 'enroll');
    assert.match(got!.last_error!, /verifying failed on node .*: BMC fake:\/\/bmc: timed out after 3 tries/);
    assert.match(got!.last_error!, /kiln node manage/);
    await env.store.close();
  });

  it('a node without a BMC cannot be managed and is told how to set one', async () => {
    const env = await setup();
    const n = await env.store.nodes.create({ uuid: randomUUID(), driver: 'none', provision_state: 'enroll' });
    await env.engine.act(n.uuid, { target: 'manage' }, 'test');
    await env.engine.drain();
    const got = await env.store.nodes.get(n.uuid);
    assert.equal(got!.provision_state, 'enroll');
    assert.match(got!.last_error!, /has no BMC; set one with 'kiln node update/);
    await env.store.close();
  });

  it('runs the full lifecycle with the fake workflow', async () => {
    const env = await setup();
    const n = await env.nodeIn('enroll');
    const step = async (
      target: 'manage' | 'provide' | 'deploy' | 'undeploy' | 'inspect' | 'clean',
      want: string,
    ) => {
      await env.engine.act(n.uuid, { target, image: 'img', hostname: 'web-1' }, 'test');
      await env.engine.drain();
      assert.equal((await env.store.nodes.get(n.uuid))!.provision_state, want, target);
    };
    await step('manage', 'manageable');
    await step('inspect', 'manageable');
    await step('clean', 'manageable');
    await step('provide', 'available');
    await step('deploy', 'active');
    const active = await env.store.nodes.get(n.uuid);
    assert.equal(active!.instance_info.image_name, 'img');
    assert.equal(active!.instance_info.hostname, 'web-1');
    await step('undeploy', 'available');
    const events = (await env.store.events.list(n.uuid, { limit: 1000 })).sort((a, b) => a.id - b.id);
    const states = events.map((e) => e.to_state).filter(Boolean);
    assert.deepEqual(states.slice(-3), ['deleting', 'cleaning', 'available']);
    await env.store.close();
  });

  it("undeploy forgets the instance (image, hostname, config drive) and keeps what is the node's", async () => {
    const env = await setup();
    const n = await env.nodeIn('available');
    await env.store.nodes.update(n.uuid, { properties: { cpu_arch: 'x86_64' }, extra: { rack: 'r1' } });
    const deploy = async (req: { hostname?: string; configdrive?: Record<string, unknown> }) => {
      await env.engine.act(n.uuid, { target: 'deploy', image: 'img', ...req }, 'test');
      await env.engine.drain();
      return (await env.store.nodes.get(n.uuid))!;
    };
    const first = await deploy({ hostname: 'web-1', configdrive: { user_data: '#cloud-config' } });
    assert.equal(first.instance_info.hostname, 'web-1');
    assert.ok(first.instance_info.configdrive);
    await env.engine.act(n.uuid, { target: 'undeploy' }, 'test');
    await env.engine.drain();
    const freed = (await env.store.nodes.get(n.uuid))!;
    assert.equal(freed.provision_state, 'available');
    assert.deepEqual(freed.instance_info, {});
    assert.deepEqual(freed.properties, { cpu_arch: 'x86_64' });
    assert.deepEqual(freed.extra, { rack: 'r1' });
    const second = await deploy({});
    assert.equal(second.instance_info.image_name, 'img');
    assert.equal(
      second.instance_info.hostname,
      undefined,
      'the next deploy does not inherit the old hostname',
    );
    await env.store.close();
  });

  it('a teardown that fails keeps instance_info, so the retried undeploy still knows the instance', async () => {
    const env = await setup(createFakeWorkflow({ failIn: ['tearDown'] }));
    const n = await env.nodeIn('active');
    await env.store.nodes.update(n.uuid, { instance_info: { image_name: 'img', hostname: 'web-1' } });
    await env.engine.act(n.uuid, { target: 'undeploy' }, 'test');
    await env.engine.drain();
    const got = (await env.store.nodes.get(n.uuid))!;
    assert.equal(got.provision_state, 'error');
    assert.equal(got.instance_info.hostname, 'web-1');
    await env.store.close();
  });

  it('abort records who aborted which phase, and a next step that is allowed from where the node lands', async () => {
    for (const [from, phase, failed] of [
      ['inspect wait', 'inspection', 'inspect failed'],
      ['clean wait', 'cleaning', 'clean failed'],
      ['wait call-back', 'deployment', 'deploy failed'],
    ] as const) {
      const env = await setup(waitingWorkflow);
      const n = await env.store.nodes.create({
        uuid: randomUUID(),
        name: 'r1u07',
        driver: 'fake',
        bmc_address: 'fake://bmc',
        provision_state: from,
      });
      const moved = await env.engine.act(n.uuid, { target: 'abort' }, 'cli:alice');
      assert.equal(moved.provision_state, failed);
      const err = moved.last_error ?? '';
      assert.match(err, new RegExp(`^${phase} aborted by cli:alice on node r1u07 \\(${n.uuid}\\)`));
      assertHintsAllowed(err, failed, 'r1u07');
      await env.store.close();
    }
  });

  it('a failing phase lands in its failed state with a last_error and the way out', async () => {
    for (const [phase, from, action, failed] of [
      ['deploy', 'available', 'deploy', 'deploy failed'],
      ['clean', 'manageable', 'provide', 'clean failed'],
      ['inspect', 'manageable', 'inspect', 'inspect failed'],
    ] as const) {
      const env = await setup(createFakeWorkflow({ failIn: [phase] }));
      const n = await env.nodeIn(from);
      await env.engine.act(n.uuid, { target: action, image: 'img' }, 'test');
      await env.engine.drain();
      const got = await env.store.nodes.get(n.uuid);
      assert.equal(got!.provision_state, failed);
      assert.match(got!.last_error!, new RegExp(`fake ${phase} failure`));
      assert.match(got!.last_error!, /Next: /);
      assertHintsAllowed(got!.last_error!, failed, n.uuid);
      assert.equal(got!.reservation, null);
      await env.store.close();
    }
  });

  it('deploy without an image or with an unknown image is refused before anything moves', async () => {
    const env = await setup();
    const n = await env.nodeIn('available');
    await assert.rejects(env.engine.act(n.uuid, { target: 'deploy' }, 't'), /needs an image/);
    await assert.rejects(
      env.engine.act(n.uuid, { target: 'deploy', image: 'nope' }, 't'),
      /image nope not found/,
    );
    assert.equal((await env.store.nodes.get(n.uuid))!.provision_state, 'available');
    await env.store.close();
  });

  it('two concurrent actions on one node: exactly one wins, the other gets 409', async () => {
    const env = await setup(createFakeWorkflow({ delayMs: 50 }));
    for (let i = 0; i < 20; i++) {
      const n = await env.nodeIn('manageable');
      const results = await Promise.allSettled([
        env.engine.act(n.uuid, { target: 'provide' }, 'a'),
        env.engine.act(n.uuid, { target: 'inspect' }, 'b'),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      assert.equal(won.length, 1);
      assert.equal(lost.length, 1);
      assert.equal(lost[0]!.reason.status, 409);
      assert.ok(['NODE_LOCKED', 'INVALID_STATE'].includes(lost[0]!.reason.code));
    }
    await env.engine.drain();
    await env.store.close();
  });

  it('maintenance blocks provision actions', async () => {
    const env = await setup();
    const n = await env.nodeIn('manageable');
    await env.store.nodes.update(n.uuid, { maintenance: true, maintenance_reason: 'bad DIMM' });
    await assert.rejects(env.engine.act(n.uuid, { target: 'provide' }, 't'), (e: unknown) => {
      assert.ok(isKilnError(e) && e.code === 'IN_MAINTENANCE');
      assert.match(e.message, /bad DIMM/);
      return true;
    });
    await env.store.close();
  });

  it('a wait state resumes on call-back and finishes', async () => {
    const env = await setup(waitingWorkflow);
    const n = await env.nodeIn('available');
    await env.engine.act(n.uuid, { target: 'deploy', image: 'img' }, 't');
    await env.engine.drain();
    assert.equal((await env.store.nodes.get(n.uuid))!.provision_state, 'wait call-back');
    assert.equal(await env.engine.resume(n.uuid), true);
    assert.equal((await env.store.nodes.get(n.uuid))!.provision_state, 'active');
    await env.store.close();
  });

  it('the call-back watchdog fails a node whose ramdisk stays silent', async () => {
    const env = await setup(waitingWorkflow);
    const n = await env.nodeIn('manageable');
    await env.engine.act(n.uuid, { target: 'provide' }, 't');
    await env.engine.drain();
    assert.equal((await env.store.nodes.get(n.uuid))!.provision_state, 'clean wait');
    assert.equal(await env.engine.checkCallbackTimeouts(Date.now()), 0);
    assert.equal(await env.engine.checkCallbackTimeouts(Date.now() + 61_000), 1);
    const got = await env.store.nodes.get(n.uuid);
    assert.equal(got!.provision_state, 'clean failed');
    assert.match(got!.last_error!, /no call-back from the ramdisk/);
    await env.store.close();
  });

  it('recover() frees its own locks and fails work that died with the previous process', async () => {
    const env = await setup();
    const n = await env.nodeIn('deploying');
    await env.store.nodes.reserve(n.uuid, 'test:dead');
    assert.equal(await env.engine.recover(), 1);
    const got = await env.store.nodes.get(n.uuid);
    assert.equal(got!.provision_state, 'deploy failed');
    assert.equal(got!.reservation, null);
    assert.match(got!.last_error!, /conductor restarted/);
    await env.store.close();
  });

  it('power actions go through the driver and power-off wipes the agent token', async () => {
    const env = await setup();
    const n = await env.nodeIn('manageable');
    await env.store.nodes.update(n.uuid, {
      driver_internal_info: { agent_secret_token: 'x'.repeat(43), agent_url: 'http://n:9999' },
    });
    const on = await env.engine.setPower(n.uuid, 'power on', 't');
    assert.equal(on.power_state, 'power on');
    assert.equal(env.fake.state('fake://bmc').power, 'on');
    const off = await env.engine.setPower(n.uuid, 'power off', 't');
    assert.equal(off.power_state, 'power off');
    assert.equal(off.driver_internal_info.agent_secret_token, undefined);
    assert.equal(off.driver_internal_info.agent_url, undefined);
    await env.store.close();
  });
});

describe('heartbeat', () => {
  /** A workflow that waits, and records each resume with the reservation it ran under. */
  function watchingWorkflow(result: PhaseResult) {
    const resumed: Array<{ reservation: string | null; phase: string }> = [];
    const workflow: Workflow = {
      ...waitingWorkflow,
      resume: async (task, phase) => {
        resumed.push({ reservation: task.node.reservation ?? null, phase });
        return result;
      },
    };
    return { workflow, resumed };
  }

  /** Counts reservations taken, by wrapping the store's reserve. */
  function countReserves(store: Awaited<ReturnType<typeof setup>>['store']) {
    const holders: string[] = [];
    const reserve = store.nodes.reserve.bind(store.nodes);
    store.nodes.reserve = async (uuid, holder) => {
      holders.push(holder);
      return reserve(uuid, holder);
    };
    return holders;
  }

  const record = () => ({ driver_internal_info: { agent_url: 'http://10.0.0.9:9999', agent_version: '1' } });

  it('records and continues the work under one reservation', async () => {
    const { workflow, resumed } = watchingWorkflow('wait');
    const { store, engine, nodeIn } = await setup(workflow);
    const node = await nodeIn('clean wait');
    const holders = countReserves(store);
    assert.equal(
      await engine.heartbeat(node.uuid, record, { resume: true, commandRunning: false }),
      'continuing',
    );
    await engine.drain();
    assert.equal(holders.length, 1, 'one reservation per heartbeat');
    assert.deepEqual(resumed, [{ reservation: holders[0]!, phase: 'clean' }]);
    const after = (await store.nodes.get(node.uuid))!;
    assert.equal(after.driver_internal_info.agent_url, 'http://10.0.0.9:9999');
    assert.equal(after.reservation, null, 'released after the workflow looked');
  });

  it('asks the workflow nothing while the agent reports a command making progress', async () => {
    const { workflow, resumed } = watchingWorkflow('done');
    const { store, engine, nodeIn } = await setup(workflow);
    const node = await nodeIn('wait call-back');
    assert.equal(
      await engine.heartbeat(node.uuid, record, { resume: true, commandRunning: true }),
      'recorded',
    );
    await engine.drain();
    assert.deepEqual(resumed, []);
    const after = (await store.nodes.get(node.uuid))!;
    assert.equal(after.provision_state, 'wait call-back');
    assert.equal(after.reservation, null);
    assert.equal(after.driver_internal_info.agent_url, 'http://10.0.0.9:9999');
  });

  it('finishes the phase when the workflow says done, and skips a locked node without writing', async () => {
    const { workflow } = watchingWorkflow('done');
    const { store, engine, nodeIn } = await setup(workflow);
    const node = await nodeIn('clean wait');
    await store.nodes.reserve(node.uuid, 'someone-else');
    assert.equal(
      await engine.heartbeat(node.uuid, record, { resume: true, commandRunning: false }),
      'locked',
    );
    assert.equal((await store.nodes.get(node.uuid))!.driver_internal_info.agent_url, undefined);
    await store.nodes.release(node.uuid, 'someone-else');
    assert.equal(
      await engine.heartbeat(node.uuid, record, { resume: true, commandRunning: false }),
      'continuing',
    );
    await engine.drain();
    assert.equal((await store.nodes.get(node.uuid))!.provision_state, 'available');
  });
});
