// The ramdisk protocol end to end, with real processes on loopback: the bundled agent
// (dist/agent.mjs) against a conductor process serving the real lookup/heartbeat router on
// SQLite, and the conductor's real agent client driving the agent's command API.
import assert from 'node:assert/strict';
import { randomUUID, X509Certificate } from 'node:crypto';
import { copyFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { AgentClient, isAgentBusy } from '../../conductor/ramdisk/client.ts';
import { silentLogger } from '../../shared/log.ts';
import {
  type AgentProc,
  buildAgent,
  type ConductorProc,
  loopbackAgentArgs,
  Procs,
  startAgent,
  startConductor,
  stop,
  testMac,
  waitFor,
} from './helpers.ts';

const procs = new Procs();
const client = new AgentClient({ log: silentLogger(), retryDelayMs: 100, pollIntervalMs: 100 });
let bundle: string;

before(async () => {
  // Each test file bundles into its own folder: files run in parallel and must not race on dist/.
  bundle = await buildAgent(join(procs.tempDir('kiln-agent-bundle-'), 'agent.mjs'));
});
after(async () => {
  await client.close();
  await procs.cleanup();
});

let macCounter = 1;

async function bootedNode(
  c: ConductorProc,
  opts: { state?: string; extra?: string[]; uuid?: string; mac?: string } = {},
): Promise<{
  uuid: string;
  mac: string;
  agent: AgentProc;
  target: () => Promise<Parameters<AgentClient['listCommands']>[0]>;
}> {
  const uuid = opts.uuid ?? randomUUID();
  const mac = opts.mac ?? testMac(macCounter++);
  if (!opts.uuid) await c.createNode({ uuid, provision_state: opts.state ?? 'clean wait', macs: [mac] });
  const agent = startAgent(procs, {
    bundle,
    args: [...loopbackAgentArgs(c.url, mac), '--test-commands', ...(opts.extra ?? [])],
    // Plain HTTP here, so raw fetches can poke the API; auto-TLS has its own tests in
    // test/security/agent-tls.test.ts.
    env: { KILN_AGENT_AUTO_TLS: '0' },
  });
  const target = async () => ({ uuid, driver_internal_info: (await c.node(uuid)).driver_internal_info });
  return { uuid, mac, agent, target };
}

async function agentUrl(c: ConductorProc, uuid: string): Promise<string> {
  return waitFor(
    'agent_url recorded',
    async () => (await c.node(uuid)).driver_internal_info.agent_url as string | undefined,
  );
}

describe('agent ⇄ conductor protocol (real processes)', { timeout: 120_000 }, () => {
  test('lookup, heartbeats, commands and results', async () => {
    const dir = procs.tempDir();
    const c = await startConductor(procs, { db: join(dir, 'kiln.db'), heartbeatTimeoutS: 60 });
    const { uuid, mac, agent, target } = await bootedNode(c);
    const url = await agentUrl(c, uuid);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);

    // The order and headers IPA uses: GET /, lookup at 1.62 with every MAC, heartbeat at 1.68.
    const { seen } = await c.seen();
    assert.deepEqual(
      seen.slice(0, 3).map((s) => `${s.method} ${s.path} ${s.version ?? '-'} ${s.status}`),
      ['GET / - 200', 'GET /v1/lookup 1.62 200', `POST /v1/heartbeat/${uuid} 1.68 202`],
    );
    const hb = seen[2]!.body as Record<string, unknown>;
    const token = (await c.node(uuid)).driver_internal_info.agent_secret_token as string;
    assert.equal(token.length, 43);
    assert.deepEqual(Object.keys(hb).sort(), ['agent_token', 'agent_version', 'callback_url']);
    assert.equal(hb.agent_token, token);
    assert.equal(hb.callback_url, url);
    assert.ok(mac);

    const node = await target();
    const steps = await client.getCleanSteps(node, { uuid }, []);
    const byName = Object.fromEntries(steps.steps.map((s) => [s.step, s]));
    assert.equal(byName.erase_devices?.priority, 10);
    assert.equal(byName.erase_devices_metadata?.priority, 99);
    // No RAID handler in the agent, so no RAID step is offered (it would fail when run).
    assert.equal(byName.delete_configuration, undefined);
    assert.deepEqual(steps.hardware_manager_version, { generic_hardware_manager: '1.1' });

    await client.sync(node);

    // An async command: RUNNING at once, 409 for a second one, then SUCCEEDED and a forced beat.
    const beatsBefore = (await c.seen()).seen.filter((s) => s.path.startsWith('/v1/heartbeat')).length;
    const rec = await client.command(node, 'kiln_test.wait', { seconds: 1.5 });
    assert.equal(rec.command_status, 'RUNNING');
    assert.equal(rec.command_name, 'wait');
    await assert.rejects(client.command(node, 'standby.sync', {}, { wait: true }), (e) => {
      assert.ok(isAgentBusy(e), String(e));
      assert.match((e as Error).message, /executing command wait/);
      return true;
    });
    const done = (await (await fetch(`${url}/v1/commands/${rec.id}?wait=true`)).json()) as Record<
      string,
      unknown
    >;
    assert.equal(done.command_status, 'SUCCEEDED');
    assert.deepEqual(done.command_result, { result: 'wait: waited 1.5 s' });
    // heartbeat_timeout is 60 s here, so only the forced beat can arrive this soon.
    await waitFor(
      'forced heartbeat after the async command',
      async () =>
        (await c.seen()).seen.filter((s) => s.path.startsWith('/v1/heartbeat')).length > beatsBefore,
      8_000,
    );

    const failed = await client.command(node, 'kiln_test.wait', { seconds: 0.1, fail: 'disk on fire' });
    const f = await client.waitForCommand(node, 'kiln_test.wait');
    assert.equal(f.id, failed.id);
    assert.equal(f.command_status, 'FAILED');
    assert.deepEqual(f.command_error, {
      type: 'CommandExecutionError',
      code: 500,
      message: 'Command execution failed',
      details: 'disk on fire',
    });

    const unknownStep = await client.executeCleanStep(
      node,
      { step: 'no_such_step', interface: 'deploy' },
      { uuid },
      [],
    );
    const us = await client.waitForCommand(node, 'execute_clean_step');
    assert.equal(us.id, unknownStep.id);
    assert.equal(us.command_status, 'FAILED');
    assert.match(JSON.stringify(us.command_error), /no_such_step is not implemented/);

    await client.executeCleanStep(node, { step: 'erase_devices', interface: 'deploy' }, { uuid }, [], {
      generic_hardware_manager: '0.9',
    });
    const mismatch = await client.waitForCommand(node, 'execute_clean_step');
    assert.equal(mismatch.command_status, 'CLEAN_VERSION_MISMATCH');

    const inv = await client.getHardwareInfo(node);
    assert.ok(inv.cpu.count >= 1);
    assert.ok(inv.memory.total > 0);
    assert.ok(Array.isArray(inv.kiln_collector_failures));

    const logs = gunzipSync(Buffer.from(await client.collectLogs(node), 'base64')).toString('latin1');
    assert.match(logs, /kiln-agent\.log/);
    assert.match(logs, /lookup succeeded/);

    const all = await client.listCommands(node);
    assert.deepEqual(
      all.map((x) => x.command_name),
      [
        'get_clean_steps',
        'sync',
        'wait',
        'wait',
        'execute_clean_step',
        'execute_clean_step',
        'get_hardware_info',
        'collect_system_logs',
      ],
    );
    assert.equal(agent.proc.exitCode, null);
  });

  test('agent API faults: token, body, unknown extension and command', async () => {
    const dir = procs.tempDir();
    const c = await startConductor(procs, { db: join(dir, 'kiln.db') });
    // The ramdisk's init keeps the agent's output in a file across restarts.
    writeFileSync(join(dir, 'kiln-agent.log'), '{"msg":"previous agent: out of memory"}\n');
    const { uuid, target } = await bootedNode(c, { extra: ['--log-file', join(dir, 'kiln-agent.log')] });
    const url = await agentUrl(c, uuid);
    const token = (await c.node(uuid)).driver_internal_info.agent_secret_token as string;
    const post = async (query: string, body: unknown) => {
      const r = await fetch(`${url}/v1/commands/${query}`, {
        method: 'POST',
        body: typeof body === 'string' ? body : JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    const ok = { name: 'standby.sync', params: {} };
    assert.deepEqual(await post('?wait=true&agent_token=wrong', ok), {
      status: 401,
      body: { faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' },
    });
    assert.equal((await post('?wait=true', ok)).status, 401, 'the lookup said tokens are required');
    assert.deepEqual(await post(`?wait=true&agent_token=${token}`, { name: 'standby.sync' }), {
      status: 400,
      body: { faultcode: 'Client', faultstring: '400 Bad Request: Missing or invalid name or params' },
    });
    assert.deepEqual(await post(`?agent_token=${token}`, { name: 'nope.sync', params: {} }), {
      status: 404,
      body: { faultcode: 'Client', faultstring: 'Not found: Extension with id nope not found.' },
    });
    assert.deepEqual(await post(`?agent_token=${token}`, { name: 'standby.nope', params: {} }), {
      status: 400,
      body: { faultcode: 'Client', faultstring: 'Invalid command: Unknown command: nope' },
    });
    const good = await post(`?wait=true&agent_token=${token}`, ok);
    assert.equal(good.status, 200);
    assert.equal(good.body.command_status, 'SUCCEEDED');
    // Routes answer with and without the /v1 prefix and trailing slash.
    for (const p of ['/v1/commands', '/v1/commands/', '/commands/', '/v1/status', '/status']) {
      assert.equal((await fetch(`${url}${p}`)).status, 200, p);
    }
    const missing = await fetch(`${url}/v1/commands/no-such-id`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), {
      faultcode: 'Client',
      faultstring: 'Not found: Command with id no-such-id not found.',
    });
    const root = (await (await fetch(`${url}/`)).json()) as { default_version: { id: string } };
    assert.equal(root.default_version.id, 'v1');
    const status = (await (await fetch(`${url}/v1/status`)).json()) as {
      started_at: number;
      version: string;
    };
    assert.ok(status.started_at > 1e9 && status.started_at < Date.now() / 1000 + 1);
    const logs = gunzipSync(Buffer.from(await client.collectLogs(await target()), 'base64')).toString(
      'latin1',
    );
    assert.match(logs, /previous agent: out of memory/);
  });

  test('standby.power_off syncs, answers, then runs the power action', async () => {
    const dir = procs.tempDir();
    const c = await startConductor(procs, { db: join(dir, 'kiln.db'), heartbeatTimeoutS: 60 });
    // --power-action exit stands in for poweroff: the process ends instead of the machine.
    const { uuid, agent, target } = await bootedNode(c, { extra: ['--power-action', 'exit'] });
    await agentUrl(c, uuid);
    await client.powerOff(await target());
    assert.equal(await agent.exited, 0);
    assert.ok(agent.lines.some((l) => /disks synced; powering off/.test(String(l.msg))));
  });

  test('inspection call-back first, then lookup by the UUID it returned', async () => {
    const dir = procs.tempDir();
    const c = await startConductor(procs, { db: join(dir, 'kiln.db'), heartbeatTimeoutS: 60 });
    const mac = testMac(700);
    const a = startAgent(procs, {
      bundle,
      args: [
        '--api-url',
        c.url,
        '--inspection-callback-url',
        `${c.url}/v1/continue`,
        '--mac',
        mac,
        '--bootif',
        `01-${mac.replace(/:/g, '-')}`,
      ],
      env: {
        KILN_AGENT_LISTEN_HOST: '127.0.0.1',
        KILN_AGENT_LISTEN_PORT: '0',
        KILN_AGENT_ADVERTISE_HOST: '127.0.0.1',
      },
    });
    await a.waitForLog(/heartbeating/);
    const { seen } = await c.seen();
    const post = seen.find((s) => s.path === '/v1/continue')!;
    const body = post.body as Record<string, unknown> & {
      inventory: { interfaces: { mac_address: string }[] };
    };
    assert.deepEqual(
      body.inventory.interfaces.map((i) => i.mac_address),
      [mac],
    );
    assert.equal(body.boot_interface, `01-${mac.replace(/:/g, '-')}`);
    assert.deepEqual((body.configuration as { managers: unknown }).managers, [
      { name: 'generic_hardware_manager', version: '1.1' },
    ]);
    assert.equal(typeof body.logs, 'string');
    assert.ok('root_disk' in body);
    const lookup = seen.find((s) => s.path === '/v1/lookup')!;
    const uuid = new URLSearchParams(lookup.query).get('node_uuid');
    assert.match(uuid ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(lookup.status, 200);
    assert.ok((await c.node(uuid!)).driver_internal_info.agent_url);
  });

  test('live progress goes only to a conductor that advertises it', async () => {
    const dir = procs.tempDir();
    for (const stock of [false, true]) {
      const c = await startConductor(procs, {
        db: join(dir, `kiln-${stock}.db`),
        heartbeatTimeoutS: 1,
        stock,
      });
      const { uuid, target } = await bootedNode(c);
      await agentUrl(c, uuid);
      const node = await target();
      const rec = await client.command(node, 'kiln_test.wait', { seconds: 2 });
      const during = await waitFor('progress in the running record', async () => {
        const r = (await client.listCommands(node)).at(-1)!;
        return r.command_status === 'RUNNING' && (stock || r.kiln_progress) ? r : undefined;
      });
      await client.waitForCommand(node, 'kiln_test.wait');
      const beats = (await c.seen()).seen.filter((s) => s.path.startsWith('/v1/heartbeat'));
      const withProgress = beats.filter((b) => (b.body as Record<string, unknown>).kiln_progress);
      if (stock) {
        assert.equal('kiln_progress' in during, false, 'a stock conductor never sees the Kiln field');
        assert.equal(withProgress.length, 0);
        assert.ok(beats.every((b) => b.status === 202));
      } else {
        assert.equal(during.kiln_progress?.phase, 'waiting');
        assert.equal(during.kiln_progress?.command_id, rec.id);
        assert.ok(withProgress.length >= 1, 'heartbeats while running carry progress');
        const dii = (await c.node(uuid)).driver_internal_info;
        assert.ok('agent_progress' in dii);
      }
      await stop(c.proc);
    }
  });

  test('an agent restarted mid-command gets "******", is refused, and the cleaning node fails', async () => {
    const dir = procs.tempDir();
    const c = await startConductor(procs, { db: join(dir, 'kiln.db'), heartbeatTimeoutS: 1 });
    const first = await bootedNode(c);
    const url = await agentUrl(c, first.uuid);
    const port = new URL(url).port;
    const node = await first.target();
    await client.command(node, 'kiln_test.wait', { seconds: 30 });
    await stop(first.agent.proc, 'SIGKILL');

    // Same MAC, same callback URL: the lookup answers, but the token was handed out already.
    const second = startAgent(procs, {
      bundle,
      args: ['--api-url', c.url, '--mac', first.mac, '--listen-host', '127.0.0.1', '--listen-port', port],
      env: {
        KILN_AGENT_ADVERTISE_HOST: '127.0.0.1',
        KILN_AGENT_POWER_ACTION: 'none',
        KILN_AGENT_AUTO_TLS: '0',
      },
    });
    await second.waitForLog(/already been retrieved/);
    const refused = await second.waitForLog(/heartbeat refused/);
    assert.equal(refused.status, 400);
    assert.equal(refused.error, 'Agent token is required for heartbeat processing.');
    // The conductor still holds the old token; the new agent refuses it and lost the old command.
    await assert.rejects(
      client.listCommands(node).then(() => client.command(node, 'standby.sync', {}, { wait: true })),
      /HTTP 401/,
    );
    assert.deepEqual(await client.listCommands(node), []);
    assert.equal(second.proc.exitCode, null, 'it keeps running and heartbeating, like IPA');

    // One token per boot: a second lookup is a security event, and a node in the middle of
    // cleaning fails instead of carrying on with whichever agent answers. (That a power cycle's
    // wipe lets the next ramdisk get a fresh token is in conductor/ramdisk/ramdisk-api.test.ts.)
    const failed = await waitFor('the node to fail cleaning', async () => {
      const n = await c.node(first.uuid);
      return n.provision_state === 'clean failed' ? n : undefined;
    });
    assert.match(
      String((failed as { last_error?: unknown }).last_error),
      /^security: a second ramdisk lookup/,
    );
    assert.equal(failed.driver_internal_info.agent_secret_token, undefined, 'the agent is forgotten');
  });

  test('the agent keeps heartbeating through a conductor restart', async () => {
    const dir = procs.tempDir();
    const db = join(dir, 'kiln.db');
    const c1 = await startConductor(procs, { db, heartbeatTimeoutS: 1 });
    const { uuid, agent } = await bootedNode(c1);
    await agentUrl(c1, uuid);
    await stop(c1.proc, 'SIGKILL');
    await agent.waitForLog(/heartbeat failed/);
    const restartedAt = Date.now();
    const c2 = await startConductor(procs, { db, heartbeatTimeoutS: 1, port: c1.port });
    const beat = await waitFor(
      'a heartbeat accepted by the restarted conductor',
      async () => (await c2.seen()).seen.find((s) => s.path === `/v1/heartbeat/${uuid}` && s.status === 202),
      20_000,
    );
    assert.ok(beat);
    assert.equal(agent.proc.exitCode, null);
    // The recorded beat is one the restarted conductor took, not the last one before the kill.
    const last = Date.parse(String((await c2.node(uuid)).driver_internal_info.agent_last_heartbeat));
    assert.ok(
      last >= restartedAt,
      `last heartbeat ${new Date(last).toISOString()} is from after the restart`,
    );
  });

  test('ten agents at once', async () => {
    const dir = procs.tempDir();
    const c = await startConductor(procs, { db: join(dir, 'kiln.db'), heartbeatTimeoutS: 2 });
    const nodes = await Promise.all(Array.from({ length: 10 }, () => bootedNode(c)));
    const urls = await Promise.all(nodes.map((n) => agentUrl(c, n.uuid)));
    assert.equal(new Set(urls).size, 10, 'each agent has its own callback URL');
    const results = await Promise.all(
      nodes.map(async (n) => client.command(await n.target(), 'standby.sync', {}, { wait: true })),
    );
    assert.ok(results.every((r) => r.command_status === 'SUCCEEDED'));
    const tokens = await Promise.all(
      nodes.map(async (n) => (await c.node(n.uuid)).driver_internal_info.agent_secret_token),
    );
    assert.equal(new Set(tokens).size, 10);
  });

  test('dist/agent.mjs runs alone from an empty folder; a failed lookup exits non-zero', async () => {
    const dir = procs.tempDir();
    const lone = join(procs.tempDir('kiln-agent-lone-'), 'agent.mjs');
    copyFileSync(bundle, lone);
    assert.deepEqual(readdirSync(join(lone, '..')), ['agent.mjs']);
    const v = startAgent(procs, { bundle: lone, cwd: join(lone, '..'), args: ['--version'] });
    assert.equal(await v.exited, 0);
    assert.match(String(v.lines[0]?.msg), /^\d+\.\d+\.\d+$/);

    const c = await startConductor(procs, { db: join(dir, 'kiln.db') });
    const uuid = randomUUID();
    const mac = testMac(900);
    await c.createNode({ uuid, provision_state: 'deploying', macs: [mac] });
    // No --advertise-host: the callback address comes from `ip route get <api host>`, and the
    // auto-TLS certificate (on by default) is made for it.
    const a = startAgent(procs, {
      bundle: lone,
      cwd: join(lone, '..'),
      args: ['--api-url', c.url, '--mac', mac, '--listen-host', '127.0.0.1', '--listen-port', '0'],
    });
    assert.match(await agentUrl(c, uuid), /^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = (await c.node(uuid)).driver_internal_info.agent_verify_ca as string;
    assert.equal(new X509Certificate(ca).checkIP('127.0.0.1'), '127.0.0.1');
    await stop(a.proc);

    // A node the conductor doesn't know: lookup gives up after ipa-lookup-timeout and exits 1.
    // (That the loop keeps to its budget is timed exactly in agent/lookup.test.ts; here the flag
    // must reach it.)
    const lost = startAgent(procs, {
      bundle: lone,
      cwd: join(lone, '..'),
      args: ['--api-url', c.url, '--mac', testMac(901), '--lookup-timeout', '2', '--lookup-interval', '0.2'],
    });
    assert.equal(await lost.exited, 1);
    const timedOut = lost.lines.find((l) => /lookup timed out/.test(String(l.msg)));
    assert.ok(timedOut, JSON.stringify(lost.lines));
    assert.match(String(timedOut.err), /^lookup did not succeed within 2 s /);
  });
});
