// Attacks on the ramdisk agent's command API from the provisioning network, against the real
// bundled agent (dist/agent.mjs built into a temp dir) with the disk plugin and a loop device it
// is allowed to erase. Every attack sends clean.execute_clean_step(erase_devices_metadata): each
// must be refused with IPA's fault shape, leave no command in GET /v1/commands and leave the
// disk's bytes as they were. A correct request at the end shows the door was open to the owner.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import {
  type AgentProc,
  buildAgent,
  loopbackAgentArgs,
  Procs,
  startAgent,
  startConductor,
  stop,
  testMac,
  waitFor,
} from '../agent/helpers.ts';
import { createLoopDevice, type LoopDevice, readDevice } from '../support/loopdev.ts';

const MiB = 1024 * 1024;
const procs = new Procs();
let bundle: string;
let disk: LoopDevice;
let diskHash: string;

const ERASE = {
  name: 'clean.execute_clean_step',
  params: {
    step: { step: 'erase_devices_metadata', interface: 'deploy', priority: 99 },
    node: {},
    ports: [],
  },
};
const UNAUTHORIZED = { faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' };

async function diskDigest(): Promise<string> {
  return createHash('sha256')
    .update(await readDevice(disk.path, 0, 2 * MiB))
    .digest('hex');
}

before(async () => {
  bundle = await buildAgent(join(procs.tempDir('kiln-agent-bundle-'), 'agent.mjs'));
  disk = await createLoopDevice(32 * MiB);
  await execa('sgdisk', ['--zap-all', disk.path], { reject: false });
  await execa('sgdisk', ['-n', '1:0:+16M', disk.path]);
  diskHash = await diskDigest();
});
after(async () => {
  await procs.cleanup();
  await disk?.destroy();
});

interface Reply {
  status: number;
  body: unknown;
  headers: http.IncomingHttpHeaders;
  /** Body bytes the client managed to hand to its socket before the answer came. */
  sent: number;
  ms: number;
}

/**
 * POST /v1/commands/<query> with `total` body bytes (a JSON command when small, else filler),
 * written in 1 MiB chunks with back-pressure until the agent answers or the body is out.
 */
function post(
  port: number,
  query: string,
  opts: { total?: number; json?: unknown; chunked?: boolean; tls?: boolean } = {},
): Promise<Reply> {
  const started = Date.now();
  const json = opts.json === undefined ? undefined : Buffer.from(JSON.stringify(opts.json));
  const total = json?.length ?? opts.total ?? 0;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (!opts.chunked) headers['content-length'] = String(total);
  const mod = opts.tls ? https : http;
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const req = mod.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/v1/commands/${query}`,
        headers,
        agent: false,
        rejectUnauthorized: false, // the attacker does not care whose certificate it is
      },
      (res) => {
        answered = true;
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({
            status: res.statusCode ?? 0,
            body,
            headers: res.headers,
            sent,
            ms: Date.now() - started,
          });
          req.destroy();
        });
        res.on('error', () => {});
      },
    );
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    if (json) {
      sent = json.length;
      req.end(json);
      return;
    }
    const chunk = Buffer.alloc(MiB, 0x41);
    const pump = () => {
      while (!answered && !req.destroyed && sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered && !req.destroyed) req.end();
    };
    pump();
  });
}

async function commands(port: number, token: string, tls = false): Promise<unknown[]> {
  const mod = tls ? https : http;
  return new Promise((resolve, reject) => {
    mod
      .get(
        {
          host: '127.0.0.1',
          port,
          path: `/v1/commands/?agent_token=${token}`,
          agent: false,
          rejectUnauthorized: false,
        },
        (res) => {
          let t = '';
          res.on('data', (c) => {
            t += c;
          });
          res.on('end', () => resolve((JSON.parse(t) as { commands: unknown[] }).commands));
        },
      )
      .on('error', reject);
  });
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]);
}

async function standalone(
  env: Record<string, string>,
  extra: string[] = [],
): Promise<{ agent: AgentProc; port: number }> {
  const agent = startAgent(procs, {
    bundle,
    args: [
      '--listen-host',
      '127.0.0.1',
      '--listen-port',
      '0',
      '--power-action',
      'none',
      '--allow-device',
      disk.path,
      ...extra,
    ],
    env,
  });
  const line = await agent.waitForLog(/agent API listening/);
  return { agent, port: Number(line.port) };
}

describe('the agent command API under attack (real agent process)', { timeout: 180_000 }, () => {
  const token = randomBytes(32).toString('base64url');

  test('standalone with a token, not "required": no token, a wrong one, a wrong-length one are all refused', async () => {
    // KILN_AGENT_TOKEN_REQUIRED is unset: IPA would let a token-less command through here.
    const { agent, port } = await standalone({ KILN_AGENT_TOKEN: token });
    assert.ok(agent.lines.some((l) => /standalone: commands need the agent token/.test(String(l.msg))));
    const wrong = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
    for (const q of [
      '?wait=true',
      '?wait=true&agent_token=',
      `?wait=true&agent_token=${wrong}`,
      '?agent_token=short',
      `?agent_token=${token}x`,
    ]) {
      const r = await post(port, q, { json: ERASE });
      assert.equal(r.status, 401, q);
      assert.deepEqual(r.body, UNAUTHORIZED, q);
    }
    assert.deepEqual(await commands(port, token), [], 'no command was recorded');
    assert.equal(await diskDigest(), diskHash, 'the disk is untouched');

    // Bodies: a declared size over the cap is refused at once, unread; a streamed one is cut off.
    const declared = await post(port, `?agent_token=${token}`, { total: 200 * MiB });
    assert.equal(declared.status, 413);
    assert.match(
      String((declared.body as { faultstring: string }).faultstring),
      /^413 Request Entity Too Large: .*capped at 83886080 bytes/,
    );
    assert.equal(declared.headers.connection, 'close');
    assert.ok(
      declared.sent < 100 * MiB,
      `refused before the body was taken in (${declared.sent} bytes sent)`,
    );
    const streamed = await post(port, `?agent_token=${token}`, { total: 120 * MiB, chunked: true });
    assert.equal(streamed.status, 413);
    assert.ok(streamed.sent < 120 * MiB, `cut off at the cap (${streamed.sent} bytes sent)`);
    assert.deepEqual(await commands(port, token), []);

    // The owner's request is accepted (the refusals above are not a broken route).
    const ok = await post(port, `?wait=true&agent_token=${token}`, {
      json: { name: 'standby.sync', params: {} },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(
      (await commands(port, token)).map((c) => (c as { command_name: string }).command_name),
      ['sync'],
    );
    assert.equal(await diskDigest(), diskHash);
    await stop(agent.proc);
  });

  test('a 200 MB body without a token, or with a wrong one, is answered 401 quickly and never buffered', async (t) => {
    const { agent, port } = await standalone({ KILN_AGENT_TOKEN: token });
    const pid = agent.proc.pid!;
    await post(port, `?agent_token=${token}`, { json: { name: 'standby.sync', params: {} } }); // warm up
    const baseline = rssKiB(pid);
    for (const q of ['?wait=true', '?agent_token=wrong-wrong-wrong-wrong-wrong-wrong']) {
      for (const chunked of [false, true]) {
        const r = await post(port, q, { total: 200 * MiB, chunked });
        assert.equal(r.status, 401, `${q} chunked=${chunked}`);
        assert.deepEqual(r.body, UNAUTHORIZED);
        assert.equal(r.headers.connection, 'close');
        assert.ok(r.ms < 5000, `answered in ${r.ms} ms`);
        assert.ok(r.sent < 100 * MiB, `the connection was closed, not drained (${r.sent} bytes sent)`);
        t.diagnostic(`${q} chunked=${chunked}: 401 after ${r.ms} ms, ${r.sent} bytes sent`);
      }
    }
    const grown = rssKiB(pid) - baseline;
    t.diagnostic(`agent VmRSS ${baseline} KiB before, ${baseline + grown} KiB after`);
    assert.ok(grown < 30 * 1024, `agent RSS grew by ${grown} KiB (baseline ${baseline} KiB)`);
    assert.deepEqual(
      (await commands(port, token)).map((c) => (c as { command_name: string }).command_name),
      ['sync'],
      'only the warm-up ran',
    );
    await stop(agent.proc);
  });

  test('standalone without a token refuses every command, and says at start what to do', async () => {
    const { agent, port } = await standalone({});
    const said = agent.lines.find((l) => /standalone without an agent token/.test(String(l.msg)));
    assert.ok(said, 'logged at start');
    assert.match(
      String(said.msg),
      /every command will be refused \(401\); set KILN_AGENT_TOKEN or --agent-token-file/,
    );
    for (const q of ['?wait=true', `?wait=true&agent_token=${token}`, '?agent_token=null']) {
      const r = await post(port, q, { json: ERASE });
      assert.deepEqual([r.status, r.body], [401, UNAUTHORIZED], q);
    }
    assert.deepEqual(await commands(port, ''), []);
    assert.equal(await diskDigest(), diskHash);
    await stop(agent.proc);
  });

  test('the token never comes from argv', async () => {
    const agent = startAgent(procs, { bundle, args: ['--agent-token', token] });
    assert.equal(await agent.exited, 2);
    assert.match(
      agent.stderr(),
      /--agent-token is not accepted on the command line.*KILN_AGENT_TOKEN.*--agent-token-file/,
    );
  });

  test('lookup said the token was taken ("******"): commands without a token are refused; TLS port refuses plain HTTP', async () => {
    const dir = procs.tempDir();
    const c = await startConductor(procs, { db: join(dir, 'kiln.db'), heartbeatTimeoutS: 2 });
    const uuid = crypto.randomUUID();
    const mac = testMac(900);
    await c.createNode({ uuid, provision_state: 'clean wait', macs: [mac] });
    const args = [...loopbackAgentArgs(c.url, mac), '--allow-device', disk.path];
    const first = startAgent(procs, { bundle, args });
    await first.waitForLog(/heartbeating/);
    const firstUrl = await waitFor(
      'agent_url',
      async () => (await c.node(uuid)).driver_internal_info.agent_url as string,
    );
    assert.match(firstUrl, /^https:\/\//, 'auto-TLS: the conductor speaks 1.68');
    const firstPort = Number(new URL(firstUrl).port);
    const realToken = (await c.node(uuid)).driver_internal_info.agent_secret_token as string;

    // Plain HTTP to the TLS port: no HTTP answer at all, nothing run.
    await assert.rejects(
      post(firstPort, `?wait=true&agent_token=${realToken}`, { json: ERASE }),
      (e: NodeJS.ErrnoException) => {
        assert.match(String(e.code ?? e.message), /ECONNRESET|socket hang up|EPIPE/);
        return true;
      },
    );
    assert.deepEqual(await commands(firstPort, realToken, true), []);
    await stop(first.proc);

    // The next agent on this node learns the token was handed out already: it knows none.
    const second = startAgent(procs, { bundle, args });
    await second.waitForLog(/already been retrieved/);
    const line = await second.waitForLog(/agent API listening/);
    assert.ok(
      second.lines.some((l) =>
        /no agent token known for this boot: every command will be refused/.test(String(l.msg)),
      ),
    );
    const port = Number(line.port);
    for (const q of ['?wait=true', '?wait=true&agent_token=', `?wait=true&agent_token=${realToken}`]) {
      const r = await post(port, q, { json: ERASE, tls: true });
      assert.deepEqual([r.status, r.body], [401, UNAUTHORIZED], q);
    }
    // Over TLS too, a big unauthenticated body is answered and dropped, not read.
    const big = await post(port, '?wait=true', { total: 200 * MiB, tls: true });
    assert.deepEqual([big.status, big.body, big.headers.connection], [401, UNAUTHORIZED, 'close']);
    assert.ok(big.sent < 100 * MiB, `not drained (${big.sent} bytes sent)`);
    assert.deepEqual(await commands(port, '', true), []);
    assert.equal(await diskDigest(), diskHash);
  });
});
