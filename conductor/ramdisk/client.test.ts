// Client rules at the HTTP seam: a small loopback server stands in for the agent where the real
// one can't be made to misbehave on cue (slow answers, refused connections).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { run } from '../../shared/exec.ts';
import { silentLogger } from '../../shared/log.ts';
import type { CommandRecord } from '../../shared/wire/ipa.ts';
import { selfSignedCertificate } from '../../shared/x509.ts';
import { AgentClient, completedCommand, flattenSteps } from './client.ts';

const rec = (name: string, status: string, result: unknown = null): CommandRecord => ({
  id: `${name}-${status}`,
  command_name: name,
  command_status: status,
  command_error: null,
  command_result: result,
});

test('completedCommand follows Ironic: last command, right step, not RUNNING', () => {
  const step = { step: 'erase_devices', interface: 'deploy' };
  assert.equal(completedCommand([], 'clean', step), undefined);
  assert.equal(completedCommand([rec('get_clean_steps', 'SUCCEEDED')], 'clean', step), undefined);
  assert.equal(completedCommand([rec('execute_clean_step', 'RUNNING')], 'clean', step), undefined);
  const other = rec('execute_clean_step', 'SUCCEEDED', {
    clean_step: { step: 'erase_devices_metadata', interface: 'deploy' },
  });
  assert.equal(completedCommand([other], 'clean', step), undefined, 'previous step, ours not started yet');
  const ours = rec('execute_clean_step', 'SUCCEEDED', { clean_step: step });
  assert.equal(completedCommand([other, ours], 'clean', step), ours);
  const failed = rec('execute_clean_step', 'FAILED');
  assert.equal(completedCommand([failed], 'clean', step), failed);
});

test('flattenSteps merges hardware managers', () => {
  assert.deepEqual(
    flattenSteps(
      { clean_steps: { A: [{ step: 'a', interface: 'deploy' }], B: [{ step: 'b', interface: 'raid' }] } },
      'clean',
    ).map((s) => s.step),
    ['a', 'b'],
  );
  assert.deepEqual(flattenSteps(null, 'deploy'), []);
});

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function stub(
  handler: (method: string, url: string, body: string) => { status: number; body: unknown; delayMs?: number },
) {
  const calls: string[] = [];
  const s = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      calls.push(`${req.method} ${req.url}`);
      const a = handler(req.method!, req.url!, body);
      setTimeout(() => {
        res.writeHead(a.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(a.body));
      }, a.delayMs ?? 0);
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, calls };
}

test('a POST that times out counts as accepted when the agent lists it RUNNING', async () => {
  const a = await stub((m) =>
    m === 'POST'
      ? { status: 200, body: rec('execute_deploy_step', 'RUNNING'), delayMs: 3000 }
      : { status: 200, body: { commands: [rec('execute_deploy_step', 'RUNNING')] } },
  );
  // undici's timers tick once a second, so the timeout is 1 s and the agent 3 s late.
  const c = new AgentClient({ log: silentLogger(), timeoutMs: 1000 });
  const node = { uuid: 'n1', driver_internal_info: { agent_url: a.url, agent_secret_token: 'tok' } };
  const r = await c.executeDeployStep(node, { step: 'write_image', interface: 'deploy' }, {}, []);
  assert.equal(r.command_status, 'RUNNING');
  assert.match(a.calls[0]!, /^POST \/v1\/commands\/\?wait=false&agent_token=tok$/);
  assert.equal(a.calls[1], 'GET /v1/commands/');
  await c.close();
});

test('errors: busy is CONFLICT, other faults AGENT_ERROR naming node and URL, 3 connection attempts', async () => {
  const a = await stub(() => ({
    status: 409,
    body: { faultcode: 'Client', faultstring: 'Agent is busy: executing command wait' },
  }));
  const c = new AgentClient({ log: silentLogger(), retryDelayMs: 10 });
  const node = {
    uuid: 'n1',
    name: 'rack1-u7',
    driver_internal_info: { agent_url: a.url, agent_secret_token: 'tok' },
  };
  await assert.rejects(
    c.sync(node),
    (e: Error & { code?: string }) => e.code === 'CONFLICT' && /busy/.test(e.message),
  );

  const b = await stub(() => ({
    status: 400,
    body: { faultcode: 'Client', faultstring: 'Invalid command: Unknown command: x' },
  }));
  await assert.rejects(
    c.command({ ...node, driver_internal_info: { agent_url: b.url } }, 'standby.x', {}),
    (e: Error & { code?: string }) =>
      e.code === 'AGENT_ERROR' &&
      e.message.includes('rack1-u7') &&
      e.message.includes(b.url) &&
      /HTTP 400/.test(e.message),
  );

  // Nothing listens on port 9 of loopback: refused three times, then AGENT_ERROR.
  const started = Date.now();
  await assert.rejects(
    c.listCommands({ uuid: 'n2', driver_internal_info: { agent_url: 'http://127.0.0.1:9' } }),
    (e: Error & { code?: string }) =>
      e.code === 'AGENT_ERROR' && /cannot reach the agent at http:\/\/127\.0\.0\.1:9/.test(e.message),
  );
  assert.ok(Date.now() - started >= 20, 'retried with a delay');
  await assert.rejects(c.listCommands({ uuid: 'n3', driver_internal_info: {} }), /has no agent URL/);
  await c.close();
});

test('a malformed agent answer is an AGENT_ERROR naming the field; well-formed ones pass', async () => {
  let answer: { post: unknown; list: unknown } = { post: null, list: null };
  const a = await stub((m) => ({ status: 200, body: m === 'POST' ? answer.post : answer.list }));
  const c = new AgentClient({ log: silentLogger() });
  const node = { uuid: 'n1', name: 'rack1-u7', driver_internal_info: { agent_url: a.url } };
  const malformed = (field: RegExp) => (e: Error & { code?: string }) =>
    e.code === 'AGENT_ERROR' &&
    e.message.includes('rack1-u7') &&
    /malformed/.test(e.message) &&
    field.test(e.message);
  const ok = (result: unknown) => ({ ...rec('x', 'SUCCEEDED', result), command_name: 'x' });

  answer = {
    post: { id: 'c1', command_name: 'sync', command_error: null, command_result: null },
    list: null,
  };
  await assert.rejects(c.sync(node), malformed(/command_status/), 'a record with no status');
  answer = { post: null, list: { commands: [{ ...rec('sync', 'SUCCEEDED'), id: 7 }] } };
  await assert.rejects(c.listCommands(node), malformed(/commands\.0\.id/));

  answer = { post: ok({ clean_steps: { GenericHardwareManager: [{ step: 'erase_devices' }] } }), list: null };
  await assert.rejects(
    c.getCleanSteps(node, {}, []),
    malformed(/clean_steps\.GenericHardwareManager\.0\.interface/),
  );
  answer = { post: ok({ deploy_steps: 'none' }), list: null };
  await assert.rejects(c.getDeploySteps(node, {}, []), malformed(/deploy_steps/));
  answer = { post: ok({ 'root uuid': 42 }), list: null };
  await assert.rejects(c.getPartitionUuids(node), malformed(/root uuid/));
  answer = { post: ok({ interfaces: [], cpu: { count: 'four' } }), list: null };
  await assert.rejects(c.getHardwareInfo(node), malformed(/inventory: .*cpu\.count/));

  // What IPA 9.4.3 answers, extra keys and all.
  const step = {
    step: 'erase_devices',
    interface: 'deploy',
    priority: 10,
    reboot_requested: false,
    abortable: true,
    argsinfo: null,
  };
  answer = {
    post: ok({
      clean_steps: { GenericHardwareManager: [step] },
      hardware_manager_version: { generic_hardware_manager: '1.1' },
    }),
    list: null,
  };
  assert.deepEqual(await c.getCleanSteps(node, {}, []), {
    steps: [step],
    hardware_manager_version: { generic_hardware_manager: '1.1' },
  });
  answer = { post: ok({}), list: null };
  assert.deepEqual(await c.getPartitionUuids(node), {});
  answer = { post: ok(null), list: null };
  assert.deepEqual(await c.getPartitionUuids(node), {}, 'None before an image was written');
  await c.close();
});

test('an HTTPS agent is trusted through the certificate it sent with its heartbeat', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-agent-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // What IPA's auto-TLS makes: an EC P-256 key and a self-signed certificate for the callback IP.
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '30',
    '-subj',
    '/CN=ramdisk',
    '-addext',
    'subjectAltName=critical,IP:127.0.0.1',
    '-keyout',
    join(dir, 'agent.key'),
    '-out',
    join(dir, 'agent.crt'),
  ]);
  const cert = readFileSync(join(dir, 'agent.crt'), 'utf8');
  const s = createHttps({ key: readFileSync(join(dir, 'agent.key')), cert }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ commands: [rec('get_clean_steps', 'SUCCEEDED')] }));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => s.close());
  const url = `https://127.0.0.1:${(s.address() as AddressInfo).port}`;
  const c = new AgentClient({ log: silentLogger(), maxAttempts: 1 });
  t.after(() => c.close());
  const cmds = await c.listCommands({
    uuid: 'n1',
    driver_internal_info: { agent_url: url, agent_verify_ca: cert },
  });
  assert.equal(cmds[0]?.command_name, 'get_clean_steps');
  await assert.rejects(
    c.listCommands({ uuid: 'n1', driver_internal_info: { agent_url: url } }),
    (e: Error & { code?: string }) =>
      e.code === 'AGENT_ERROR' && /TLS with the agent .* failed .*no agent_verify_ca/.test(e.message),
  );
});

/** An HTTPS stand-in agent with this certificate; counts the requests that got past the handshake. */
async function tlsAgent(t: { after: (f: () => void) => void }, cert: { certPem: string; keyPem: string }) {
  const seen: string[] = [];
  const s = createHttps({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ commands: [] }));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => s.close());
  return { url: `https://127.0.0.1:${(s.address() as AddressInfo).port}`, seen };
}

const agentCert = (ips: string[]) =>
  selfSignedCertificate({ commonName: 'agent', ips, dnsNames: [], days: 1 });

test('the pin is per node: another certificate at the agent URL (a MITM, another agent) fails the command, nothing sent', async (t) => {
  const mine = agentCert(['127.0.0.1']);
  const impostor = await tlsAgent(t, agentCert(['127.0.0.1']));
  const genuine = await tlsAgent(t, mine);
  const c = new AgentClient({ log: silentLogger(), maxAttempts: 3, retryDelayMs: 10 });
  t.after(() => c.close());
  const node = (url: string) => ({
    uuid: 'n-pin',
    name: 'web-1',
    driver_internal_info: {
      agent_url: url,
      agent_verify_ca: mine.certPem,
      agent_secret_token: 't'.repeat(43),
    },
  });
  assert.deepEqual(await c.listCommands(node(genuine.url)), []);
  await assert.rejects(
    c.command(node(impostor.url), 'standby.sync', {}, { wait: true }),
    (e: Error & { code?: string; details?: { tls?: string } }) => {
      assert.equal(e.code, 'AGENT_ERROR');
      assert.match(
        e.message,
        /agent command standby\.sync on node web-1 \(n-pin\): the agent at https:\/\/127\.0\.0\.1:\d+ did not prove it holds the certificate it sent with its heartbeat/,
      );
      assert.match(e.message, /nothing was sent.*impersonating/);
      assert.ok(e.details?.tls, 'the TLS error code is kept');
      return true;
    },
  );
  assert.deepEqual(impostor.seen, [], 'the impostor never saw the request (or the token)');
  // Another node's pool trusts only its own certificate, even for the same address.
  await assert.rejects(
    c.listCommands({
      uuid: 'n-other',
      driver_internal_info: { agent_url: genuine.url, agent_verify_ca: agentCert(['127.0.0.1']).certPem },
    }),
    /did not prove it holds the certificate/,
  );
  assert.deepEqual(genuine.seen, ['GET /v1/commands/']);
});

test("the pinned certificate must name the agent URL's address", async (t) => {
  const elsewhere = agentCert(['192.0.2.1']);
  const a = await tlsAgent(t, elsewhere);
  const c = new AgentClient({ log: silentLogger(), maxAttempts: 1 });
  t.after(() => c.close());
  await assert.rejects(
    c.listCommands({
      uuid: 'n-ip',
      driver_internal_info: { agent_url: a.url, agent_verify_ca: elsewhere.certPem },
    }),
    (e: Error & { code?: string; details?: { tls?: string } }) =>
      e.code === 'AGENT_ERROR' && e.details?.tls === 'ERR_TLS_CERT_ALTNAME_INVALID',
  );
  assert.deepEqual(a.seen, []);
});

test('a node whose agent sent a certificate is never spoken to over plain HTTP', async (t) => {
  const seen: string[] = [];
  const plain: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.end('{"commands": []}');
  });
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  t.after(() => plain.close());
  const c = new AgentClient({ log: silentLogger(), maxAttempts: 1 });
  t.after(() => c.close());
  const node = {
    uuid: 'n-down',
    name: 'web-2',
    driver_internal_info: {
      agent_url: `http://127.0.0.1:${(plain.address() as AddressInfo).port}`,
      agent_verify_ca: agentCert(['127.0.0.1']).certPem,
      agent_secret_token: 't'.repeat(43),
    },
  };
  for (const call of [
    () => c.listCommands(node),
    () => c.command(node, 'standby.sync', {}, { wait: true }),
  ]) {
    await assert.rejects(call(), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'AGENT_ERROR');
      assert.match(
        e.message,
        /node web-2 \(n-down\): its agent sent a TLS certificate \(agent_verify_ca\) but its agent URL http:\/\/127\.0\.0\.1:\d+ is plain HTTP; refusing/,
      );
      assert.match(e.message, /reboot the node into the ramdisk/);
      return true;
    });
  }
  assert.deepEqual(seen, [], 'no request, so no token, went out in clear');
});
