// Impersonating a node's ramdisk from the provisioning network, against a real conductor running
// the real agent workflow (fake BMC; the agent's command API is a recording stand-in, so the test
// sees whom the conductor would have asked what). Each attack that used to work is replayed:
// a node's token from `lookup?node_uuid=` (fast track), a heartbeat that moves agent_url to the
// attacker, a second lookup while the real ramdisk holds the token during cleaning and deployment.
// Each is refused with nothing changed but the security event; the real ramdisk still works.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { AgentCommands } from '../../conductor/provision/agent-workflow.ts';
import { createAgentWorkflow } from '../../conductor/provision/agent-workflow.ts';
import type { NodeRecord } from '../../conductor/store/store.ts';
import { startTestConductor, type TestConductor } from '../support/conductor.ts';
import { waitFor } from '../support/wait.ts';

/** What the conductor asked of which agent URL. */
const asked: { url: string; what: string; args?: unknown }[] = [];

function recordingAgent(node: NodeRecord): AgentCommands {
  const url = String(node.driver_internal_info.agent_url);
  const rec = (what: string, args?: unknown) => asked.push({ url, what, args });
  const unexpected =
    (what: string) =>
    async (...args: unknown[]) => {
      rec(what, args);
      throw new Error(`the test agent does not do ${what}`);
    };
  return {
    getCleanSteps: async () => {
      rec('get_clean_steps');
      return [];
    },
    executeCleanStep: unexpected('execute_clean_step') as AgentCommands['executeCleanStep'],
    executeDeployStep: unexpected('execute_deploy_step') as AgentCommands['executeDeployStep'],
    listCommands: async () => {
      rec('list_commands');
      return [];
    },
    getPartitionUuids: unexpected('get_partition_uuids') as AgentCommands['getPartitionUuids'],
    installBootloader: unexpected('install_bootloader') as AgentCommands['installBootloader'],
    getHardwareInfo: unexpected('get_hardware_info') as AgentCommands['getHardwareInfo'],
    powerOff: unexpected('power_off') as AgentCommands['powerOff'],
  };
}

let c: TestConductor;
let n = 0;

before(async () => {
  const workflow = createAgentWorkflow({
    clientFor: recordingAgent,
    imageUrl: (image) => image.url,
    fastTrack: true,
  });
  c = await startTestConductor({ workflowFor: () => workflow }, { 'conductor.fast_track': true });
  const img = await c.call('POST', '/v1/images', {
    name: 'os',
    url: 'http://user:origin-pw@images.example/os.raw?sig=s3cr3t',
    checksum: `sha256:${'a'.repeat(64)}`,
  });
  assert.equal(img.status, 201, img.text);
});
after(() => c.close());

const V = { 'X-OpenStack-Ironic-API-Version': '1.68' };

async function lookup(q: string) {
  const r = await fetch(`${c.publicUrl}/v1/lookup?${q}`, { headers: V });
  const text = await r.text();
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the endpoint answered
  return { status: r.status, text, body: JSON.parse(text) as Record<string, any> };
}

async function heartbeat(ident: string, body: Record<string, unknown>) {
  const r = await fetch(`${c.publicUrl}/v1/heartbeat/${ident}`, {
    method: 'POST',
    headers: { ...V, 'content-type': 'application/json' },
    body: JSON.stringify({ agent_version: '9.4.3', ...body }),
  });
  return { status: r.status, text: await r.text() };
}

const fault = (text: string) => JSON.parse(JSON.parse(text).error_message).faultstring as string;

async function newNode(): Promise<{ uuid: string; name: string; mac: string }> {
  n++;
  const name = `victim-${n}`;
  const mac = `52:54:00:5e:00:${n.toString(16).padStart(2, '0')}`;
  const r = await c.call('POST', '/v1/nodes', {
    name,
    bmc_address: `fake://${name}`,
    properties: { deploy_interface: 'agent' },
    ports: [mac],
  });
  assert.equal(r.status, 201, r.text);
  return { uuid: r.body.uuid, name, mac };
}

async function stateIs(uuid: string, state: string): Promise<NodeRecord> {
  return waitFor(`node ${uuid} to be ${state}`, async () => {
    const x = await c.store.nodes.get(uuid);
    return x?.provision_state === state ? x : undefined;
  });
}

async function act(name: string, body: Record<string, unknown>): Promise<void> {
  const r = await c.call('PUT', `/v1/nodes/${name}/states/provision`, body);
  assert.equal(r.status, 202, r.text);
}

/** A node in manageable: the conductor has never booted a ramdisk on it. */
async function manageable() {
  const x = await newNode();
  await act(x.name, { target: 'manage' });
  await stateIs(x.uuid, 'manageable');
  return x;
}

/** A node in clean wait: the conductor rebooted it into the ramdisk to clean it. */
async function cleanWait() {
  const x = await manageable();
  await act(x.name, { target: 'provide' });
  await stateIs(x.uuid, 'clean wait');
  return x;
}

/** The node as stored and its event count: what a refused request must leave alone. */
async function snapshot(uuid: string) {
  return {
    node: await c.store.nodes.get(uuid),
    ports: await c.store.ports.list({ node_uuid: uuid }),
    events: (await c.store.events.list(uuid, { limit: 1000 })).map((e) => e.event),
  };
}

async function eventsSince(uuid: string, count: number) {
  return (await c.store.events.list(uuid, { limit: 1000 })).slice(count);
}

/** The real ramdisk: looks up by its MAC and heartbeats from where it listens. */
async function realRamdisk(x: { uuid: string; mac: string }) {
  const l = await lookup(`addresses=${x.mac}`);
  assert.equal(l.status, 200, l.text);
  const token = l.body.config.agent_token as string;
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  return { token, view: l.body.node, text: l.text };
}

describe('ramdisk lookup and heartbeat under attack', () => {
  it('a UUID alone, or a MAC of a node the conductor booted no ramdisk on, gets no token (fast track on)', async () => {
    const x = await manageable();
    const before = await snapshot(x.uuid);
    const byUuid = await lookup(`node_uuid=${x.uuid}`);
    const byUuidAndStrangerMac = await lookup(`node_uuid=${x.uuid}&addresses=02:66:66:66:66:66`);
    const byMac = await lookup(`addresses=${x.mac}`);
    const unknown = await lookup(`node_uuid=${randomUUID()}`);
    for (const r of [byUuid, byUuidAndStrangerMac, byMac]) {
      assert.equal(r.status, 404);
      assert.equal(r.text, unknown.text, 'answers exactly as for a node that does not exist');
      assert.doesNotMatch(r.text, /agent_token/);
    }
    assert.deepEqual(await snapshot(x.uuid), before, 'nothing changed, no event');
  });

  it('a heartbeat without the token cannot move agent_url, and learns nothing about the node', async () => {
    const x = await cleanWait();
    const real = await realRamdisk(x);
    const before = await snapshot(x.uuid);
    const evil = 'http://127.0.0.1:6666';
    const wrong = await heartbeat(x.uuid, { callback_url: evil, agent_token: 'x'.repeat(43) });
    const byName = await heartbeat(x.name, { callback_url: evil, agent_token: 'x'.repeat(43) });
    const ghost = await heartbeat(randomUUID(), { callback_url: evil, agent_token: 'x'.repeat(43) });
    const masked = await heartbeat(x.uuid, { callback_url: evil, agent_token: '******' });
    for (const r of [wrong, byName, masked]) {
      assert.equal(r.status, 400);
      assert.equal(
        r.text,
        ghost.text,
        'a wrong token on a real node answers as on a node that does not exist',
      );
    }
    assert.equal(fault(ghost.text), 'Invalid or missing agent token received.');
    const none = await heartbeat(x.uuid, { callback_url: evil });
    assert.equal(fault(none.text), 'Agent token is required for heartbeat processing.');
    assert.deepEqual(await snapshot(x.uuid), before, 'agent_url, state and events untouched');
    assert.equal(asked.filter((a) => a.url === evil).length, 0, 'the conductor asked the attacker nothing');

    // Even with the token (leaked), the call-back must be the heartbeat's source address.
    const leaked = await heartbeat(x.uuid, {
      callback_url: 'http://10.66.6.6:9999',
      agent_token: real.token,
    });
    assert.equal(leaked.status, 400);
    assert.match(
      fault(leaked.text),
      /host 10\.66\.6\.6 is not the address this heartbeat came from \(127\.0\.0\.1\)/,
    );
    assert.deepEqual(await snapshot(x.uuid), before);
    assert.equal(asked.filter((a) => a.url.includes('10.66.6.6')).length, 0);
  });

  it('use case: the real ramdisk looks up by MAC and heartbeats; cleaning finishes; a second lookup then is a security event', async () => {
    const x = await cleanWait();
    const real = await realRamdisk(x);
    const url = 'http://127.0.0.1:9101';
    const hb = await heartbeat(x.uuid, { callback_url: url, agent_token: real.token });
    assert.equal(hb.status, 202, hb.text);
    const done = await stateIs(x.uuid, 'available');
    assert.equal(done.driver_internal_info.agent_url, url, 'fast track keeps the live agent');
    assert.deepEqual(
      asked.filter((a) => a.url === url).map((a) => a.what),
      ['get_clean_steps'],
      'the conductor asked the real ramdisk',
    );

    // Fast track: the attacker looks up the idle node the real ramdisk still runs on.
    const count = (await c.store.events.list(x.uuid, { limit: 1000 })).length;
    const second = await lookup(`addresses=${x.mac}`);
    assert.equal(second.status, 200);
    assert.equal(second.body.config.agent_token, '******');
    assert.ok(!second.text.includes(real.token));
    const flagged = await waitFor('last_error', async () => {
      const y = await c.store.nodes.get(x.uuid);
      return y?.last_error ? y : undefined;
    });
    assert.equal(flagged.provision_state, 'available');
    assert.match(
      flagged.last_error!,
      /^security: a second ramdisk lookup from 127\.0\.0\.1 \(MACs 52:54:00:5e/,
    );
    assert.equal(flagged.driver_internal_info.agent_url, undefined, 'the live agent is no longer trusted');
    const ev = await eventsSince(x.uuid, count);
    assert.deepEqual(
      ev.map((e) => [e.event, e.result]),
      [['security', 'error']],
    );
  });

  it('provide: a second lookup during cleaning fails it; nobody gets asked for clean steps and the node never becomes available', async () => {
    const x = await cleanWait();
    const real = await realRamdisk(x);
    const count = (await c.store.events.list(x.uuid, { limit: 1000 })).length;
    const ports = await c.store.ports.list({ node_uuid: x.uuid });
    const attacker = await lookup(`addresses=${x.mac}`);
    assert.equal(attacker.status, 200);
    assert.equal(attacker.body.config.agent_token, '******', 'the opaque answer, as Ironic gives');
    const failed = await stateIs(x.uuid, 'clean failed');
    assert.match(failed.last_error!, /^security: a second ramdisk lookup/);
    assert.match(failed.last_error!, /kiln node manage victim-\d+' and then 'kiln node provide/);
    assert.equal(failed.driver_internal_info.agent_secret_token, undefined);
    assert.deepEqual(
      (await eventsSince(x.uuid, count)).map((e) => [e.event, e.result, e.to_state]),
      [
        ['security', 'error', null],
        ['fail', 'error', 'clean failed'],
      ],
    );
    assert.deepEqual(await c.store.ports.list({ node_uuid: x.uuid }), ports);
    // Whichever of the two heartbeats now, nobody is asked for clean steps.
    for (const url of ['http://127.0.0.1:9201', 'http://127.0.0.1:9202'])
      assert.equal((await heartbeat(x.uuid, { callback_url: url, agent_token: real.token })).status, 400);
    assert.equal(asked.filter((a) => /:920[12]$/.test(a.url)).length, 0);
    assert.equal((await c.store.nodes.get(x.uuid))!.provision_state, 'clean failed');
  });

  it('deploy: the node view hides the config drive and image URL; a second lookup fails the deploy before anything is sent', async () => {
    const x = await cleanWait();
    const real = await realRamdisk(x);
    const url = 'http://127.0.0.1:9301';
    assert.equal((await heartbeat(x.uuid, { callback_url: url, agent_token: real.token })).status, 202);
    await stateIs(x.uuid, 'available');
    // Power-cycle, as an operator would: the ramdisk is gone, so deploy boots a fresh one.
    assert.equal(
      (await c.call('PUT', `/v1/nodes/${x.name}/states/power`, { target: 'power off' })).status,
      200,
    );
    await act(x.name, {
      target: 'deploy',
      image: 'os',
      configdrive: {
        user_data: '#cloud-config\nchpasswd: {list: "root:tenant-root-pw"}',
        meta_data: { public_keys: { k: 'ssh-ed25519 AAAATENANTKEY' } },
      },
    });
    await stateIs(x.uuid, 'wait call-back');
    assert.equal(asked.filter((a) => a.what === 'execute_deploy_step').length, 0);

    const booted = await realRamdisk(x);
    for (const secret of ['tenant-root-pw', 'AAAATENANTKEY', 'origin-pw', 's3cr3t', booted.token])
      assert.ok(!JSON.stringify(booted.view).includes(secret), `${secret} is not in the agent's node view`);

    const count = (await c.store.events.list(x.uuid, { limit: 1000 })).length;
    const attacker = await lookup(`addresses=${x.mac}`);
    assert.equal(attacker.body.config.agent_token, '******');
    for (const secret of ['tenant-root-pw', 'AAAATENANTKEY', 'origin-pw', 's3cr3t', booted.token])
      assert.ok(!attacker.text.includes(secret), `${secret} is not in the attacker's answer`);
    const failed = await stateIs(x.uuid, 'deploy failed');
    assert.match(failed.last_error!, /^security: a second ramdisk lookup/);
    assert.deepEqual(
      (await eventsSince(x.uuid, count)).map((e) => e.event),
      ['security', 'fail'],
    );
    assert.equal(
      (await heartbeat(x.uuid, { callback_url: 'http://127.0.0.1:9302', agent_token: booted.token })).status,
      400,
    );
    assert.equal(
      asked.filter((a) => a.what === 'execute_deploy_step').length,
      0,
      'no image or config drive was sent',
    );
  });
});
