// The behaviour every Store implementation owes its callers. Each backend runs this same suite
// (see store.test.ts); a backend that passes it can replace another without callers noticing.
// `open` must return a store over an empty database each time it is called.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { NewEvent, NewNode, NodeRecord, Store, TransitionRequest } from '../../conductor/store/store.ts';
import type { ErrorCode } from '../../shared/errors.ts';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Assert that `p` rejects with a KilnError of `code` whose message mentions every `needle`. */
async function rejectsWith(p: Promise<unknown>, code: ErrorCode, ...needles: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    const err = e as { name?: string; code?: string; message?: string };
    assert.equal(err.name, 'KilnError', `expected a KilnError, got ${String(e)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    for (const n of needles)
      assert.ok(err.message?.includes(n), `message "${err.message}" should mention "${n}"`);
    return true;
  });
}

const sorted = (xs: string[]) => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    const node = (over: Partial<NewNode> = {}) =>
      store.nodes.create({ uuid: randomUUID(), driver: 'ipmi', ...over });
    const event = (node_uuid: string, over: Partial<NewEvent> = {}): NewEvent => ({
      node_uuid,
      event: 'manage',
      actor: 'operator',
      result: 'ok',
      ...over,
    });
    const eventCount = async (uuid: string) => (await store.events.list(uuid)).length;

    describe('nodes', () => {
      it('creates a node with defaults and reads it back by uuid and name', async () => {
        const uuid = randomUUID();
        const created = await store.nodes.create({ uuid, driver: 'ipmi', name: 'rack1-u02' });
        assert.equal(created.uuid, uuid);
        assert.equal(created.name, 'rack1-u02');
        assert.equal(created.driver, 'ipmi');
        assert.equal(created.provision_state, 'enroll');
        assert.equal(created.target_provision_state, null);
        assert.deepEqual(created.properties, {});
        assert.deepEqual(created.extra, {});
        assert.deepEqual(created.instance_info, {});
        assert.deepEqual(created.driver_internal_info, {});
        assert.equal(created.inventory, null);
        assert.equal(created.maintenance, false);
        assert.equal(created.reservation, null);
        assert.equal(created.provision_updated_at, null);
        assert.match(created.created_at, ISO_UTC);
        assert.equal(created.updated_at, created.created_at);
        assert.deepEqual(await store.nodes.get(uuid), created);
        assert.deepEqual(await store.nodes.getByName('rack1-u02'), created);
        assert.equal(await store.nodes.get(randomUUID()), undefined);
        assert.equal(await store.nodes.getByName('no-such-node'), undefined);
      });

      it('keeps the fields given at creation', async () => {
        const n = await node({
          name: 'n1',
          bmc_address: 'ipmi://10.0.0.5:623',
          bmc_password: 's3cret',
          provision_state: 'manageable',
          power_state: 'power off',
          inventory: { cpu: { count: 4 } },
        });
        assert.equal(n.bmc_address, 'ipmi://10.0.0.5:623');
        assert.equal(n.bmc_password, 's3cret');
        assert.equal(n.provision_state, 'manageable');
        assert.equal(n.power_state, 'power off');
        assert.deepEqual(n.inventory, { cpu: { count: 4 } });
      });

      it('round-trips JSON fields and booleans exactly', async () => {
        const properties = {
          cpus: 64,
          memory_mb: 524288,
          ratio: 0.5,
          capabilities: 'boot_mode:uefi',
          disks: [{ name: '/dev/sda', size: 2 ** 40, rotational: false }],
          nested: { deep: { deeper: [1, 'two', null, true] } },
          label: 'naïve ünïcödé ✓ "quoted" \\ back\nslash',
          empty: {},
        };
        const n = await node({ properties, extra: { tags: ['a', 'b'] }, instance_info: { image: 'x' } });
        const got = await store.nodes.get(n.uuid);
        assert.deepEqual(got?.properties, properties);
        assert.deepEqual(got?.extra, { tags: ['a', 'b'] });
        assert.deepEqual(got?.instance_info, { image: 'x' });
        const updated = await store.nodes.update(n.uuid, {
          maintenance: true,
          maintenance_reason: 'fan',
          driver_internal_info: {
            agent_url: 'http://10.0.0.9:9999',
            steps: [{ step: 'erase', priority: 10 }],
          },
          inventory: { interfaces: [{ mac: '52:54:00:12:34:56' }] },
        });
        assert.equal(updated.maintenance, true);
        assert.equal(typeof updated.maintenance, 'boolean');
        assert.deepEqual(updated.driver_internal_info.steps, [{ step: 'erase', priority: 10 }]);
        assert.deepEqual((await store.nodes.get(n.uuid))?.inventory, {
          interfaces: [{ mac: '52:54:00:12:34:56' }],
        });
        const cleared = await store.nodes.update(n.uuid, { inventory: null, maintenance: false });
        assert.equal(cleared.inventory, null);
        assert.equal(cleared.maintenance, false);
      });

      it('updates only the fields in the patch and bumps updated_at', async () => {
        const n = await node({ name: 'before', extra: { keep: 1 } });
        await new Promise((r) => setTimeout(r, 5));
        const u = await store.nodes.update(n.uuid, {
          name: 'after',
          last_error: 'boom',
          power_state: 'power on',
        });
        assert.equal(u.name, 'after');
        assert.equal(u.last_error, 'boom');
        assert.equal(u.power_state, 'power on');
        assert.deepEqual(u.extra, { keep: 1 });
        assert.equal(u.created_at, n.created_at);
        assert.ok(u.updated_at > n.updated_at, `${u.updated_at} should be later than ${n.updated_at}`);
        assert.equal(await store.nodes.getByName('before'), undefined);
        assert.deepEqual(await store.nodes.get(n.uuid), u);
        const renamedNull = await store.nodes.update(n.uuid, { name: null });
        assert.equal(renamedNull.name, null);
      });

      it('refuses a duplicate name or uuid with CONFLICT naming it', async () => {
        const a = await node({ name: 'dup' });
        await rejectsWith(node({ name: 'dup' }), 'CONFLICT', 'dup');
        await rejectsWith(store.nodes.create({ uuid: a.uuid, driver: 'ipmi' }), 'CONFLICT', a.uuid);
        const b = await node({ name: 'other' });
        await rejectsWith(store.nodes.update(b.uuid, { name: 'dup' }), 'CONFLICT', 'dup');
        assert.equal((await store.nodes.get(b.uuid))?.name, 'other');
        // Unnamed nodes never collide.
        await node();
        await node();
        assert.equal(await store.nodes.count(), 4);
      });

      it('answers NOT_FOUND for an unknown uuid on update, delete, reserve and transition', async () => {
        const ghost = randomUUID();
        await rejectsWith(store.nodes.update(ghost, { name: 'x' }), 'NOT_FOUND', ghost);
        await rejectsWith(store.nodes.delete(ghost), 'NOT_FOUND', ghost);
        await rejectsWith(store.nodes.reserve(ghost, 'c1'), 'NOT_FOUND', ghost);
        await rejectsWith(
          store.nodes.transition({
            uuid: ghost,
            from: 'enroll',
            to: 'verifying',
            target: 'manageable',
            reservation: 'c1',
            event: event(ghost),
          }),
          'NOT_FOUND',
          ghost,
        );
        // Releasing a lock on a node that is gone is a no-op, not an error.
        await store.nodes.release(ghost, 'c1');
      });

      it('deletes a node together with its ports and events', async () => {
        const n = await node({ name: 'doomed' });
        const p = await store.ports.create({
          uuid: randomUUID(),
          address: '52:54:00:00:00:01',
          node_uuid: n.uuid,
        });
        await store.events.add(event(n.uuid));
        const keep = await node({ name: 'kept' });
        await store.events.add(event(keep.uuid));
        await store.nodes.delete(n.uuid);
        assert.equal(await store.nodes.get(n.uuid), undefined);
        assert.equal(await store.nodes.getByName('doomed'), undefined);
        assert.equal(await store.ports.get(p.uuid), undefined);
        assert.equal(await store.ports.getByAddress('52:54:00:00:00:01'), undefined);
        assert.deepEqual(await store.events.list(n.uuid), []);
        assert.equal(await eventCount(keep.uuid), 1);
        // The MAC is free again.
        await store.ports.create({ uuid: randomUUID(), address: '52:54:00:00:00:01', node_uuid: keep.uuid });
      });

      it('lists in uuid order with keyset pagination', async () => {
        const uuids: string[] = [];
        for (let i = 0; i < 7; i++) uuids.push((await node({ name: `n${i}` })).uuid);
        const all = await store.nodes.list();
        assert.deepEqual(
          all.map((n) => n.uuid),
          sorted(uuids),
        );
        const pages: string[][] = [];
        let marker: string | undefined;
        for (;;) {
          const page = await store.nodes.list({ limit: 3, marker });
          if (page.length === 0) break;
          pages.push(page.map((n) => n.uuid));
          marker = page[page.length - 1]!.uuid;
        }
        assert.deepEqual(
          pages.map((p) => p.length),
          [3, 3, 1],
        );
        assert.deepEqual(pages.flat(), sorted(uuids));
      });

      it('returns at most 1000 nodes when no limit is given', async () => {
        // One transaction-free bulk insert would be faster, but the contract only has the API.
        await Promise.all(Array.from({ length: 1001 }, () => node()));
        assert.equal((await store.nodes.list()).length, 1000);
        assert.equal((await store.nodes.list({ limit: 1001 })).length, 1001);
        assert.equal(await store.nodes.count(), 1001);
      });

      it('filters list and count by provision state, maintenance and driver', async () => {
        await node({ provision_state: 'available', driver: 'ipmi' });
        await node({ provision_state: 'available', driver: 'redfish' });
        const m = await node({ provision_state: 'manageable', driver: 'ipmi' });
        await store.nodes.update(m.uuid, { maintenance: true });
        await node({ provision_state: 'active', driver: 'ipmi' });
        assert.equal(await store.nodes.count(), 4);
        assert.equal(await store.nodes.count({ provision_state: 'available' }), 2);
        assert.equal(await store.nodes.count({ provision_state: 'available', driver: 'ipmi' }), 1);
        assert.equal(await store.nodes.count({ maintenance: true }), 1);
        assert.equal(await store.nodes.count({ maintenance: false }), 3);
        assert.equal(await store.nodes.count({ driver: 'redfish' }), 1);
        assert.equal(await store.nodes.count({ provision_state: 'deploying' }), 0);
        const inMaint = await store.nodes.list({ maintenance: true });
        assert.deepEqual(
          inMaint.map((n) => n.uuid),
          [m.uuid],
        );
        const avail = await store.nodes.list({ provision_state: 'available', limit: 1 });
        assert.equal(avail.length, 1);
        const rest = await store.nodes.list({ provision_state: 'available', marker: avail[0]!.uuid });
        assert.equal(rest.length, 1);
        assert.equal(rest[0]!.provision_state, 'available');
      });

      it('refuses a non-positive limit', async () => {
        await rejectsWith(store.nodes.list({ limit: 0 }), 'VALIDATION_FAILED', 'limit');
      });
    });

    describe('reservations', () => {
      it('reserve takes a free lock and refuses a held one, naming the holder', async () => {
        const n = await node({ name: 'locky' });
        const r = await store.nodes.reserve(n.uuid, 'conductor-a:1');
        assert.equal(r.reservation, 'conductor-a:1');
        await rejectsWith(
          store.nodes.reserve(n.uuid, 'conductor-b:1'),
          'NODE_LOCKED',
          'locky',
          'conductor-a:1',
        );
        // The lock is not re-entrant: holding it already is also "locked".
        await rejectsWith(store.nodes.reserve(n.uuid, 'conductor-a:1'), 'NODE_LOCKED', 'conductor-a:1');
        assert.equal((await store.nodes.get(n.uuid))?.reservation, 'conductor-a:1');
      });

      it('names an unnamed node by uuid when it is locked', async () => {
        const n = await node();
        await store.nodes.reserve(n.uuid, 'c1');
        await rejectsWith(store.nodes.reserve(n.uuid, 'c2'), 'NODE_LOCKED', n.uuid, 'c1');
      });

      it('release only clears the lock for its holder', async () => {
        const n = await node();
        await store.nodes.reserve(n.uuid, 'c1');
        await store.nodes.release(n.uuid, 'c2');
        assert.equal((await store.nodes.get(n.uuid))?.reservation, 'c1');
        await store.nodes.release(n.uuid, 'c1');
        assert.equal((await store.nodes.get(n.uuid))?.reservation, null);
        await store.nodes.release(n.uuid, 'c1');
        assert.equal((await store.nodes.reserve(n.uuid, 'c3')).reservation, 'c3');
      });

      it('releaseAll frees exactly the locks whose holder starts with the prefix', async () => {
        const a = await node();
        const b = await node();
        const c = await node();
        const d = await node();
        await store.nodes.reserve(a.uuid, 'conductor-a:100');
        await store.nodes.reserve(b.uuid, 'conductor-a:200');
        await store.nodes.reserve(c.uuid, 'conductor-ab:1');
        await store.nodes.reserve(d.uuid, 'conductor-b:1');
        assert.equal(await store.nodes.releaseAll('conductor-a:'), 2);
        assert.equal((await store.nodes.get(a.uuid))?.reservation, null);
        assert.equal((await store.nodes.get(b.uuid))?.reservation, null);
        assert.equal((await store.nodes.get(c.uuid))?.reservation, 'conductor-ab:1');
        assert.equal((await store.nodes.get(d.uuid))?.reservation, 'conductor-b:1');
        assert.equal(await store.nodes.releaseAll('conductor-a:'), 0);
      });

      it('releaseAll matches the prefix literally, wildcards included', async () => {
        const a = await node();
        const b = await node();
        await store.nodes.reserve(a.uuid, 'host_1:%');
        await store.nodes.reserve(b.uuid, 'hostX1:9');
        assert.equal(await store.nodes.releaseAll('host_1:%'), 1);
        assert.equal(await store.nodes.releaseAll('host_'), 0);
        assert.equal((await store.nodes.get(b.uuid))?.reservation, 'hostX1:9');
        await rejectsWith(store.nodes.releaseAll(''), 'VALIDATION_FAILED');
      });

      it('lets exactly one of several concurrent reserve calls win', async () => {
        for (let round = 0; round < 5; round++) {
          const n = await node();
          const holders = ['c1', 'c2', 'c3', 'c4'];
          const results = await Promise.allSettled(holders.map((h) => store.nodes.reserve(n.uuid, h)));
          const won = results.filter((r) => r.status === 'fulfilled');
          const lost = results.filter((r) => r.status === 'rejected');
          assert.equal(won.length, 1, `round ${round}: ${won.length} winners`);
          for (const l of lost) assert.equal((l.reason as { code: string }).code, 'NODE_LOCKED');
          const winner = (won[0] as PromiseFulfilledResult<NodeRecord>).value.reservation;
          assert.equal((await store.nodes.get(n.uuid))?.reservation, winner);
        }
      });
    });

    describe('transition', () => {
      const request = (n: NodeRecord, over: Partial<TransitionRequest> = {}): TransitionRequest => ({
        uuid: n.uuid,
        from: 'enroll',
        to: 'verifying',
        target: 'manageable',
        reservation: 'c1',
        event: event(n.uuid, { message: 'verifying BMC' }),
        ...over,
      });

      it('moves the state, applies the patch and records the event in one step', async () => {
        const n = await node({ name: 'mover' });
        await store.nodes.reserve(n.uuid, 'c1');
        await new Promise((r) => setTimeout(r, 5));
        const moved = await store.nodes.transition(
          request(n, { patch: { last_error: null, driver_internal_info: { attempt: 1 } } }),
        );
        assert.equal(moved.provision_state, 'verifying');
        assert.equal(moved.target_provision_state, 'manageable');
        assert.deepEqual(moved.driver_internal_info, { attempt: 1 });
        assert.equal(moved.reservation, 'c1');
        assert.match(moved.provision_updated_at ?? '', ISO_UTC);
        assert.ok(moved.updated_at > n.updated_at);
        assert.deepEqual(await store.nodes.get(n.uuid), moved);
        const events = await store.events.list(n.uuid);
        assert.equal(events.length, 1);
        assert.equal(events[0]!.event, 'manage');
        assert.equal(events[0]!.from_state, 'enroll');
        assert.equal(events[0]!.to_state, 'verifying');
        assert.equal(events[0]!.message, 'verifying BMC');

        const done = await store.nodes.transition(
          request(moved, {
            from: 'verifying',
            to: 'manageable',
            target: null,
            event: event(n.uuid, { event: 'done' }),
          }),
        );
        assert.equal(done.provision_state, 'manageable');
        assert.equal(done.target_provision_state, null);
        assert.equal(await eventCount(n.uuid), 2);
      });

      it('lets exactly one of two concurrent transitions from the same state win', async () => {
        const n = await node();
        await store.nodes.reserve(n.uuid, 'c1');
        const results = await Promise.allSettled([
          store.nodes.transition(request(n)),
          store.nodes.transition(request(n, { to: 'manageable', target: null })),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r) => r.status === 'rejected');
        assert.equal(won.length, 1);
        assert.equal((lost[0]!.reason as { code: string }).code, 'INVALID_STATE');
        const winner = (won[0] as PromiseFulfilledResult<NodeRecord>).value;
        assert.equal((await store.nodes.get(n.uuid))?.provision_state, winner.provision_state);
        assert.equal(await eventCount(n.uuid), 1);
      });

      /** Run a transition that must fail and check that nothing about the node changed. */
      async function failsCleanly(
        n: NodeRecord,
        req: TransitionRequest,
        code: ErrorCode,
        ...needles: string[]
      ) {
        const before = await store.nodes.get(n.uuid);
        const eventsBefore = await eventCount(n.uuid);
        await rejectsWith(store.nodes.transition(req), code, ...needles);
        assert.deepEqual(await store.nodes.get(n.uuid), before);
        assert.equal(await eventCount(n.uuid), eventsBefore);
      }

      it('refuses a caller that does not hold the lock, writing nothing', async () => {
        const n = await node({ name: 'unlocked' });
        await failsCleanly(n, request(n), 'NODE_LOCKED', 'unlocked');
        await store.nodes.reserve(n.uuid, 'someone-else');
        await failsCleanly(n, request(n, { patch: { last_error: 'x' } }), 'NODE_LOCKED', 'someone-else');
      });

      it('refuses a stale from-state, naming the current state, writing nothing', async () => {
        const n = await node({ name: 'stale', provision_state: 'manageable' });
        await store.nodes.reserve(n.uuid, 'c1');
        await failsCleanly(
          n,
          request(n, { patch: { last_error: 'x' } }),
          'INVALID_STATE',
          'stale',
          'manageable',
        );
      });

      it('writes nothing when the patch conflicts', async () => {
        await node({ name: 'taken' });
        const n = await node({ name: 'mine' });
        await store.nodes.reserve(n.uuid, 'c1');
        await failsCleanly(n, request(n, { patch: { name: 'taken' } }), 'CONFLICT', 'taken');
      });

      it('writes nothing when the event cannot be recorded', async () => {
        const n = await node();
        await store.nodes.reserve(n.uuid, 'c1');
        const bad = event(n.uuid, { result: 'bogus' as NewEvent['result'] });
        const before = await store.nodes.get(n.uuid);
        await assert.rejects(store.nodes.transition(request(n, { event: bad })));
        assert.deepEqual(await store.nodes.get(n.uuid), before);
        assert.equal(await eventCount(n.uuid), 0);
      });
    });

    describe('ports', () => {
      it('creates, finds by address case-insensitively, lists per node and deletes', async () => {
        const n = await node();
        const other = await node();
        const p = await store.ports.create({
          uuid: randomUUID(),
          address: '52:54:00:AB:CD:EF',
          node_uuid: n.uuid,
        });
        assert.equal(p.address, '52:54:00:ab:cd:ef');
        assert.equal(p.pxe_enabled, true);
        assert.deepEqual(p.extra, {});
        assert.match(p.created_at, ISO_UTC);
        assert.deepEqual(await store.ports.get(p.uuid), p);
        assert.deepEqual(await store.ports.getByAddress('52:54:00:ab:cd:ef'), p);
        assert.deepEqual(await store.ports.getByAddress('52:54:00:AB:CD:EF'), p);
        const q = await store.ports.create({
          uuid: randomUUID(),
          address: '52:54:00:00:00:02',
          node_uuid: n.uuid,
          pxe_enabled: false,
          extra: { switch: 'sw1', port: 'Eth1/3' },
        });
        assert.equal(q.pxe_enabled, false);
        assert.deepEqual(q.extra, { switch: 'sw1', port: 'Eth1/3' });
        const r = await store.ports.create({
          uuid: randomUUID(),
          address: '52:54:00:00:00:03',
          node_uuid: other.uuid,
        });
        assert.deepEqual(
          (await store.ports.list({ node_uuid: n.uuid })).map((x) => x.uuid),
          sorted([p.uuid, q.uuid]),
        );
        assert.deepEqual(
          (await store.ports.list()).map((x) => x.uuid),
          sorted([p.uuid, q.uuid, r.uuid]),
        );
        const first = await store.ports.list({ limit: 1 });
        const next = await store.ports.list({ marker: first[0]!.uuid });
        assert.deepEqual([...first, ...next], await store.ports.list());
        await store.ports.delete(p.uuid);
        assert.equal(await store.ports.get(p.uuid), undefined);
        assert.equal(await store.ports.getByAddress('52:54:00:ab:cd:ef'), undefined);
      });

      it('refuses a duplicate MAC naming it, an unknown node and an unknown port', async () => {
        const n = await node();
        await store.ports.create({ uuid: randomUUID(), address: '52:54:00:00:00:0a', node_uuid: n.uuid });
        await rejectsWith(
          store.ports.create({ uuid: randomUUID(), address: '52:54:00:00:00:0A', node_uuid: n.uuid }),
          'CONFLICT',
          '52:54:00:00:00:0a',
        );
        const ghost = randomUUID();
        await rejectsWith(
          store.ports.create({ uuid: randomUUID(), address: '52:54:00:00:00:0b', node_uuid: ghost }),
          'NOT_FOUND',
          ghost,
        );
        const missing = randomUUID();
        await rejectsWith(store.ports.delete(missing), 'NOT_FOUND', missing);
        assert.equal((await store.ports.list()).length, 1);
      });
    });

    describe('images', () => {
      const image = (name: string, size: number | null = 2_147_483_648 * 3) => ({
        uuid: randomUUID(),
        name,
        url: `http://images.example/${name}.qcow2`,
        checksum_algo: 'sha256',
        checksum: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
        format: 'qcow2',
        size,
        image_type: 'whole-disk',
      });

      it('creates, reads by uuid and name, lists by name and deletes', async () => {
        const b = await store.images.create(image('ubuntu-24.04'));
        const a = await store.images.create(image('debian-12', null));
        assert.equal(b.size, 2_147_483_648 * 3);
        assert.equal(a.size, null);
        assert.match(a.created_at, ISO_UTC);
        assert.deepEqual(await store.images.get(b.uuid), b);
        assert.deepEqual(await store.images.getByName('debian-12'), a);
        assert.equal(await store.images.getByName('nope'), undefined);
        assert.deepEqual(
          (await store.images.list()).map((i) => i.name),
          ['debian-12', 'ubuntu-24.04'],
        );
        await store.images.delete(a.uuid);
        assert.equal(await store.images.get(a.uuid), undefined);
        assert.deepEqual(await store.images.list(), [b]);
      });

      it('refuses a duplicate name naming it and an unknown uuid on delete', async () => {
        await store.images.create(image('rocky-9'));
        await rejectsWith(store.images.create(image('rocky-9')), 'CONFLICT', 'rocky-9');
        const ghost = randomUUID();
        await rejectsWith(store.images.delete(ghost), 'NOT_FOUND', ghost);
        assert.equal((await store.images.list()).length, 1);
      });
    });

    describe('events', () => {
      it('adds events with ids and timestamps and lists them oldest first', async () => {
        const n = await node();
        const first = await store.events.add(event(n.uuid, { event: 'manage' }));
        assert.equal(typeof first.id, 'number');
        assert.match(first.created_at, ISO_UTC);
        assert.equal(first.from_state, null);
        assert.equal(first.to_state, null);
        assert.equal(first.message, null);
        const second = await store.events.add(
          event(n.uuid, {
            event: 'fail',
            result: 'error',
            from_state: 'verifying',
            to_state: 'enroll',
            message: 'm',
          }),
        );
        assert.ok(second.id > first.id);
        const listed = await store.events.list(n.uuid);
        assert.deepEqual(listed, [first, second]);
      });

      it('limits to the most recent events', async () => {
        const n = await node();
        for (let i = 0; i < 5; i++) await store.events.add(event(n.uuid, { message: `e${i}` }));
        const last2 = await store.events.list(n.uuid, { limit: 2 });
        assert.deepEqual(
          last2.map((e) => e.message),
          ['e3', 'e4'],
        );
      });

      it('refuses an event for an unknown node', async () => {
        const ghost = randomUUID();
        await rejectsWith(store.events.add(event(ghost)), 'NOT_FOUND', ghost);
      });

      it('lists events after an id across nodes, oldest first, by node and up to a limit', async () => {
        assert.equal(await store.events.lastId(), 0);
        assert.deepEqual(await store.events.listSince(0), []);
        const a = await node();
        const b = await node();
        const added = [];
        for (const [n, m] of [
          [a, 'a0'],
          [b, 'b0'],
          [a, 'a1'],
          [b, 'b1'],
        ] as const)
          added.push(await store.events.add(event(n.uuid, { message: m })));
        assert.equal(await store.events.lastId(), added[3]!.id);
        assert.deepEqual(await store.events.listSince(0), added);
        assert.deepEqual(await store.events.listSince(added[1]!.id), added.slice(2));
        assert.deepEqual(await store.events.listSince(added[3]!.id), []);
        assert.deepEqual(
          (await store.events.listSince(0, { node_uuid: b.uuid })).map((e) => e.message),
          ['b0', 'b1'],
        );
        assert.deepEqual(
          (await store.events.listSince(added[0]!.id, { limit: 2 })).map((e) => e.message),
          ['b0', 'a1'],
        );
        assert.deepEqual(await store.events.listSince(0, { node_uuid: randomUUID() }), []);
      });

      it('lists the event a transition wrote after the ones before it', async () => {
        const n = await node();
        const before = await store.events.add(event(n.uuid, { event: 'note', result: 'info' }));
        await store.nodes.reserve(n.uuid, 'c1');
        await store.nodes.transition({
          uuid: n.uuid,
          from: 'enroll',
          to: 'verifying',
          target: 'manageable',
          reservation: 'c1',
          event: event(n.uuid),
        });
        const since = await store.events.listSince(before.id);
        assert.equal(since.length, 1);
        assert.equal(since[0]!.from_state, 'enroll');
        assert.equal(since[0]!.to_state, 'verifying');
        assert.equal(await store.events.lastId(), since[0]!.id);
      });

      it('refuses a negative or fractional event id', async () => {
        await rejectsWith(store.events.listSince(-1), 'VALIDATION_FAILED', '-1');
        await rejectsWith(store.events.listSince(1.5), 'VALIDATION_FAILED', '1.5');
      });
    });
    describe('tokens', () => {
      const hash = () => createHash('sha256').update(randomUUID()).digest('hex');
      const token = (over: Partial<Parameters<Store['tokens']['create']>[0]> = {}) =>
        store.tokens.create({
          id: randomUUID().slice(0, 12),
          name: `t-${randomUUID().slice(0, 8)}`,
          role: 'operator',
          hash: hash(),
          expires_at: null,
          ...over,
        });

      it('creates a token and finds it by hash, id and name', async () => {
        const h = hash();
        const t = await store.tokens.create({
          id: 'a1b2c3',
          name: 'ci',
          role: 'reader',
          hash: h,
          expires_at: '2030-01-31T00:00:00Z',
        });
        assert.equal(t.id, 'a1b2c3');
        assert.equal(t.name, 'ci');
        assert.equal(t.role, 'reader');
        assert.equal(t.hash, h);
        assert.match(t.created_at, ISO_UTC);
        // Normalised, so both backends answer the same text for the same instant.
        assert.equal(t.expires_at, '2030-01-31T00:00:00.000Z');
        assert.equal(t.last_used_at, null);
        assert.deepEqual(await store.tokens.getByHash(h), t);
        assert.deepEqual(await store.tokens.find('a1b2c3'), t);
        assert.deepEqual(await store.tokens.find('ci'), t);
        assert.equal(await store.tokens.getByHash(hash()), undefined);
        assert.equal(await store.tokens.find('nobody'), undefined);
      });

      it("prefers an id over a name when one token is named like another one's id", async () => {
        const first = await token({ id: 'deadbeef', name: 'first' });
        await token({ id: 'other', name: 'deadbeef' });
        assert.deepEqual(await store.tokens.find('deadbeef'), first);
      });

      it('lists tokens by name', async () => {
        await token({ name: 'zeta' });
        await token({ name: 'Alpha' });
        await token({ name: 'beta' });
        assert.deepEqual(
          (await store.tokens.list()).map((t) => t.name),
          ['Alpha', 'beta', 'zeta'],
        );
      });

      it('refuses a second token with the same name, id or hash, and keeps the first', async () => {
        const first = await token({ name: 'ci' });
        await rejectsWith(token({ name: 'ci' }), 'CONFLICT', 'ci');
        await rejectsWith(token({ id: first.id }), 'CONFLICT', first.id);
        await rejectsWith(token({ hash: first.hash }), 'CONFLICT');
        assert.deepEqual(await store.tokens.list(), [first]);
      });

      it('refuses an expiry that is not a time', async () => {
        await rejectsWith(token({ expires_at: 'tomorrow' }), 'VALIDATION_FAILED', 'tomorrow');
        assert.deepEqual(await store.tokens.list(), []);
      });

      it('records the last use, and a touch of a revoked token is a no-op', async () => {
        const t = await token();
        await store.tokens.touch(t.id, '2026-12-01T10:00:00.000Z');
        assert.equal((await store.tokens.find(t.id))!.last_used_at, '2026-12-01T10:00:00.000Z');
        await store.tokens.delete(t.id);
        await store.tokens.touch(t.id, '2026-12-01T10:01:00.000Z');
        assert.equal(await store.tokens.find(t.id), undefined);
      });

      it('revokes: the token is gone by hash at once; revoking it again is NOT_FOUND', async () => {
        const t = await token();
        const kept = await token();
        await store.tokens.delete(t.id);
        assert.equal(await store.tokens.getByHash(t.hash), undefined);
        assert.deepEqual(await store.tokens.list(), [kept]);
        await rejectsWith(store.tokens.delete(t.id), 'NOT_FOUND', t.id);
      });
    });
  });
}
