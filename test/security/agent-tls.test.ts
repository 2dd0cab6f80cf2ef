// The agent channel's TLS end to end: the real bundled agent against the conductor harness (the
// real lookup/heartbeat router) and the conductor's real AgentClient. The agent makes its own
// certificate at boot and sends it with its heartbeats; the conductor trusts that one alone.
import assert from 'node:assert/strict';
import { randomUUID, X509Certificate } from 'node:crypto';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from 'node:tls';
import { AgentClient, type AgentTarget } from '../../conductor/ramdisk/client.ts';
import { silentLogger } from '../../shared/log.ts';
import { selfSignedCertificate } from '../../shared/x509.ts';
import {
  buildAgent,
  type ConductorProc,
  loopbackAgentArgs,
  Procs,
  startAgent,
  startConductor,
  testMac,
  waitFor,
} from '../agent/helpers.ts';

const procs = new Procs();
const client = new AgentClient({ log: silentLogger(), maxAttempts: 1 });
let bundle: string;
let c: ConductorProc;

before(async () => {
  bundle = await buildAgent(join(procs.tempDir('kiln-agent-bundle-'), 'agent.mjs'));
  c = await startConductor(procs, { db: join(procs.tempDir(), 'kiln.db'), heartbeatTimeoutS: 60 });
});
after(async () => {
  await client.close();
  await procs.cleanup();
});

let macs = 950;
async function boot(extra: string[] = []) {
  const uuid = randomUUID();
  const mac = testMac(macs++);
  await c.createNode({ uuid, provision_state: 'clean wait', macs: [mac] });
  const agent = startAgent(procs, {
    bundle,
    args: [...loopbackAgentArgs(c.url, mac), ...extra],
  });
  await agent.waitForLog(/heartbeating/);
  const target = async (): Promise<AgentTarget> => ({
    uuid,
    name: 'tls-node',
    driver_internal_info: await waitFor('agent_url recorded', async () => {
      const dii = (await c.node(uuid)).driver_internal_info;
      return dii.agent_url ? dii : undefined;
    }),
  });
  return { uuid, agent, target };
}

/** The certificate a TLS server at this port presents (whoever it is). */
function servedCertificate(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const raw = s.getPeerCertificate().raw;
      s.end();
      resolve(new X509Certificate(raw));
    });
    s.on('error', reject);
  });
}

describe('auto-TLS on the agent channel (real agent process)', { timeout: 120_000 }, () => {
  test('the agent serves HTTPS with a per-boot certificate for its callback IP and heartbeats it; the client pins it', async () => {
    const { uuid, target } = await boot();
    const node = await target();
    const url = node.driver_internal_info.agent_url as string;
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const pem = node.driver_internal_info.agent_verify_ca as string;
    const sent = new X509Certificate(pem);
    assert.equal(sent.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(sent.verify(sent.publicKey), true, 'self-signed');
    assert.equal(sent.publicKey.asymmetricKeyType, 'ec');
    const served = await servedCertificate(Number(new URL(url).port));
    assert.equal(
      served.fingerprint256,
      sent.fingerprint256,
      'the API presents the certificate the heartbeat carried',
    );

    const beat = (await c.seen()).seen.find((s) => s.path === `/v1/heartbeat/${uuid}`)!;
    assert.equal((beat.body as Record<string, unknown>).agent_verify_ca, pem);
    assert.equal((beat.body as Record<string, unknown>).callback_url, url);

    const r = await client.command(node, 'standby.sync', {}, { wait: true });
    assert.equal(r.command_status, 'SUCCEEDED');

    // Another boot, another certificate.
    const other = await (await boot()).target();
    assert.notEqual(
      new X509Certificate(other.driver_internal_info.agent_verify_ca as string).fingerprint256,
      sent.fingerprint256,
    );
  });

  test('a machine in between with its own certificate fails the command clearly; nothing reaches it or the agent', async () => {
    const { target } = await boot();
    const node = await target();
    const before = await client.listCommands(node);
    // The impostor has a certificate for the very same IP: only the pin tells them apart.
    const fake = selfSignedCertificate({
      commonName: '127.0.0.1',
      ips: ['127.0.0.1'],
      dnsNames: [],
      days: 1,
    });
    const got: string[] = [];
    const mitm = createHttps({ cert: fake.certPem, key: fake.keyPem }, (req, res) => {
      got.push(`${req.method} ${req.url}`);
      res.end('{"commands": []}');
    });
    await new Promise<void>((r) => mitm.listen(0, '127.0.0.1', r));
    try {
      const diverted: AgentTarget = {
        ...node,
        driver_internal_info: {
          ...node.driver_internal_info,
          agent_url: `https://127.0.0.1:${(mitm.address() as AddressInfo).port}`,
        },
      };
      await assert.rejects(
        client.command(diverted, 'standby.sync', {}, { wait: true }),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, 'AGENT_ERROR');
          assert.match(
            e.message,
            /agent command standby\.sync on node tls-node \(.+\): the agent at https:\/\/127\.0\.0\.1:\d+ did not prove it holds the certificate it sent with its heartbeat \((DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\); nothing was sent/,
          );
          return true;
        },
      );
      assert.deepEqual(got, [], 'no request, so no token, reached the impostor');
    } finally {
      mitm.close();
    }
    assert.deepEqual(await client.listCommands(node), before, 'the agent ran nothing');
  });

  test('a downgraded agent URL (http:// for an agent that sent a certificate) is refused before anything is sent', async () => {
    const { target } = await boot();
    const node = await target();
    const https = node.driver_internal_info.agent_url as string;
    const downgraded: AgentTarget = {
      ...node,
      driver_internal_info: { ...node.driver_internal_info, agent_url: https.replace(/^https:/, 'http:') },
    };
    await assert.rejects(
      client.command(downgraded, 'standby.sync', {}, { wait: true }),
      /node tls-node \(.+\): its agent sent a TLS certificate \(agent_verify_ca\) but its agent URL http:\/\/127\.0\.0\.1:\d+ is plain HTTP; refusing to send commands unencrypted/,
    );
    assert.deepEqual(await client.listCommands(node), []);
  });

  test('a conductor API older than 1.68 gets plain HTTP and no agent_verify_ca, as IPA does', async () => {
    const { uuid, agent, target } = await boot(['--ironic-api-version', '1.62']);
    const node = await target();
    assert.match(node.driver_internal_info.agent_url as string, /^http:\/\//);
    assert.equal(node.driver_internal_info.agent_verify_ca, undefined);
    assert.ok(
      agent.lines.some((l) =>
        /predates agent_verify_ca: serving the command API over plain HTTP/.test(String(l.msg)),
      ),
    );
    const beat = (await c.seen()).seen.find((s) => s.path === `/v1/heartbeat/${uuid}`)!;
    assert.equal('agent_verify_ca' in (beat.body as object), false);
    assert.equal(
      (await client.command(node, 'standby.sync', {}, { wait: true })).command_status,
      'SUCCEEDED',
    );
  });
});
