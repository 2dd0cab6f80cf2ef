// Kiln's agent driven by a stock OpenStack Ironic 2023.1 (Debian's ironic-api and
// ironic-conductor 21.4.4): fake power and boot, the real `direct` deploy interface talking to
// our agent. Manual cleaning with an agent step exercises lookup, token, heartbeats,
// get_clean_steps, execute_clean_step and Ironic's completion matching on the forced heartbeat,
// all over the agent's auto-TLS: Ironic 21.4.4 takes agent_verify_ca (API 1.68), stores the
// certificate the agent sent and verifies the agent's HTTPS API with it.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../../shared/exec.ts';
import { buildAgent, loopbackAgentArgs, Procs, startAgent, waitFor } from './helpers.ts';

const procs = new Procs();
let api = '';
let bundle = '';
let certDir = '';
const groups: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** ironic-api forks workers: run each service as its own process group and end the group. */
function service(cmd: string, conf: string, log: string): ChildProcess {
  const out = openSync(log, 'a');
  const p = spawn(cmd, ['--config-file', conf], { detached: true, stdio: ['ignore', out, out] });
  groups.push(p);
  return p;
}

const H = { 'content-type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.68' };
async function ironic(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${api}${path}`, {
    method,
    headers: H,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 400) throw new Error(`${method} ${path}: HTTP ${r.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}
const nodeState = async (n: string) => ironic('GET', `/v1/nodes/${n}`);
async function waitState(n: string, want: string, timeoutMs = 60_000) {
  return waitFor(
    `node ${n} in ${want}`,
    async () => {
      const node = await nodeState(n);
      if (node.last_error && node.provision_state !== want) throw new Error(String(node.last_error));
      return node.provision_state === want ? node : undefined;
    },
    timeoutMs,
  );
}

before(async () => {
  // Each test file bundles into its own folder: files run in parallel and must not race on dist/.
  bundle = await buildAgent(join(procs.tempDir('kiln-agent-bundle-'), 'agent.mjs'));
  const dir = procs.tempDir('kiln-ironic-');
  const [apiPort, rpcPort] = [await freePort(), await freePort()];
  api = `http://127.0.0.1:${apiPort}`;
  const conf = join(dir, 'ironic.conf');
  certDir = join(dir, 'agent-certificates');
  writeFileSync(
    conf,
    `[DEFAULT]
auth_strategy = noauth
rpc_transport = json-rpc
host = 127.0.0.1
enabled_hardware_types = fake-hardware
enabled_boot_interfaces = fake
enabled_deploy_interfaces = direct,fake
default_deploy_interface = direct
enabled_management_interfaces = fake
enabled_power_interfaces = fake
enabled_inspect_interfaces = no-inspect
enabled_network_interfaces = noop
enabled_raid_interfaces = no-raid,agent
enabled_vendor_interfaces = no-vendor
enabled_bios_interfaces = no-bios
enabled_console_interfaces = no-console
enabled_rescue_interfaces = no-rescue
use_stderr = true
[api]
host_ip = 127.0.0.1
port = ${apiPort}
public_endpoint = ${api}
api_workers = 1
ramdisk_heartbeat_timeout = 10
[database]
connection = sqlite:///${join(dir, 'ironic.sqlite')}
[json_rpc]
auth_strategy = noauth
host_ip = 127.0.0.1
port = ${rpcPort}
[conductor]
automated_clean = true
clean_callback_timeout = 120
[deploy]
erase_devices_priority = 0
erase_devices_metadata_priority = 0
fast_track = false
[dhcp]
dhcp_provider = none
[service_catalog]
endpoint_override = ${api}
[agent]
certificates_path = ${certDir}
[oslo_concurrency]
lock_path = ${join(dir, 'locks')}
`,
  );
  await run('ironic-dbsync', ['--config-file', conf, 'create_schema'], { timeoutMs: 120_000 });
  service('ironic-api', conf, join(dir, 'api.log'));
  service('ironic-conductor', conf, join(dir, 'conductor.log'));
  // The conductor registers itself in the database once it is ready to take nodes.
  await waitFor(
    'ironic-api and a registered conductor',
    async () => {
      const c = await ironic('GET', '/v1/conductors');
      return (c.conductors as unknown[]).length > 0 ? true : undefined;
    },
    90_000,
  );
});

after(async () => {
  for (const p of groups) {
    try {
      process.kill(-p.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  await new Promise((r) => setTimeout(r, 500));
  for (const p of groups) {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await procs.cleanup();
});

function assertReachedOverTls(agent: ReturnType<typeof startAgent>, uuid: string): void {
  const listening = agent.lines.find((l) => l.msg === 'agent API listening');
  assert.equal(listening?.tls, true, 'the agent API served HTTPS only');
  const beat = agent.lines.find((l) => l.msg === 'heartbeating');
  assert.match(String(beat?.callback_url), /^https:\/\/127\.0\.0\.1:\d+$/);
  const made = agent.lines.find((l) => /auto-TLS: made this boot's certificate/.test(String(l.msg)));
  const stored = new X509Certificate(readFileSync(join(certDir, `${uuid}.crt`)));
  assert.equal(
    stored.fingerprint256,
    made?.fingerprint256,
    'Ironic verifies with the certificate this agent sent',
  );
}

describe('stock Ironic 21.4.4 drives the Kiln agent', { timeout: 240_000 }, () => {
  test('manual cleaning with an agent step, then automated cleaning to available', async () => {
    const mac = '02:00:00:00:ab:01';
    const node = await ironic('POST', '/v1/nodes', {
      driver: 'fake-hardware',
      deploy_interface: 'direct',
      name: 'kiln-1',
    });
    await ironic('POST', '/v1/ports', { node_uuid: node.uuid, address: mac });
    await ironic('PUT', '/v1/nodes/kiln-1/states/provision', { target: 'manage' });
    await waitState('kiln-1', 'manageable');
    await ironic('PUT', '/v1/nodes/kiln-1/states/provision', {
      target: 'clean',
      clean_steps: [{ interface: 'deploy', step: 'kiln_test_wait', args: { seconds: 1 } }],
    });
    await waitState('kiln-1', 'clean wait');

    // The "ramdisk boots": fake boot/power interfaces, so we start the agent ourselves.
    const agent = startAgent(procs, {
      bundle,
      args: [...loopbackAgentArgs(api, mac), '--test-commands'],
    });
    const done = await waitState('kiln-1', 'manageable');
    assert.equal(done.last_error, null);
    const discovered = await agent.waitForLog(/discovered conductor API version/);
    assert.equal(discovered.version, '1.82');
    assert.deepEqual(discovered.extensions, [], 'a stock Ironic offers no Kiln extensions');
    const ran = agent.lines.filter((l) => l.msg === 'command started').map((l) => l.command);
    assert.deepEqual(ran, ['clean.get_clean_steps', 'clean.execute_clean_step']);
    assert.ok(!agent.lines.some((l) => l.msg === 'heartbeat refused'), 'every heartbeat was accepted');
    // Ironic reached the agent over HTTPS, trusting the certificate the agent sent: the agent
    // serves nothing else, and Ironic stored that very certificate for the node.
    assertReachedOverTls(agent, String(node.uuid));

    // Automated cleaning (all in-band priorities 0 here): the same agent is asked for its steps
    // again only after a new boot, so start a fresh one, as a real reboot would.
    await ironic('PUT', '/v1/nodes/kiln-1/states/provision', { target: 'provide' });
    await waitState('kiln-1', 'clean wait');
    agent.proc.kill('SIGTERM');
    await agent.exited;
    const second = startAgent(procs, {
      bundle,
      args: [
        '--api-url',
        api,
        '--mac',
        mac,
        '--listen-host',
        '127.0.0.1',
        '--listen-port',
        '0',
        '--advertise-host',
        '127.0.0.1',
      ],
    });
    const available = await waitState('kiln-1', 'available');
    assert.equal(available.last_error, null);
    assert.ok(second.lines.some((l) => l.msg === 'lookup succeeded'));
    assert.ok(second.lines.some((l) => l.command === 'clean.get_clean_steps'));
    assertReachedOverTls(second, String(node.uuid));
  });
});
