// The inspection call-back (/v1/continue) as an attacker on the provisioning network uses it,
// against a real conductor with site-wide enrollment BMC credentials configured: attaching a MAC
// to an existing node, overwriting its inventory or BMC, and getting the BMC password sent to an
// address of the attacker's choosing. Each is refused (or withheld) with nothing changed but a
// security event; the operator's approval and a node waiting for its inspection still work.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createToken } from '../../conductor/auth/tokens.ts';
import { createAgentWorkflow } from '../../conductor/provision/agent-workflow.ts';
import { startTestConductor, type TestConductor } from '../support/conductor.ts';
import { fakeInventory } from '../support/inventory.ts';
import { waitFor } from '../support/wait.ts';

const SITE_PASSWORD = 'site-wide-bmc-pw';
const ROOT = join(import.meta.dirname, '..', '..');

let c: TestConductor;

before(async () => {
  // Real nodes' workflow; its agent is never reached here (inspection waits for the ramdisk).
  const workflow = createAgentWorkflow({
    clientFor: () => {
      throw new Error('no agent in this test');
    },
    imageUrl: (image) => image.url,
    fastTrack: true,
  });
  c = await startTestConductor(
    { workflowFor: () => workflow },
    { 'enrollment.bmc_username': 'admin', 'enrollment.bmc_password': SITE_PASSWORD },
  );
});
after(() => c.close());

/** An inventory as IPA 9.4.3 posts it for a small VM. */
function inventory(macs: string[], over: { bmc?: string; serial?: string; uuid?: string } = {}) {
  return fakeInventory({
    macs,
    serial: over.serial ?? `SN-${macs[0]}`,
    uuid: over.uuid ?? null,
    bmc: over.bmc,
  });
}

async function post(inv: unknown) {
  const r = await fetch(`${c.publicUrl}/v1/continue`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inventory: inv }),
  });
  const text = await r.text();
  return { status: r.status, text, body: JSON.parse(text) };
}

async function snapshot(uuid: string) {
  return {
    node: await c.store.nodes.get(uuid),
    ports: (await c.store.ports.list({ node_uuid: uuid })).map((p) => p.address).sort(),
    events: (await c.store.events.list(uuid, { limit: 1000 })).length,
  };
}

const allPorts = async () => (await c.store.ports.list({ limit: 10_000 })).map((p) => p.address).sort();

/** The node's events after `count`, as [event, result]. */
async function newEvents(uuid: string, count: number) {
  return (await c.store.events.list(uuid, { limit: 1000 })).slice(count).map((e) => [e.event, e.result]);
}

async function stateIs(uuid: string, state: string) {
  return waitFor(`node ${uuid} to be ${state}`, async () => {
    const x = await c.store.nodes.get(uuid);
    return x?.provision_state === state ? x : undefined;
  });
}

describe('inspection call-back under attack', () => {
  it('an inventory naming a known node (by MAC or system UUID) changes nothing and is recorded on it', async () => {
    const victim = await c.call('POST', '/v1/nodes', {
      name: 'victim',
      bmc_address: 'fake://victim-bmc',
      bmc_password: 'victim-pw',
      ports: ['52:54:00:aa:00:01', '52:54:00:aa:00:02'],
    });
    assert.equal(victim.status, 201, victim.text);
    const uuid = victim.body.uuid as string;
    assert.equal(
      (await c.call('PUT', '/v1/nodes/victim/states/provision', { target: 'manage' })).status,
      202,
    );
    await stateIs(uuid, 'manageable');
    await c.store.nodes.update(uuid, {
      inventory: inventory(['52:54:00:aa:00:01'], { uuid: '9f1e0000-0000-4000-8000-0000000000aa' }),
    });
    const before = await snapshot(uuid);
    const portsBefore = await allPorts();

    const attacks = [
      // Attach the attacker's NIC to the node and overwrite its inventory and BMC.
      inventory(['52:54:00:aa:00:01', '02:66:66:66:66:01'], { bmc: '10.66.6.6' }),
      // Exactly the node's MACs, still not waiting for an inspection.
      inventory(['52:54:00:aa:00:01', '52:54:00:aa:00:02'], { bmc: '10.66.6.6', serial: 'EVIL' }),
    ];
    for (const inv of attacks) {
      const r = await post(inv);
      assert.equal(r.status, 403, r.text);
      assert.match(r.text, /not waiting for this inspection/);
      assert.ok(
        !r.text.includes(uuid) && !r.text.includes('victim') && !r.text.includes('manageable'),
        'names nothing',
      );
    }
    const after = await snapshot(uuid);
    assert.deepEqual(
      { ...after, events: before.events },
      before,
      'state, ports, inventory, BMC fields unchanged',
    );
    assert.deepEqual(await newEvents(uuid, before.events), [
      ['security', 'error'],
      ['security', 'error'],
    ]);
    assert.deepEqual(await allPorts(), portsBefore, 'no port was added anywhere');

    // A node without ports, found by its system UUID: nothing to check the call-back against.
    const bare = await c.call('POST', '/v1/nodes', { name: 'bare', bmc_address: 'fake://bare' });
    await c.store.nodes.update(bare.body.uuid, {
      inventory: inventory(['52:54:00:bb:00:01'], { uuid: '9f1e0000-0000-4000-8000-0000000000bb' }),
    });
    const bareBefore = await snapshot(bare.body.uuid);
    const r = await post(inventory(['02:66:66:66:66:02'], { uuid: '9f1e0000-0000-4000-8000-0000000000bb' }));
    assert.equal(r.status, 403);
    assert.deepEqual({ ...(await snapshot(bare.body.uuid)), events: bareBefore.events }, bareBefore);
    assert.equal(await c.store.ports.getByAddress('02:66:66:66:66:02'), undefined);
  });

  it('a new machine keeps the BMC address it reported, without credentials, until an operator approves it', async () => {
    const r = await post(inventory(['52:54:00:cc:00:01'], { bmc: '10.66.6.7' }));
    assert.equal(r.status, 200, r.text);
    const uuid = r.body.uuid as string;
    const node = (await c.store.nodes.get(uuid))!;
    assert.equal(node.provision_state, 'enroll');
    assert.equal(node.bmc_address, null);
    assert.equal(node.bmc_password, null);
    assert.equal(node.driver, 'none');
    assert.equal(node.driver_internal_info.reported_bmc_address, '10.66.6.7');
    assert.ok(!c.logs.some((l) => l.includes(SITE_PASSWORD)), 'the password reached no log');
    const discovered = (await c.store.events.list(uuid)).find((e) => e.event === 'discovered')!;
    assert.match(
      discovered.message!,
      /reports BMC 10\.66\.6\.7, which gets no credentials until an operator approves it: 'kiln node approve-bmc node-525400cc0001'/,
    );
    // No power action reaches a node without a BMC.
    assert.equal((await c.call('PUT', `/v1/nodes/${uuid}/states/power`, { target: 'power on' })).status, 400);

    // A reader may not approve.
    const { token } = await createToken(c.store.tokens, { name: 'reader', role: 'reader', expiresAt: null });
    const denied = await c.callAs(token)('POST', `/v1/nodes/${uuid}/bmc/approve`, {});
    assert.equal(denied.status, 403);
    assert.equal((await c.store.nodes.get(uuid))!.bmc_address, null);

    // The operator approves, giving the BMC's real address, with the CLI.
    const cli = await promisify(execFile)(
      process.execPath,
      [
        '--import',
        'tsx',
        join(ROOT, 'cli/main.ts'),
        '--api',
        c.url,
        '--json',
        'node',
        'approve-bmc',
        'node-525400cc0001',
        '--address',
        'bmc-cc.lab.example',
      ],
      { cwd: ROOT, env: { ...process.env, KILN_TOKEN: c.adminToken } },
    );
    const shown = JSON.parse(cli.stdout);
    assert.equal(shown.bmc_address, 'ipmi://admin@bmc-cc.lab.example');
    assert.equal(shown.bmc_password, '******');
    const managed = await stateIs(uuid, 'manageable');
    assert.equal(managed.bmc_password, SITE_PASSWORD);
    const approved = (await c.store.events.list(uuid)).find((e) => e.event === 'bmc_approved')!;
    assert.match(approved.message!, /BMC bmc-cc\.lab\.example approved \(address given by the operator\)/);
    assert.ok(!approved.message!.includes(SITE_PASSWORD));
    const power = await c.call('PUT', `/v1/nodes/${uuid}/states/power`, { target: 'power on' });
    assert.equal(power.status, 200, power.text);
    assert.equal(power.body.power_state, 'power on');

    // The reported address, approved as it is, through the API.
    const r2 = await post(inventory(['52:54:00:cc:00:02'], { bmc: '10.0.5.9' }));
    const ok = await c.call('POST', `/v1/nodes/${r2.body.uuid}/bmc/approve`, {});
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.bmc_address, 'ipmi://admin@10.0.5.9');
  });

  it('use case: a node waiting for its inspection takes the inventory from its own MACs', async () => {
    const made = await c.call('POST', '/v1/nodes', {
      name: 'inspectee',
      bmc_address: 'fake://inspectee',
      properties: { deploy_interface: 'agent' },
      ports: ['52:54:00:dd:00:01', '52:54:00:dd:00:03'],
    });
    const uuid = made.body.uuid as string;
    await c.call('PUT', '/v1/nodes/inspectee/states/provision', { target: 'manage' });
    await stateIs(uuid, 'manageable');
    await c.call('PUT', '/v1/nodes/inspectee/states/provision', { target: 'inspect' });
    await stateIs(uuid, 'inspect wait');
    const count = (await c.store.events.list(uuid, { limit: 1000 })).length;

    // Even while it waits: an inventory missing one of its MACs is not this inspection.
    const before = await snapshot(uuid);
    const partial = await post(inventory(['52:54:00:dd:00:01', '02:66:66:66:66:03']));
    assert.equal(partial.status, 403, partial.text);
    assert.deepEqual({ ...(await snapshot(uuid)), events: before.events }, before);
    assert.equal(await c.store.ports.getByAddress('02:66:66:66:66:03'), undefined);
    assert.deepEqual(await newEvents(uuid, count), [['security', 'error']]);

    const r = await post(inventory(['52:54:00:dd:00:01', '52:54:00:dd:00:03', '52:54:00:dd:00:02']));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.uuid, uuid);
    const node = (await c.store.nodes.get(uuid))!;
    assert.equal(node.properties.memory_mb, 1024, 'the properties come from the inventory');
    assert.equal(node.bmc_address, 'fake://inspectee', 'the BMC stays the operator’s');
    assert.deepEqual((await c.store.ports.list({ node_uuid: uuid })).map((p) => p.address).sort(), [
      '52:54:00:dd:00:01',
      '52:54:00:dd:00:02',
      '52:54:00:dd:00:03',
    ]);
    assert.deepEqual(await newEvents(uuid, count + 1), [['inspection_data', 'ok']]);
  });
});
