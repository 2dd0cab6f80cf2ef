import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KilnError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
import type { Inventory } from '../../shared/wire/ipa.ts';
import { fakeInventory } from '../../test/support/inventory.ts';
import { NodeService } from '../nodes/service.ts';
import { FakePowerDriver } from '../power/fake.ts';
import { ProvisionEngine } from '../provision/engine.ts';
import { createFakeWorkflow } from '../provision/fake-workflow.ts';
import { openSqliteStore } from '../store/sqlite.ts';
import { approveBmc, REPORTED_BMC_KEY } from './approve.ts';
import { createBootTargets } from './boot-target.ts';
import { type EnrollmentSettings, macAllowed, processInspection } from './discovery.ts';

const inventory = fakeInventory;

// biome-ignore lint/suspicious/noExplicitAny: a test spoils arbitrary fields
type Spoilable = Record<string, any>;

async function setup(settings: Partial<EnrollmentSettings> = {}) {
  const store = await openSqliteStore(':memory:');
  const log = silentLogger();
  const fake = new FakePowerDriver({ password: 'lab-pw' });
  const engine = new ProvisionEngine({
    store,
    power: { get: () => fake },
    log,
    workflowFor: () => createFakeWorkflow(),
    conductorId: 't',
  });
  const deps = {
    store,
    log,
    engine,
    nodes: new NodeService(store, log),
    settings: { policy: 'enroll' as const, allowMacPrefixes: [], ...settings },
  };
  return deps;
}

/** Put a node in `to` as the engine would (under a reservation, with an event). */
async function setState(d: Awaited<ReturnType<typeof setup>>, uuid: string, to: string): Promise<void> {
  const node = (await d.store.nodes.get(uuid))!;
  const reservation = (await d.store.nodes.reserve(uuid, 't:x')).reservation!;
  await d.store.nodes.transition({
    uuid,
    from: node.provision_state,
    to: to as typeof node.provision_state,
    target: null,
    reservation,
    event: { node_uuid: uuid, event: 'test', actor: 't', result: 'ok' },
  });
  await d.store.nodes.release(uuid, 't:x');
}

describe('first-boot enrollment', () => {
  it('creates an unknown machine with its ports, inventory and properties, in enroll without a BMC', async () => {
    const d = await setup();
    const r = await processInspection(d, { inventory: inventory() });
    assert.equal(r.created, true);
    assert.equal(r.node.name, 'node-525400123401');
    assert.equal(r.node.provision_state, 'enroll');
    assert.equal(r.node.properties.memory_mb, 1024);
    assert.equal(r.node.properties.local_gb, 7);
    assert.deepEqual(
      (await d.store.ports.list({ node_uuid: r.node.uuid })).map((p) => [p.address, p.pxe_enabled]).sort(),
      [
        ['52:54:00:12:34:01', true],
        ['52:54:00:12:34:02', false],
      ],
    );
    const ev = await d.store.events.list(r.node.uuid);
    assert.ok(ev.some((e) => e.event === 'discovered' && /no BMC known yet/.test(e.message!)));
  });

  it('records the BMC the inventory reports but sends it no credentials until an operator approves', async () => {
    // Behaviour change (security issue item 8): this used to set ipmi://admin@127.0.0.2 with the
    // configured password and manage the node at once, on the word of an unauthenticated inventory.
    const d = await setup({ bmcUsername: 'admin', bmcPassword: 'lab-pw' });
    const r = await processInspection(d, { inventory: inventory({ bmc: '127.0.0.2' }) });
    await d.engine.drain();
    const node = (await d.store.nodes.get(r.node.uuid))!;
    assert.equal(node.bmc_address, null);
    assert.equal(node.bmc_password, null);
    assert.equal(node.driver, 'none');
    assert.equal(node.provision_state, 'enroll');
    assert.equal(node.driver_internal_info[REPORTED_BMC_KEY], '127.0.0.2');
    const ev = await d.store.events.list(r.node.uuid);
    assert.ok(
      ev.some((e) => e.event === 'discovered' && /kiln node approve-bmc node-525400123401/.test(e.message!)),
    );

    const approved = await approveBmc({ ...d, settings: d.settings }, node.name!, undefined, 'op');
    await d.engine.drain();
    const after = (await d.store.nodes.get(node.uuid))!;
    assert.equal(approved.uuid, node.uuid);
    assert.equal(after.bmc_address, 'ipmi://admin@127.0.0.2');
    assert.equal(after.bmc_password, 'lab-pw');
    assert.equal(after.provision_state, 'manageable', 'the fake BMC accepted the credentials');
    assert.ok(
      (await d.store.events.list(node.uuid)).some((e) => e.event === 'bmc_approved' && e.actor === 'op'),
    );

    // Another address, given by the operator; nonsense is refused naming the field.
    await approveBmc({ ...d, settings: d.settings }, node.uuid, '10.9.8.7', 'op');
    assert.equal((await d.store.nodes.get(node.uuid))!.bmc_address, 'ipmi://admin@10.9.8.7');
    await assert.rejects(
      approveBmc({ ...d, settings: d.settings }, node.uuid, 'x@evil/path', 'op'),
      /not an IP address or host name/,
    );
    await assert.rejects(
      approveBmc({ ...d, settings: { ...d.settings, bmcPassword: undefined } }, node.uuid, undefined, 'op'),
      /no enrollment BMC credentials/,
    );
  });

  it('refuses inventory for a known machine unless it waits for that inspection; a security event, nothing changed', async () => {
    const d = await setup();
    const first = (await processInspection(d, { inventory: inventory() })).node;
    const before = (await d.store.nodes.get(first.uuid))!;
    // Behaviour change: a returning machine (in enroll) used to be matched and updated; a
    // swapped-in MAC was added to it. Now both are refused with a 403 and recorded.
    for (const inv of [
      inventory({ serial: 'SN-X' }),
      inventory({ macs: ['52:54:00:12:34:01', '52:54:00:99:99:01'] }),
    ]) {
      await assert.rejects(
        processInspection(d, { inventory: inv }),
        (e: KilnError) => e.status === 403 && /not waiting for this inspection/.test(e.message),
      );
    }
    assert.deepEqual(await d.store.nodes.get(first.uuid), before, 'node unchanged');
    assert.deepEqual((await d.store.ports.list({ node_uuid: first.uuid })).map((p) => p.address).sort(), [
      '52:54:00:12:34:01',
      '52:54:00:12:34:02',
    ]);
    assert.equal(await d.store.ports.getByAddress('52:54:00:99:99:01'), undefined);
    const security = (await d.store.events.list(first.uuid)).filter((e) => e.event === 'security');
    assert.equal(security.length, 2);
    assert.equal(security[0]!.result, 'error');
    assert.match(security[0]!.message!, /not waiting for an inspection/);

    // Waiting for inspection, with all its MACs: updated, and a new NIC becomes a port.
    await setState(d, first.uuid, 'inspect wait');
    await assert.rejects(
      processInspection(d, { inventory: inventory({ macs: ['52:54:00:12:34:01', '52:54:00:99:99:02'] }) }),
      /not waiting for this inspection/,
      'an inventory missing one of its ports is not this inspection',
    );
    const ok = await processInspection(d, {
      inventory: inventory({
        macs: ['52:54:00:12:34:01', '52:54:00:12:34:02', '52:54:00:99:99:01'],
        serial: 'SN-2',
      }),
    });
    assert.equal(ok.created, false);
    assert.equal(ok.matchedBy, 'mac');
    assert.equal((ok.node.inventory as Inventory).system_vendor.serial_number, 'SN-2');
    assert.ok(await d.store.ports.getByAddress('52:54:00:99:99:01'));

    // A node without ports (imported by BMC only) is matched by system UUID but can't be checked: refused.
    const bare = await d.nodes.create({ name: 'imported', ports: [] }, 'test');
    await setState(d, bare.uuid, 'inspect wait');
    await d.store.nodes.update(bare.uuid, {
      inventory: inventory({ uuid: '5c5fd1a8-0000-4000-8000-0000000000aa', serial: 'SN-AA' }),
    });
    await assert.rejects(
      processInspection(d, {
        inventory: inventory({
          macs: ['52:54:00:aa:00:01'],
          uuid: '5c5fd1a8-0000-4000-8000-0000000000aa',
          serial: 'SN-AA',
        }),
      }),
      /not waiting for this inspection/,
    );
    assert.equal(await d.store.ports.getByAddress('52:54:00:aa:00:01'), undefined);
    assert.match((await d.store.events.list(bare.uuid)).at(-1)!.message!, /no registered ports/);
    assert.equal(await d.store.nodes.count(), 2);
  });

  it('enrolls a second machine sharing a UUID and serial but no MAC as its own node, flagged', async () => {
    // Two whitebox servers with the same firmware defaults, or QEMU VMs without -uuid: same
    // system UUID and serial, different NICs. They must never become one node.
    const d = await setup();
    const vm0 = (await processInspection(d, { inventory: inventory({ macs: ['52:54:00:00:00:10'] }) })).node;
    const vm1 = await processInspection(d, { inventory: inventory({ macs: ['52:54:00:00:00:11'] }) });
    assert.equal(vm1.created, true);
    assert.notEqual(vm1.node.uuid, vm0.uuid);
    assert.equal(await d.store.nodes.count(), 2);
    assert.deepEqual(
      (await d.store.ports.list({ node_uuid: vm0.uuid })).map((p) => p.address),
      ['52:54:00:00:00:10'],
      'the first node keeps only its own port',
    );
    const ev = await d.store.events.list(vm1.node.uuid);
    const dup = ev.find((e) => e.event === 'possible_duplicate');
    assert.ok(dup, 'a possible-duplicate event is recorded on the new node');
    assert.match(dup.message!, new RegExp(`possible duplicate of ${vm0.name}: same system UUID`));
  });

  it('does not match on placeholder serials and UUIDs that firmware ships', async () => {
    const d = await setup();
    // A bare node (no ports) would be matched by a real UUID or serial; placeholders must not.
    const bare = await d.nodes.create({ name: 'bare', ports: [] }, 'test');
    const placeholders: Array<[string, string]> = [
      ['00000000-0000-0000-0000-000000000000', 'To Be Filled By O.E.M.'],
      ['FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', 'Not Settable'],
      ['03000200-0400-0500-0006-000700080009', 'Default string'],
      ['Not Settable', 'Not Present'],
      ['Not Available', 'N/A'],
      ['None', 'System Serial Number'],
      ['Not Specified', '0123456789'],
      ['00020003-0004-0005-0006-000700080009', 'XXXXXXXXXX'],
      ['', '   '],
    ];
    await d.store.nodes.update(bare.uuid, {
      inventory: inventory({ uuid: placeholders[0]![0], serial: placeholders[0]![1] }),
    });
    for (const [i, [uuid, serial]] of placeholders.entries()) {
      // Two machines with the same placeholders and their own NICs: two nodes, nobody flagged.
      for (const n of [0, 1]) {
        const mac = `52:54:00:00:0${n}:${i.toString(16).padStart(2, '0')}`;
        const r = await processInspection(d, { inventory: inventory({ macs: [mac], uuid, serial }) });
        assert.equal(r.created, true, `${uuid} / ${serial} identified nothing`);
        assert.ok(
          !(await d.store.events.list(r.node.uuid)).some((e) => e.event === 'possible_duplicate'),
          `${uuid} / ${serial} makes no one a duplicate`,
        );
      }
    }
    assert.equal(await d.store.nodes.count(), 2 * placeholders.length + 1);
  });

  it('refuses machines the policy does not admit and rejects inspection data without an inventory', async () => {
    const d = await setup({ policy: 'allow', allowMacPrefixes: ['52:54:01'] });
    await assert.rejects(
      processInspection(d, { inventory: inventory() }),
      /enrollment policy \(allow\) does not admit it/,
    );
    await assert.rejects(processInspection(d, {}), /no inventory/);
    assert.equal(await d.store.nodes.count(), 0);
  });

  it('refuses a malformed inventory with a 400 naming the bad field, and keeps what IPA adds', async () => {
    const d = await setup();
    const cases: Array<[string, (inv: Spoilable) => void, RegExp]> = [
      [
        'a MAC that is not a string',
        (inv) => (inv.interfaces[1].mac_address = 42),
        /inventory\.interfaces\.1\.mac_address/,
      ],
      ['a disk size in words', (inv) => (inv.disks[0].size = 'eight gigs'), /inventory\.disks\.0\.size/],
      ['no cpu', (inv) => delete inv.cpu, /inventory\.cpu/],
      [
        'an unknown boot mode',
        (inv) => (inv.boot.current_boot_mode = 'legacy'),
        /inventory\.boot\.current_boot_mode/,
      ],
      ['memory.total null', (inv) => (inv.memory.total = null), /inventory\.memory\.total/],
    ];
    for (const [what, spoil, path] of cases) {
      const inv = structuredClone(inventory()) as unknown as Spoilable;
      spoil(inv);
      await assert.rejects(
        processInspection(d, { inventory: inv }),
        (e: KilnError) => e.code === 'VALIDATION_FAILED' && e.status === 400 && path.test(e.message),
        what,
      );
    }
    assert.equal(await d.store.nodes.count(), 0, 'nothing enrolled from a malformed inventory');
    const extra = { ...inventory(), numa_topology: { nics: [] }, bmc_v6address: undefined };
    const r = await processInspection(d, { inventory: extra });
    assert.deepEqual(
      r.node.inventory?.numa_topology,
      { nics: [] },
      "a hardware manager's extra keys are kept",
    );
  });

  it('an allow-list with an empty or malformed prefix admits nobody (an empty one used to admit every machine)', async () => {
    for (const allowMacPrefixes of [[''], ['52:54:00', '*'], ['::']]) {
      const d = await setup({ policy: 'allow', allowMacPrefixes });
      await assert.rejects(processInspection(d, { inventory: inventory() }), /does not admit it/);
      assert.equal(macAllowed(d.settings, '52:54:00:12:34:01'), false);
    }
    const d = await setup({ policy: 'allow', allowMacPrefixes: ['52-54-00'] });
    assert.equal(macAllowed(d.settings, '52:54:00:12:34:01'), true);
    assert.equal(macAllowed(d.settings, '52:54:01:12:34:01'), false);
  });

  it('takes the boot NIC from boot_interface in any MAC spelling, else the first NIC', async () => {
    const d = await setup();
    const inv = inventory({ macs: ['52:54:00:12:35:01', '52:54:00:12:35:02'] });
    const r = await processInspection(d, { inventory: inv, boot_interface: '5254.0012.3502' });
    assert.deepEqual(
      (await d.store.ports.list({ node_uuid: r.node.uuid })).map((p) => [p.address, p.pxe_enabled]).sort(),
      [
        ['52:54:00:12:35:01', false],
        ['52:54:00:12:35:02', true],
      ],
    );
    const bare = inventory({ macs: ['52:54:00:12:36:01', '52:54:00:12:36:02'] });
    bare.boot = { current_boot_mode: 'bios', pxe_interface: null };
    const r2 = await processInspection(d, { inventory: bare });
    assert.equal(r2.node.name, 'node-525400123601');
    assert.equal((await d.store.ports.getByAddress('52:54:00:12:36:01'))?.pxe_enabled, true);
  });

  it('boots unknown machines into the ramdisk with the inspection call-back, active nodes from disk', async () => {
    const d = await setup();
    const targets = createBootTargets({
      store: d.store,
      urls: {
        kernel: 'http://c/boot/files/kernel',
        initrd: 'http://c/boot/files/initramfs',
        api: 'http://c:6385',
      },
      enrollment: d.settings,
      extraArgs: ['console=ttyS0'],
    });
    const unknown = await targets.lookup('52:54:00:12:34:01');
    assert.equal(unknown.action, 'ramdisk');
    assert.ok(
      unknown.action === 'ramdisk' &&
        unknown.extraArgs!.includes('ipa-inspection-callback-url=http://c:6385/v1/continue'),
    );
    const node = (await processInspection(d, { inventory: inventory() })).node;
    const known = await targets.lookup('52:54:00:12:34:01');
    assert.ok(known.action === 'ramdisk' && known.extraArgs!.includes(`ipa-node-uuid=${node.uuid}`));
    await d.store.nodes.transition({
      uuid: node.uuid,
      from: 'enroll',
      to: 'active',
      target: null,
      reservation: (await d.store.nodes.reserve(node.uuid, 't:x')).reservation!,
      event: { node_uuid: node.uuid, event: 'test', actor: 't', result: 'ok' },
    });
    assert.deepEqual(await targets.lookup('52:54:00:12:34:01'), {
      action: 'local',
      mac: '52:54:00:12:34:01',
      firmware: 'bios',
    });
    const strict = createBootTargets({
      store: d.store,
      urls: { kernel: 'k', initrd: 'i', api: 'a' },
      enrollment: { policy: 'ignore', allowMacPrefixes: [] },
    });
    assert.equal((await strict.lookup('52:54:00:77:77:77')).action, 'ignore');
    assert.equal(await strict.policy('52:54:00:77:77:77'), 'ignore');
    assert.equal(await strict.policy('52:54:00:12:34:01'), 'boot');
  });
});
