// `kiln node …`: enroll, inspect, provide, deploy, undeploy, power, watch.
import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { BUSY_STATES, type ProvisionState, WAIT_STATES } from '../../shared/states.ts';
import type { EventView, NodeView } from '../../shared/wire/api.ts';
import { type ApiClient, CliError, EXIT } from '../client.ts';
import { parseImportFile } from '../import-file.ts';
import { keyValues, print, table } from '../output.ts';

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

export function formatNode(n: NodeView): string {
  const { inventory, progress, properties: props, extra, instance_info, ...rest } = n;
  const lines = [keyValues({ ...rest, properties: props, extra, instance_info })];
  if (progress) lines.push('', 'progress:', keyValues(progress));
  if (inventory) {
    lines.push('', 'inventory:', keyValues(inventory as Record<string, unknown>));
  }
  return lines.join('\n');
}

function progressLine(n: NodeView): string {
  const p = n.progress as {
    phase?: string;
    bytes_done?: number;
    bytes_total?: number;
    rate_bps?: number;
    eta_s?: number;
  } | null;
  let s = `${n.provision_state}${n.target_provision_state ? ` → ${n.target_provision_state}` : ''}`;
  if (p?.phase) {
    s += `  ${p.phase}`;
    if (p.bytes_done !== undefined) {
      const mb = (b: number) => (b / 1048576).toFixed(1);
      s += ` ${mb(p.bytes_done)}${p.bytes_total ? `/${mb(p.bytes_total)}` : ''} MiB`;
      if (p.bytes_total) s += ` (${((100 * p.bytes_done) / p.bytes_total).toFixed(0)}%)`;
      if (p.rate_bps) s += ` ${mb(p.rate_bps)} MiB/s`;
      if (p.eta_s !== undefined && p.eta_s !== null) s += ` ETA ${Math.round(p.eta_s)}s`;
    }
  }
  return s;
}

/**
 * Poll until the node rests (not busy, not waiting); print changes. Resolves with the final node
 * and the state it was headed for: `target` if given (the action's answer knows it even when the
 * work is over before the first poll), else the first target_provision_state seen.
 */
export async function watchNode(
  client: ApiClient,
  ident: string,
  opts: { quiet?: boolean; intervalMs?: number; timeoutS?: number; target?: string | null } = {},
): Promise<{ node: NodeView; target: string | null }> {
  let last = '';
  let target = opts.target ?? null;
  const end = opts.timeoutS ? Date.now() + opts.timeoutS * 1000 : Number.POSITIVE_INFINITY;
  for (;;) {
    const n = await client.call<NodeView>('GET', `/v1/nodes/${enc(ident)}`);
    target ??= n.target_provision_state;
    const line = progressLine(n);
    if (line !== last && !opts.quiet)
      process.stderr.write(`${new Date().toISOString().slice(11, 19)}  ${n.name ?? n.uuid}  ${line}\n`);
    last = line;
    const state = n.provision_state as ProvisionState;
    if (!BUSY_STATES.includes(state) && !WAIT_STATES.includes(state)) return { node: n, target };
    if (Date.now() > end)
      throw new CliError(`node ${ident} still ${state} after ${opts.timeoutS}s`, EXIT.error);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  }
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

export function registerNodeCommands(program: Command, ctx: Ctx): void {
  const node = program.command('node').description('enroll and drive bare-metal nodes');

  node
    .command('list')
    .description('list nodes')
    .option('--state <state>', 'only nodes in this provision state')
    .option('--maintenance', 'only nodes in maintenance')
    .option('--limit <n>', 'list at most this many nodes (default: all, fetched page by page)')
    // Listing every node is the default now; --all stays accepted for scripts that pass it.
    .addOption(new Option('--all').hideHelp())
    .action(async (o) => {
      const { client, json } = ctx();
      const filter = new URLSearchParams();
      if (o.state) filter.set('provision_state', o.state);
      if (o.maintenance) filter.set('maintenance', 'true');
      const rows = await listNodes(client, filter, o.limit ? positiveInt(o.limit, '--limit') : undefined);
      print({ nodes: rows }, json, () =>
        table(rows, [
          'uuid',
          'name',
          'driver',
          'provision_state',
          'power_state',
          'maintenance',
          'last_error',
        ]),
      );
    });

  node
    .command('show <node>')
    .description('show a node: states, BMC, properties, inventory and live progress')
    .action(async (ident) => {
      const { client, json } = ctx();
      const n = await client.call<NodeView>('GET', `/v1/nodes/${enc(ident)}`);
      print(n, json, () => formatNode(n));
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
      print(n, json, () => formatNode(n));
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
      print(n, json, () => formatNode(n));
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
    let c = node
      .command(`${verb} <node>`)
      .description(description)
      .option('--wait', 'follow progress until the node rests');
    if (extra) c = extra(c);
    c.action(async (ident, o) => {
      const { client, json } = ctx();
      const body: Record<string, unknown> = { target: verb };
      if (o.image) body.image = o.image;
      if (o.hostname) body.hostname = o.hostname;
      const n = await client.call<NodeView>('PUT', `/v1/nodes/${enc(ident)}/states/provision`, body);
      if (!o.wait) {
        print(n, json, () => `${n.name ?? n.uuid}: ${progressLine(n)}`);
        return;
      }
      const { node: final, target } = await watchNode(client, ident, {
        quiet: json,
        target: n.target_provision_state,
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
    .action(async (ident, action) => {
      const { client, json } = ctx();
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
      const n = await client.call<NodeView>('PUT', `/v1/nodes/${enc(ident)}/states/power`, { target });
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

  node
    .command('events <node>')
    .description("the node's history: actions, transitions, power changes, errors")
    .option('--limit <n>', 'how many, newest first', '50')
    .action(async (ident, o) => {
      const { client, json } = ctx();
      const r = await client.call<{ events: EventView[] }>(
        'GET',
        `/v1/nodes/${enc(ident)}/events?limit=${enc(o.limit)}`,
      );
      print(r, json, () =>
        table(r.events as unknown as Record<string, unknown>[], [
          'created_at',
          'event',
          'actor',
          'result',
          'from_state',
          'to_state',
          'message',
        ]),
      );
    });

  node
    .command('watch <node>')
    .description("follow a node's state and live progress until it rests")
    .option('--timeout <s>', 'give up after this many seconds')
    .action(async (ident, o) => {
      const { client, json } = ctx();
      const { node: n, target } = await watchNode(client, ident, {
        timeoutS: o.timeout ? positiveInt(o.timeout, '--timeout') : undefined,
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
  port
    .command('list')
    .option('--node <node>')
    .action(async (o) => {
      const { client, json } = ctx();
      const r = await client.call<{ ports: Record<string, unknown>[] }>(
        'GET',
        `/v1/ports${o.node ? `?node=${enc(o.node)}` : ''}`,
      );
      print(r, json, () => table(r.ports, ['uuid', 'address', 'node_uuid', 'pxe_enabled']));
    });
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
