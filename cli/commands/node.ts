// `kiln node …`: enroll, inspect, provide, deploy, undeploy, power, watch.
import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import type { EventView, NodeView } from '../../shared/wire/api.ts';
import { type ApiClient, CliError, EXIT } from '../client.ts';
import { parseImportFile } from '../import-file.ts';
import {
  addOutputOptions,
  bytes,
  cell,
  duration,
  keyValues,
  type ListSpec,
  outputOpts,
  print,
  renderList,
  renderShow,
} from '../output.ts';
import { type Progress, progressText, statusLine } from '../progress.ts';
import { latestEventId, parseTimeout, watchNode } from '../watch.ts';

type Ctx = () => { client: ApiClient; json: boolean };

const enc = encodeURIComponent;

function properties(pairs: string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i < 1) throw new CliError(`--property expects KEY=VALUE, got "${p}"`, EXIT.usage);
    const v = p.slice(i + 1);
    out[p.slice(0, i)] = /^-?\d+(\.\d+)?$/.test(v)
      ? Number(v)
      : v === 'true'
        ? true
        : v === 'false'
          ? false
          : v.startsWith('{') || v.startsWith('[')
            ? parseJson(v, p)
            : v;
  }
  return out;
}

function parseJson(v: string, pair: string): unknown {
  try {
    return JSON.parse(v);
  } catch (e) {
    throw new CliError(
      `--property ${pair}: value starts with "{" but is not valid JSON: ${(e as Error).message}`,
      EXIT.usage,
    );
  }
}

function readPassword(opts: { bmcPassword?: string; bmcPasswordStdin?: boolean }): string | undefined {
  if (opts.bmcPasswordStdin) return readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  return opts.bmcPassword ?? process.env.KILN_BMC_PASSWORD ?? undefined;
}

/** A size in MiB (memory_mb) as GiB, keeping the raw number beside it. */
function mib(v: unknown): string {
  return typeof v === 'number' ? `${bytes(v * 1048576)} (${v} MiB)` : cell(v);
}

/** properties as `key=value` pairs, sizes in human units. */
function humanProperties(props: Record<string, unknown>): string {
  return Object.entries(props)
    .map(([k, v]) => {
      if (k === 'memory_mb') return `memory=${mib(v)}`;
      if (k === 'local_gb' && typeof v === 'number') return `local_gb=${v} GiB`;
      return `${k}=${cell(v)}`;
    })
    .join('\n');
}

/** The inventory as a few lines a person reads: CPU, memory, disks, NICs, system. */
function humanInventory(inv: Record<string, unknown>): string {
  // The API may wrap the agent's inventory with plugin data; either shape reads the same.
  const i = (inv.inventory as Record<string, unknown> | undefined) ?? inv;
  const lines: string[] = [];
  const cpu = i.cpu as { count?: number; model_name?: string; architecture?: string } | undefined;
  if (cpu)
    lines.push(`cpu: ${cpu.count ?? '?'} × ${cpu.model_name ?? 'unknown'} (${cpu.architecture ?? '?'})`);
  const mem = i.memory as { total?: number; physical_mb?: number | null } | undefined;
  if (mem)
    lines.push(
      `memory: ${typeof mem.physical_mb === 'number' ? bytes(mem.physical_mb * 1048576) : typeof mem.total === 'number' ? bytes(mem.total) : '?'}`,
    );
  for (const d of (i.disks as { name?: string; size?: number; model?: string | null }[] | undefined) ?? [])
    lines.push(
      `disk: ${d.name} ${typeof d.size === 'number' ? bytes(d.size) : '?'}${d.model ? ` ${d.model}` : ''}`,
    );
  for (const n of (i.interfaces as { name?: string; mac_address?: string; ipv4_address?: string | null }[]) ??
    [])
    lines.push(`nic: ${n.name} ${n.mac_address}${n.ipv4_address ? ` ${n.ipv4_address}` : ''}`);
  const sys = i.system_vendor as { manufacturer?: string | null; product_name?: string | null } | undefined;
  if (sys) lines.push(`system: ${[sys.manufacturer, sys.product_name].filter(Boolean).join(' ') || '?'}`);
  if (i.bmc_address) lines.push(`bmc_address: ${i.bmc_address}`);
  return lines.length ? lines.join('\n') : JSON.stringify(inv);
}

/** How long ago an ISO time was, for provision_updated_at. */
function ago(iso: unknown): string {
  if (typeof iso !== 'string') return cell(iso);
  const s = (Date.now() - Date.parse(iso)) / 1000;
  return Number.isFinite(s) ? `${iso} (${duration(s)} ago)` : iso;
}

/** A node for people: sizes in GiB, durations, the inventory summarised. json/yaml keep raw values. */
export function humanNode(raw: Record<string, unknown>): Record<string, unknown> {
  const n = raw as unknown as NodeView;
  const out: Record<string, unknown> = { ...raw };
  if (n.properties) out.properties = humanProperties(n.properties);
  if (n.instance_info) {
    const { image_size, ...ii } = n.instance_info;
    out.instance_info = [
      ...Object.entries(ii).map(([k, v]) => `${k}=${cell(v)}`),
      ...(typeof image_size === 'number' ? [`image_size=${bytes(image_size)}`] : []),
    ].join('\n');
  }
  if (n.extra) out.extra = Object.keys(n.extra).length ? JSON.stringify(n.extra) : '';
  if (n.ports) out.ports = n.ports.join(', ');
  if ('progress' in raw) out.progress = n.progress ? progressText(n.progress as Progress, true) : '';
  if ('inventory' in raw) out.inventory = n.inventory ? humanInventory(n.inventory) : '';
  if ('provision_updated_at' in raw) out.provision_updated_at = ago(n.provision_updated_at);
  return out;
}

/** One line for an action's answer: where the node is and where it is headed. */
function progressLine(n: NodeView): string {
  return statusLine({ ...n, name: n.name ?? n.uuid, progress: n.progress as Progress | null }, false);
}

/**
 * Why a node that came to rest counts as failed, or null: it rests in a failed state, or short
 * of where its action was taking it (a manage whose BMC check failed falls back to enroll).
 */
function restFailure(n: NodeView, target: string | null): string | null {
  const failed = n.provision_state.endsWith(' failed') || n.provision_state === 'error';
  if (!failed && (!target || n.provision_state === target)) return null;
  const where = failed ? n.provision_state : `${n.provision_state}, not ${target}`;
  const why = n.last_error ?? `no last_error recorded; see 'kiln node events ${n.name ?? n.uuid}'`;
  return `node ${n.name ?? n.uuid} ended in ${where}: ${why}`;
}

/** Print where a watched node came to rest; a failure also goes to stderr and exits 1. */
function reportRest(n: NodeView, target: string | null, json: boolean): void {
  const failure = restFailure(n, target);
  print(
    n,
    json,
    () =>
      `${n.name ?? n.uuid}: ${n.provision_state}${!failure && n.last_error ? `\nlast_error: ${n.last_error}` : ''}`,
  );
  if (!failure) return;
  process.stderr.write(`error: ${failure}\n`);
  process.exitCode = EXIT.error;
}

/** The fields of the API's node summary (GET /v1/nodes without detail). */
const SUMMARY_FIELDS = new Set([
  'uuid',
  'name',
  'driver',
  'provision_state',
  'target_provision_state',
  'power_state',
  'maintenance',
  'last_error',
]);

const NODE_LIST: ListSpec = {
  key: 'nodes',
  columns: ['uuid', 'name', 'driver', 'provision_state', 'power_state', 'maintenance', 'last_error'],
  long: [
    'uuid',
    'name',
    'driver',
    'bmc_address',
    'provision_state',
    'target_provision_state',
    'power_state',
    'maintenance',
    'maintenance_reason',
    'reservation',
    'last_error',
    'provision_updated_at',
  ],
};

/** The API's largest page of nodes. */
const NODE_PAGE = 1000;

/** List nodes page by page (marker = last UUID) until there are no more or `limit` is reached. */
async function listNodes(
  client: ApiClient,
  filter: URLSearchParams,
  limit = Number.POSITIVE_INFINITY,
): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  let marker: string | null = null;
  do {
    const q = new URLSearchParams(filter);
    q.set('limit', String(Math.min(NODE_PAGE, limit - rows.length)));
    if (marker) q.set('marker', marker);
    const page: { nodes: Record<string, unknown>[]; next: string | null } = await client.call(
      'GET',
      `/v1/nodes?${q}`,
    );
    rows.push(...page.nodes);
    marker = page.next;
  } while (marker && rows.length < limit);
  return rows;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(`${flag} expects a positive integer, got "${value}"`, EXIT.usage);
  return n;
}

const EVENT_LIST: ListSpec = {
  key: 'events',
  columns: ['created_at', 'event', 'actor', 'result', 'from_state', 'to_state', 'message'],
  long: ['id', 'created_at', 'node_uuid', 'event', 'actor', 'result', 'from_state', 'to_state', 'message'],
};

const PORT_LIST: ListSpec = {
  key: 'ports',
  columns: ['uuid', 'address', 'node_uuid', 'pxe_enabled'],
  long: ['uuid', 'address', 'node_uuid', 'pxe_enabled', 'extra', 'created_at'],
};

const WAIT_FLAG = '--wait [timeout]';
const WAIT_HELP =
  'follow progress until the node rests; give up (exit 1) after TIMEOUT (90, 90s, 5m, 1h) if given';

/** Poll the BMC (through the API) until the node reports `want`, for `power --wait`. */
async function waitForPower(
  client: ApiClient,
  n: NodeView,
  want: string,
  timeoutS: number | undefined,
): Promise<NodeView> {
  const end = timeoutS === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutS * 1000;
  let now = n.power_state;
  while (now !== want) {
    if (Date.now() > end)
      throw new CliError(
        `node ${n.name ?? n.uuid} still reports ${now ?? 'no power state'}, not ${want}, after ${duration(timeoutS!)}: the BMC took the order but the server has not followed (an OS ignoring a soft power-off?); 'kiln node power ${n.name ?? n.uuid} off' forces it`,
        EXIT.error,
      );
    await new Promise((r) => setTimeout(r, 1000));
    now = (await client.call<{ power_state: string }>('GET', `/v1/nodes/${enc(n.uuid)}/states/power`))
      .power_state;
  }
  return { ...n, power_state: now };
}

export function registerNodeCommands(program: Command, ctx: Ctx): void {
  const node = program.command('node').description('enroll and drive bare-metal nodes');

  addOutputOptions(
    node
      .command('list')
      .description('list nodes (every page, unless --limit)')
      .option('--provision-state <state>', 'only nodes in this provision state ("clean wait", …)')
      .addOption(new Option('--state <state>').hideHelp())
      .option('--maintenance', 'only nodes in maintenance')
      .option('--no-maintenance', 'only nodes not in maintenance')
      .option('--driver <driver>', 'only nodes with this power driver (ipmi, redfish, fake)')
      .option('--limit <n>', 'list at most this many nodes (default: all, fetched page by page)')
      // Listing every node is the default now; --all stays accepted for scripts that pass it.
      .addOption(new Option('--all').hideHelp()),
    'list',
  ).action(async (o) => {
    const { client, json } = ctx();
    const out = outputOpts(o, json);
    const filter = new URLSearchParams();
    const state = o.provisionState ?? o.state;
    if (state) filter.set('provision_state', state);
    if (o.maintenance !== undefined) filter.set('maintenance', String(o.maintenance));
    if (o.driver) filter.set('driver', o.driver);
    // The summary view lacks the --long columns; ask for whole nodes only when they are shown.
    const wanted = out.columns ?? (out.long ? NODE_LIST.long! : NODE_LIST.columns);
    if (
      wanted.some((c) => !SUMMARY_FIELDS.has(c)) ||
      (out.sort && !out.sort.split(',').every((k) => SUMMARY_FIELDS.has(k.split(':')[0]!)))
    )
      filter.set('detail', 'true');
    const rows = await listNodes(client, filter, o.limit ? positiveInt(o.limit, '--limit') : undefined);
    process.stdout.write(`${renderList(rows, NODE_LIST, out)}\n`);
  });

  addOutputOptions(
    node
      .command('show <node>')
      .description('show a node: states, BMC, properties, inventory and live progress'),
    'show',
  ).action(async (ident, o) => {
    const { client, json } = ctx();
    const n = await client.call<NodeView>('GET', `/v1/nodes/${enc(ident)}`);
    process.stdout.write(
      `${renderShow(n as unknown as Record<string, unknown>, outputOpts(o, json), humanNode)}\n`,
    );
  });

  node
    .command('create')
    .description('enroll a node (it starts in the enroll state; then run `kiln node manage`)')
    .option('--name <name>')
    .option(
      '--bmc-address <url>',
      'ipmi://USER@HOST[:PORT], redfish+https://HOST/redfish/v1/Systems/ID or fake://',
    )
    .option(
      '--bmc-password <password>',
      'BMC password (visible in ps; prefer --bmc-password-stdin or KILN_BMC_PASSWORD)',
    )
    .option('--bmc-password-stdin', 'read the BMC password from standard input')
    .option('--mac <mac...>', "MAC addresses of the node's NICs")
    .option('--property <key=value...>', 'node properties (cpu_arch, memory_mb, root_device, …)')
    .action(async (o) => {
      const { client, json } = ctx();
      const n = await client.call<NodeView>('POST', '/v1/nodes', {
        name: o.name,
        bmc_address: o.bmcAddress,
        bmc_password: readPassword(o),
        ports: o.mac,
        properties: o.property ? properties(o.property) : undefined,
      });
      print(n, json, () => keyValues(humanNode(n as unknown as Record<string, unknown>)));
    });

  node
    .command('update <node>')
    .description("change a node's name, BMC or properties")
    .option('--name <name>')
    .option('--bmc-address <url>')
    .option('--bmc-password <password>')
    .option('--bmc-password-stdin')
    .option('--property <key=value...>')
    .action(async (ident, o) => {
      const { client, json } = ctx();
      const n = await client.call<NodeView>('PATCH', `/v1/nodes/${enc(ident)}`, {
        name: o.name,
        bmc_address: o.bmcAddress,
        bmc_password: readPassword(o),
        properties: o.property ? properties(o.property) : undefined,
      });
      print(n, json, () => keyValues(humanNode(n as unknown as Record<string, unknown>)));
    });

  node
    .command('delete <node>')
    .description('remove a node from Kiln (enroll, manageable, available or failed states only)')
    .action(async (ident) => {
      const { client, json } = ctx();
      await client.call('DELETE', `/v1/nodes/${enc(ident)}`);
      print({ deleted: ident }, json, () => `deleted ${ident}`);
    });

  const provision = (verb: string, description: string, extra?: (c: Command) => Command) => {
    let c = node.command(`${verb} <node>`).description(description).option(WAIT_FLAG, WAIT_HELP);
    if (extra) c = extra(c);
    c.action(async (ident, o) => {
      const { client, json } = ctx();
      const timeoutS = parseTimeout(o.wait);
      const body: Record<string, unknown> = { target: verb };
      if (o.image) body.image = o.image;
      if (o.hostname) body.hostname = o.hostname;
      // The newest event before the action: following from it, none of the action's is missed.
      const since = o.wait ? await latestEventId(client, ident) : undefined;
      const n = await client.call<NodeView>('PUT', `/v1/nodes/${enc(ident)}/states/provision`, body);
      if (!o.wait) {
        print(n, json, () => `${n.name ?? n.uuid}: ${progressLine(n)}`);
        return;
      }
      const { node: final, target } = await watchNode(client, n.uuid, {
        quiet: json,
        target: n.target_provision_state,
        sinceEventId: since,
        timeoutS,
      });
      reportRest(final, target, json);
    });
  };
  provision('manage', 'verify the BMC and make the node manageable');
  provision('inspect', 'boot the ramdisk and collect the hardware inventory');
  provision('provide', 'clean the node and make it available for deployment');
  provision('clean', 'run manual cleaning and return to manageable');
  provision('deploy', 'write an image to the node and boot it', (c) =>
    c
      .requiredOption('--image <image>', 'image name or UUID')
      .option('--hostname <name>', 'hostname for the config drive'),
  );
  provision('rebuild', 'redeploy an active node', (c) =>
    c.option('--image <image>').option('--hostname <name>'),
  );
  provision('undeploy', 'tear down the instance and clean the node');
  provision('abort', 'stop waiting for the ramdisk (inspect wait, clean wait, wait call-back)');

  node
    .command('power <node> <action>')
    .description('power on | off | soft-off | reboot | soft-reboot | status')
    .option(WAIT_FLAG, 'after the BMC took the order, wait until the node reports the new power state')
    .action(async (ident, action, o) => {
      const { client, json } = ctx();
      const timeoutS = parseTimeout(o.wait);
      const targets: Record<string, string> = {
        on: 'power on',
        off: 'power off',
        'soft-off': 'soft power off',
        reboot: 'rebooting',
        'soft-reboot': 'soft rebooting',
      };
      if (action === 'status') {
        const s = await client.call<{ power_state: string }>('GET', `/v1/nodes/${enc(ident)}/states/power`);
        print(s, json, () => s.power_state ?? 'unknown');
        return;
      }
      const target = targets[action];
      if (!target)
        throw new CliError(
          `unknown power action "${action}"; use one of on, off, soft-off, reboot, soft-reboot, status`,
          EXIT.usage,
        );
      let n = await client.call<NodeView>('PUT', `/v1/nodes/${enc(ident)}/states/power`, { target });
      if (o.wait)
        n = await waitForPower(
          client,
          n,
          action === 'off' || action === 'soft-off' ? 'power off' : 'power on',
          timeoutS,
        );
      print(n, json, () => `${n.name ?? n.uuid}: ${n.power_state}`);
    });

  node
    .command('maintenance <node> <on|off>')
    .description('set or clear maintenance (no provision actions while set)')
    .option('--reason <text>')
    .action(async (ident, mode, o) => {
      const { client, json } = ctx();
      if (mode !== 'on' && mode !== 'off') throw new CliError('maintenance takes "on" or "off"', EXIT.usage);
      const n = await client.call<NodeView>(
        mode === 'on' ? 'PUT' : 'DELETE',
        `/v1/nodes/${enc(ident)}/maintenance`,
        mode === 'on' ? { reason: o.reason } : undefined,
      );
      print(n, json, () => `${n.name ?? n.uuid}: maintenance ${n.maintenance ? 'on' : 'off'}`);
    });

  node
    .command('approve-bmc <node>')
    .description(
      "apply the conductor's enrollment BMC credentials to a discovered node's BMC (the address its inventory reported, or --address)",
    )
    .option('--address <host>', 'the BMC address to use instead of the reported one')
    .action(async (ident, o) => {
      const { client, json } = ctx();
      const n = await client.call<NodeView>(
        'POST',
        `/v1/nodes/${enc(ident)}/bmc/approve`,
        o.address ? { address: o.address } : {},
      );
      print(n, json, () => `${n.name ?? n.uuid}: BMC ${n.bmc_address} approved; ${n.provision_state}`);
    });

  addOutputOptions(
    node
      .command('events <node>')
      .description("the node's history: actions, transitions, power changes, errors")
      .option('--limit <n>', 'how many, newest first', '50'),
    'list',
  ).action(async (ident, o) => {
    const { client, json } = ctx();
    const r = await client.call<{ events: EventView[] }>(
      'GET',
      `/v1/nodes/${enc(ident)}/events?limit=${positiveInt(o.limit, '--limit')}`,
    );
    process.stdout.write(
      `${renderList(r.events as unknown as Record<string, unknown>[], EVENT_LIST, outputOpts(o, json))}\n`,
    );
  });

  node
    .command('watch <node>')
    .description("follow a node's state and live progress until it rests (over the event stream)")
    .option('--timeout <duration>', 'give up after this long (90, 90s, 5m, 1h)')
    .action(async (ident, o) => {
      const { client, json } = ctx();
      const { node: n, target } = await watchNode(client, ident, {
        timeoutS: parseTimeout(o.timeout, '--timeout'),
      });
      reportRest(n, target, json);
    });

  node
    .command('import <file>')
    .description(
      'bulk-enroll from a hardware_info file (BMC-IP MAC USER PASSWORD per line) or a YAML/JSON list',
    )
    .action(async (file) => {
      const { client, json } = ctx();
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new CliError(`cannot read ${file}: ${(e as Error).message}`, EXIT.usage);
      }
      const parsed = parseImportFile(text, file);
      const results: { line: number; uuid?: string; error?: string }[] = parsed.problems.map((p) => ({
        line: p.line,
        error: p.message,
      }));
      for (const e of parsed.entries) {
        try {
          const n = await client.call<NodeView>('POST', '/v1/nodes', e.node);
          results.push({ line: e.line, uuid: n.uuid });
        } catch (err) {
          if (err instanceof CliError && err.exitCode === EXIT.unreachable) throw err;
          results.push({ line: e.line, error: (err as Error).message });
        }
      }
      results.sort((a, b) => a.line - b.line);
      const failed = results.filter((r) => r.error);
      const summary = {
        format: parsed.format,
        imported: results.length - failed.length,
        failed: failed.length,
        results,
      };
      print(summary, json, () =>
        [
          ...results.map((r) =>
            r.error ? `${file}:${r.line}: error: ${r.error}` : `${file}:${r.line}: enrolled ${r.uuid}`,
          ),
          `${summary.imported} imported, ${summary.failed} failed`,
        ].join('\n'),
      );
      if (failed.length) process.exitCode = EXIT.error;
    });

  const port = program.command('port').description('NICs (MAC addresses) of nodes');
  addOutputOptions(port.command('list').option('--node <node>', "only this node's ports"), 'list').action(
    async (o) => {
      const { client, json } = ctx();
      const r = await client.call<{ ports: Record<string, unknown>[] }>(
        'GET',
        `/v1/ports${o.node ? `?node=${enc(o.node)}` : ''}`,
      );
      process.stdout.write(`${renderList(r.ports, PORT_LIST, outputOpts(o, json))}\n`);
    },
  );
  port.command('add <node> <mac>').action(async (ident, mac) => {
    const { client, json } = ctx();
    const p = await client.call<Record<string, unknown>>('POST', '/v1/ports', { node: ident, address: mac });
    print(p, json, () => keyValues(p));
  });
  port
    .command('delete <port>')
    .description('delete by UUID or MAC')
    .action(async (ident) => {
      const { client, json } = ctx();
      await client.call('DELETE', `/v1/ports/${enc(ident)}`);
      print({ deleted: ident }, json, () => `deleted ${ident}`);
    });
}
