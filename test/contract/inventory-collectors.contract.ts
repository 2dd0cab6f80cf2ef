// The behaviour every inventory collector (agent/inventory/<name>.ts, behind the Collector seam)
// owes the agent and the inspector reading its inventory (docs/agent.md, "Inventory"): from
// recorded inputs it fills its keys in IPA's inventory shape; with its tools missing, failing or
// answering garbage, and with a context that throws, collect() still never throws out of
// collectInventory, the inventory keeps IPA's shape, a collector that lost its inputs is named
// under kiln_collector_failures, and every other collector still reports what it did before.
// Each collector runs this same suite (see inventory-collectors.test.ts).
//
// Collectors see the machine only through their context (run, readFile, readdir, readlink,
// exists); the subject gives that machine as data.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { z } from 'zod';
import { collectInventory } from '../../agent/inventory/index.ts';
import type { Collector, CollectorContext } from '../../agent/inventory/types.ts';
import { ExecError, type Runner } from '../../shared/exec.ts';
import { silentLogger } from '../../shared/log.ts';

// ---- IPA's inventory shape (GenericHardwareManager.list_hardware_info), plus Kiln's additions ----
// Strict on purpose: this is what Kiln's own collectors must produce (no stray keys, sizes as
// integers). shared/wire's inventory schema, by contrast, is loose so a conductor can read any IPA.

const str = z.nullable(z.string());
const MAC = z.string().check(z.regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/));

export const InventorySchema = z.strictObject({
  cpu: z.strictObject({
    model_name: str,
    frequency: str,
    count: z.number().check(z.int(), z.nonnegative()),
    architecture: z.string().check(z.minLength(1)),
    flags: z.array(z.string().check(z.minLength(1))),
    socket_count: z.optional(z.nullable(z.number().check(z.int(), z.positive()))),
  }),
  memory: z.strictObject({
    total: z.number().check(z.int(), z.nonnegative()),
    physical_mb: z.nullable(z.number().check(z.int(), z.positive())),
  }),
  disks: z.array(
    z.strictObject({
      name: z.string().check(z.regex(/^\/dev\/\S+$/)),
      model: str,
      size: z.number().check(z.int(), z.positive()),
      rotational: z.boolean(),
      wwn: str,
      serial: str,
      vendor: str,
      wwn_with_extension: str,
      wwn_vendor_extension: str,
      hctl: str,
      by_path: str,
    }),
  ),
  interfaces: z.array(
    z.strictObject({
      name: z.string().check(z.minLength(1)),
      mac_address: MAC,
      ipv4_address: z.nullable(z.ipv4()),
      ipv6_address: str,
      has_carrier: z.boolean(),
      lldp: z.nullable(
        z.array(z.tuple([z.number().check(z.int()), z.string().check(z.regex(/^[0-9a-f]*$/))])),
      ),
      vendor: str,
      product: str,
      client_id: str,
      biosdevname: str,
      speed_mbps: z.nullable(z.number().check(z.positive())),
      driver: z.optional(str),
    }),
  ),
  system_vendor: z.strictObject({
    product_name: str,
    serial_number: str,
    manufacturer: str,
    firmware: z.strictObject({ vendor: str, version: str, build_date: str }),
    system_uuid: z.optional(str),
  }),
  boot: z.strictObject({
    current_boot_mode: z.enum(['uefi', 'bios']),
    pxe_interface: str,
  }),
  bmc_address: z.nullable(z.ipv4()),
  bmc_v6address: str,
  bmc_mac: z.nullable(MAC),
  hostname: z.string().check(z.minLength(1)),
  kiln_collector_failures: z.array(
    z.strictObject({
      collector: z.string().check(z.minLength(1)),
      message: z.string().check(z.minLength(1)),
    }),
  ),
});

/** The inventory as Kiln's collectors build it (independent of how shared/wire types it). */
export type Inv = z.infer<typeof InventorySchema>;
type Key = Exclude<keyof Inv, 'kiln_collector_failures'>;

// ---- a machine as data ----

export interface FakeMachine {
  files: Record<string, string>;
  dirs: Record<string, string[]>;
  links: Record<string, string>;
  /** Paths that exist without being files, dirs or links here (device nodes, sysfs dirs). */
  present: string[];
  /** stdout per tool. */
  tools: Record<string, (args: readonly string[]) => string>;
}

type Env = Pick<CollectorContext, 'readFile' | 'readdir' | 'readlink' | 'exists'> & { run: Runner };

const enoent = (p: string) =>
  Object.assign(new Error(`ENOENT: no such file or directory, open '${p}'`), { code: 'ENOENT' });

function envOf(m: FakeMachine): Env {
  return {
    readFile: async (p) => {
      if (p in m.files) return m.files[p]!;
      throw enoent(p);
    },
    readdir: async (p) => {
      if (p in m.dirs) return [...m.dirs[p]!];
      throw enoent(p);
    },
    readlink: async (p) => {
      if (p in m.links) return m.links[p]!;
      throw enoent(p);
    },
    exists: async (p) => p in m.files || p in m.dirs || p in m.links || m.present.includes(p),
    run: async (file, args) => {
      const tool = m.tools[file];
      if (!tool) throw new ExecError([file, ...args].join(' '), null, '', '', false, true);
      return { stdout: tool(args), stderr: '', exitCode: 0 };
    },
  };
}

export type Breakage = 'missing' | 'failing' | 'garbage' | 'throwing';

/** The machine as this collector sees it with its inputs broken; the rest of the machine as before. */
function broken(m: FakeMachine, inputs: CollectorSubject['inputs'], how: Breakage): Env {
  const env = envOf(m);
  const mine = (p: string) => inputs.paths.some((x) => p === x || p.startsWith(`${x}/`));
  const isTool = (f: string) => inputs.tools.includes(f);
  if (how === 'throwing') {
    // Not even a rejected promise: the call itself throws.
    const boom = (what: string): never => {
      throw new TypeError(`${what} exploded`);
    };
    return {
      readFile: (p) => (mine(p) ? boom(`readFile ${p}`) : env.readFile(p)),
      readdir: (p) => (mine(p) ? boom(`readdir ${p}`) : env.readdir(p)),
      readlink: (p) => (mine(p) ? boom(`readlink ${p}`) : env.readlink(p)),
      exists: (p) => (mine(p) ? boom(`exists ${p}`) : env.exists(p)),
      run: (f, a, o) => (isTool(f) ? boom(`run ${f}`) : env.run(f, a, o)),
    };
  }
  const fileErr = (p: string) =>
    how === 'missing' ? enoent(p) : Object.assign(new Error(`EIO: i/o error, read '${p}'`), { code: 'EIO' });
  const GARBAGE = '\u0000\u00ff garbage: {[ not what you expected\n';
  return {
    readFile: async (p) => {
      if (!mine(p)) return env.readFile(p);
      if (how === 'garbage') return GARBAGE;
      throw fileErr(p);
    },
    readdir: async (p) => {
      if (!mine(p)) return env.readdir(p);
      if (how === 'garbage') return ['garbage'];
      throw fileErr(p);
    },
    readlink: async (p) => {
      if (!mine(p)) return env.readlink(p);
      if (how === 'garbage') return GARBAGE;
      throw fileErr(p);
    },
    exists: async (p) => (mine(p) ? how === 'garbage' : env.exists(p)),
    run: async (f, a, o) => {
      if (!isTool(f)) return env.run(f, a, o);
      const cmd = [f, ...a].join(' ');
      if (how === 'missing') throw new ExecError(cmd, null, '', '', false, true);
      if (how === 'failing') throw new ExecError(cmd, 1, `${f}: something broke`, '', false, false);
      return { stdout: GARBAGE, stderr: '', exitCode: 0 };
    },
  };
}

export interface CollectorSubject {
  collector: Collector;
  /** The inventory keys this collector fills. */
  keys: readonly Key[];
  /** What it reads: the tools it runs and the paths (and everything under them) it reads. */
  inputs: { tools: readonly string[]; paths: readonly string[] };
  /** Whether losing those inputs is something it must report (false: absence is an answer, e.g. no BMC). */
  reportsLoss: boolean;
  /** What the recorded inputs must give (values, not shape). */
  expect(part: Partial<Inv>): void;
}

export interface CollectorWorld {
  /** The machine with every collector's recorded inputs. */
  machine: FakeMachine;
  /** Every collector the agent runs, this one included. */
  all: readonly Collector[];
  settings: CollectorContext['settings'];
}

function contextFor(env: Env, world: CollectorWorld, failures: string[]): CollectorContext {
  return { ...env, log: silentLogger(), settings: world.settings, fail: (m) => failures.push(m) };
}

/** The inventory, checked against IPA's shape. */
function shaped(raw: unknown): Inv {
  const r = InventorySchema.safeParse(raw);
  assert.ok(r.success, r.success ? '' : `not IPA's inventory shape:\n${z.prettifyError(r.error)}`);
  return r.data;
}

export function inventoryCollectorContract(world: CollectorWorld, subject: CollectorSubject): void {
  const c = subject.collector;
  const partSchema = InventorySchema.pick(
    Object.fromEntries(subject.keys.map((k) => [k, true])) as Partial<Record<Key, true>>,
  );

  describe(`inventory collector contract: ${c.name}`, () => {
    let baselineRaw: unknown;
    before(async () => {
      baselineRaw = await collectInventory({
        log: silentLogger(),
        settings: world.settings,
        fs: envOf(world.machine),
        run: envOf(world.machine).run,
        collectors: world.all,
      });
    });

    it('is one of the collectors the agent runs', () => {
      assert.ok(
        world.all.some((x) => x === c),
        `${c.name} is in the list`,
      );
    });

    it("from its recorded inputs: fills exactly its keys, in IPA's shape, with the recorded values, and reports nothing", async () => {
      const failures: string[] = [];
      const part = await c.collect(contextFor(envOf(world.machine), world, failures));
      assert.deepEqual(Object.keys(part).sort(), [...subject.keys].sort(), 'its keys and only those');
      const r = partSchema.safeParse(part);
      assert.ok(r.success, r.success ? '' : z.prettifyError(r.error));
      assert.deepEqual(failures, [], 'nothing to report');
      subject.expect(part as Partial<Inv>);
    });

    it("in the whole inventory: IPA's shape, its part as collected alone, no failures", () => {
      const baseline = shaped(baselineRaw);
      assert.deepEqual(baseline.kiln_collector_failures, []);
      subject.expect(baseline);
    });

    for (const how of ['missing', 'failing', 'garbage', 'throwing'] as const) {
      const what = {
        missing: 'its tools and files missing',
        failing: 'its tools failing and its files unreadable',
        garbage: 'its tools and files answering garbage',
        throwing: 'a context that throws on every call it makes',
      }[how];
      const reports = subject.reportsLoss && how !== 'garbage';
      const named = reports ? `, names ${c.name} in kiln_collector_failures` : '';
      it(`with ${what}: collectInventory still answers, in IPA's shape${named}, and every other collector still reports`, async () => {
        const env = broken(world.machine, subject.inputs, how);
        const wrapped: Collector = {
          name: c.name,
          collect: (ctx) => c.collect({ ...ctx, ...env }),
        };
        const raw = await collectInventory({
          log: silentLogger(),
          settings: world.settings,
          fs: envOf(world.machine),
          run: envOf(world.machine).run,
          collectors: world.all.map((x) => (x === c ? wrapped : x)),
        });
        const inv = shaped(raw);
        const baseline = shaped(baselineRaw);
        const mine = inv.kiln_collector_failures.filter((f) => f.collector === c.name);
        const others = inv.kiln_collector_failures.filter((f) => f.collector !== c.name);
        assert.deepEqual(others, [], 'no other collector fails because this one did');
        if (reports)
          assert.ok(
            mine.length > 0,
            `${c.name} names its failure: ${JSON.stringify(inv.kiln_collector_failures)}`,
          );
        for (const key of Object.keys(InventorySchema.shape) as (keyof Inv)[]) {
          if (key === 'kiln_collector_failures' || subject.keys.includes(key as Key)) continue;
          assert.deepEqual(inv[key], baseline[key], `${key} as before`);
        }
      });
    }
  });
}
