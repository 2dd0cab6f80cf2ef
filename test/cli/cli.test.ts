// The `kiln` CLI as an operator runs it: a real conductor process, the bundled CLI, tables for
// people, --json for scripts, exit codes, and state kept across conductor restarts.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { type ConductorProcess, KILN, kiln, startConductorProcess } from '../support/processes.ts';

/** The CLI as a child this process doesn't block on, for tests that serve the API themselves. */
async function kilnAsync(args: string[], opts: { api: string }): Promise<{ status: number; stderr: string }> {
  const child = spawn(process.execPath, [KILN, '--api', opts.api, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const [code] = await once(child, 'close');
  return { status: code as number, stderr };
}

describe('kiln CLI against a running conductor', () => {
  let dir: string;
  let c: ConductorProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
    c = await startConductorProcess(['--db', `sqlite:${join(dir, 'kiln.db')}`, '--id', 'cli-test']);
  });
  after(async () => {
    await c?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows help for every command group and exits 0', () => {
    for (const args of [
      ['--help'],
      ['node', '--help'],
      ['node', 'deploy', '--help'],
      ['image', '--help'],
      ['conductor', '--help'],
    ]) {
      const r = kiln(args);
      assert.equal(r.status, 0, args.join(' '));
      assert.match(r.stdout, /Usage: kiln/);
    }
  });

  it('exits 2 on usage errors', () => {
    const r = kiln(['node', 'frobnicate']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command/);
  });

  it('exits 5 with a hint when the API is unreachable', () => {
    const r = kiln(['node', 'list'], { api: 'http://127.0.0.1:9' });
    assert.equal(r.status, 5);
    assert.match(r.stderr, /cannot reach the Kiln API at http:\/\/127.0.0.1:9.*kiln conductor/);
  });

  it('exits 5 without sending a request when the API is not Kiln (a stock Ironic on 6385)', async () => {
    const asked: string[] = [];
    const ironic = createServer((req, res) => {
      asked.push(`${req.method} ${req.url}`);
      const body =
        req.url === '/'
          ? { name: 'OpenStack Ironic API', versions: [{ id: 'v1', status: 'CURRENT', version: '1.96' }] }
          : { nodes: [] };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((r) => ironic.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(ironic.address() as AddressInfo).port}`;
    try {
      const r = await kilnAsync(['node', 'list'], { api: url });
      assert.equal(r.status, 5, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `this is not a Kiln API: ${url} answered GET / without a 'kiln' member \\(is it an OpenStack Ironic\\?\\)`,
        ),
      );
      assert.deepEqual(asked, ['GET /']);
    } finally {
      await new Promise((r) => ironic.close(r));
    }
  });

  it('accepts KILN_API with a trailing /v1', () => {
    const r = kiln(['--json', 'node', 'list'], { env: { KILN_API: `${c.url}/v1/` } });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(Array.isArray(r.json().nodes), r.stdout);
  });

  it('adds an image by a bare hex checksum, and exits 2 naming the field for a bad one', () => {
    const ok = kiln(
      ['--json', 'image', 'add', 'bare', 'http://127.0.0.1:1/b.raw', '--checksum', 'e'.repeat(64)],
      {
        api: c.url,
      },
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.json().checksum_algo, 'sha256');
    const bad = kiln(['image', 'add', 'bad', 'http://127.0.0.1:1/b.raw', '--checksum', 'e'.repeat(40)], {
      api: c.url,
    });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /invalid image: checksum: .*40 hex digits/);
  });

  it('enrolls, lists (table and JSON), and drives a node to active', () => {
    const created = kiln(
      [
        '--json',
        'node',
        'create',
        '--name',
        'n1',
        '--bmc-address',
        'fake://n1',
        '--mac',
        '52:54:00:00:01:01',
        '--property',
        'cpu_arch=x86_64',
      ],
      { api: c.url },
    );
    assert.equal(created.status, 0, created.stderr);
    assert.equal(created.json().provision_state, 'enroll');
    const table = kiln(['node', 'list'], { api: c.url });
    assert.match(table.stdout, /^UUID\s+NAME\s+DRIVER\s+PROVISION_STATE/m);
    assert.match(table.stdout, /n1\s+fake\s+enroll/);
    const img = kiln(
      ['image', 'add', 'demo', 'http://127.0.0.1:1/demo.raw', '--checksum', `sha256:${'c'.repeat(64)}`],
      { api: c.url },
    );
    assert.equal(img.status, 0, img.stderr);
    for (const args of [
      ['manage', 'n1'],
      ['provide', 'n1'],
      ['deploy', 'n1', '--image', 'demo', '--hostname', 'web-1'],
    ]) {
      const r = kiln(['node', ...args, '--wait'], { api: c.url });
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const shown = kiln(['--json', 'node', 'show', 'n1'], { api: c.url }).json();
    assert.equal(shown.provision_state, 'active');
    assert.equal(shown.instance_info.hostname, 'web-1');
    const ev = kiln(['node', 'events', 'n1'], { api: c.url });
    assert.match(ev.stdout, /deploy/);
  });

  it('exits 3 for a missing node and 4 for an illegal action', () => {
    const missing = kiln(['node', 'show', 'ghost'], { api: c.url });
    assert.equal(missing.status, 3);
    assert.match(missing.stderr, /node ghost not found/);
    const illegal = kiln(['node', 'provide', 'n1'], { api: c.url });
    assert.equal(illegal.status, 4);
    assert.match(
      illegal.stderr,
      /n1 .* is active: 'provide' is not allowed there; allowed: rebuild, undeploy/,
    );
  });

  it('prints a maintenance hint that is a working command', () => {
    assert.equal(
      kiln(['node', 'create', '--name', 'mnt', '--bmc-address', 'fake://mnt'], { api: c.url }).status,
      0,
    );
    assert.equal(kiln(['node', 'maintenance', 'mnt', 'on', '--reason', 'fan'], { api: c.url }).status, 0);
    const blocked = kiln(['node', 'manage', 'mnt'], { api: c.url });
    assert.equal(blocked.status, 4, blocked.stderr);
    const hint = /'(kiln [^']+)'/.exec(blocked.stderr);
    assert.ok(hint, `no command in: ${blocked.stderr}`);
    const run = kiln(hint[1]!.split(' ').slice(1), { api: c.url });
    assert.notEqual(run.status, 2, `'${hint[1]}' is a usage error: ${run.stderr}`);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(kiln(['--json', 'node', 'show', 'mnt'], { api: c.url }).json().maintenance, false);
  });

  it('abort --wait and watch exit 1 on a failed state, with a last_error whose hint works', async () => {
    // The agent workflow on a fake BMC parks the node in clean wait, waiting for a ramdisk.
    const create = ['node', 'create', '--name', 'ab', '--bmc-address', 'fake://ab'];
    assert.equal(kiln([...create, '--property', 'deploy_interface=agent'], { api: c.url }).status, 0);
    assert.equal(kiln(['node', 'manage', 'ab', '--wait'], { api: c.url }).status, 0);
    assert.equal(kiln(['node', 'provide', 'ab'], { api: c.url }).status, 0);
    await waitForState(c, 'ab', 'clean wait');

    const aborted = kiln(['node', 'abort', 'ab', '--wait'], { api: c.url, env: { USER: 'alice' } });
    assert.equal(aborted.status, 1, aborted.stderr);
    assert.match(aborted.stdout, /ab: clean failed/);
    assert.match(
      aborted.stderr,
      /error: node ab ended in clean failed: cleaning aborted by test-admin-\w+ on node ab/,
    );

    const watched = kiln(['node', 'watch', 'ab'], { api: c.url });
    assert.equal(watched.status, 1, watched.stderr);
    assert.match(watched.stderr, /cleaning aborted by test-admin-\w+/);
    const asJson = kiln(['--json', 'node', 'watch', 'ab'], { api: c.url });
    assert.equal(asJson.status, 1);
    assert.equal(asJson.json().provision_state, 'clean failed');

    const hint = /'(kiln node manage [^']+)'/.exec(aborted.stderr);
    assert.ok(hint, `no 'kiln node manage' in: ${aborted.stderr}`);
    const run = kiln([...hint[1]!.split(' ').slice(1), '--wait'], { api: c.url });
    assert.equal(run.status, 0, `'${hint[1]}': ${run.stderr}`);
    assert.match(run.stdout, /ab: manageable/);
  });

  it('prints lists and shows in every format, with -c, --long, --sort and the API filters', () => {
    const api = { api: c.url };
    assert.equal(kiln(['node', 'update', 'n1', '--property', 'memory_mb=16384'], api).status, 0);
    const yaml = kiln(['node', 'list', '-f', 'yaml'], api);
    assert.equal(yaml.status, 0, yaml.stderr);
    assert.match(yaml.stdout, /^nodes:\n {2}- uuid: /);
    const names = kiln(['node', 'list', '-f', 'value', '-c', 'name', '--sort', 'name:desc'], api).stdout;
    const listed = names.trim().split('\n');
    assert.ok(listed.includes('n1') && listed.includes('ab'), names);
    assert.deepEqual(listed, [...listed].sort().reverse());
    const csv = kiln(
      ['node', 'list', '-f', 'csv', '-c', 'name', '-c', 'provision_state', '--provision-state', 'active'],
      api,
    );
    assert.equal(csv.stdout, '"name","provision_state"\n"n1","active"\n');
    assert.deepEqual(
      kiln(['node', 'list', '--json', '--maintenance', '--driver', 'fake'], api).json().nodes,
      [],
    );
    assert.ok(
      kiln(['node', 'list', '-f', 'json', '--no-maintenance', '--driver', 'fake'], api)
        .json()
        .nodes.some((n: { name: string }) => n.name === 'n1'),
    );
    assert.match(
      kiln(['node', 'list', '--long'], api).stdout,
      /^UUID\s+NAME\s+DRIVER\s+BMC_ADDRESS\s+PROVISION_STATE/,
    );
    const long = kiln(
      ['node', 'list', '-f', 'value', '-c', 'bmc_address', '--provision-state', 'active'],
      api,
    );
    assert.equal(long.stdout, 'fake://n1\n');
    // show: human units in the table, raw values in json, -c on both.
    assert.match(kiln(['node', 'show', 'n1'], api).stdout, /memory=16\.0 GiB \(16384 MiB\)/);
    assert.deepEqual(kiln(['node', 'show', 'n1', '-f', 'json', '-c', 'properties'], api).json(), {
      properties: { cpu_arch: 'x86_64', memory_mb: 16384 },
    });
    assert.equal(
      kiln(['node', 'show', 'n1', '-f', 'value', '-c', 'provision_state'], api).stdout,
      'active\n',
    );
    assert.match(kiln(['image', 'list', '-f', 'csv', '-c', 'name'], api).stdout, /^"name"\n.*"demo"/s);
    assert.match(
      kiln(['node', 'events', 'n1', '-f', 'value', '-c', 'event', '--sort', 'event'], api).stdout,
      /deploy/,
    );
  });

  it('exit codes: 2 for bad options and for input the API refuses, 3 not found, 6 denied', async () => {
    const api = { api: c.url };
    const badFormat = kiln(['node', 'list', '-f', 'xml'], api);
    assert.equal(badFormat.status, 2);
    assert.match(badFormat.stderr, /argument 'xml' is invalid.*table, json, yaml, value, csv/s);
    const badColumn = kiln(['node', 'show', 'n1', '-c', 'nmae'], api);
    assert.equal(badColumn.status, 2);
    assert.match(badColumn.stderr, /no column "nmae"; columns are uuid, name/);
    // Not checked by the CLI: the API's VALIDATION_FAILED is a usage error too.
    const badState = kiln(['node', 'list', '--provision-state', 'sleeping'], api);
    assert.equal(badState.status, 2, badState.stderr);
    assert.match(badState.stderr, /provision_state/);
    assert.equal(kiln(['node', 'manage', 'n1', '--wait', 'soon'], api).status, 2);
    assert.equal(kiln(['image', 'show', 'ghost', '-f', 'json'], api).status, 3);
    const wrongToken = kiln(['node', 'list'], { ...api, env: { KILN_TOKEN: 'not-a-token' } });
    assert.equal(wrongToken.status, 6, wrongToken.stderr);
    const reader = kiln(['--json', 'token', 'create', '--name', 'cli-reader', '--role', 'reader'], api);
    assert.equal(reader.status, 0, reader.stderr);
    const asReader = { ...api, env: { KILN_TOKEN: reader.json().token } };
    assert.equal(kiln(['node', 'list', '-f', 'value', '-c', 'name'], asReader).status, 0);
    const refused = kiln(['node', 'maintenance', 'n1', 'on', '--reason', 'reader'], asReader);
    assert.equal(refused.status, 6, refused.stderr);
    assert.equal(kiln(['--json', 'node', 'show', 'n1'], api).json().maintenance, false, 'nothing changed');
  });

  it('--wait TIMEOUT exits 1 naming the node, the state it is stuck in and what to do', async () => {
    const api = { api: c.url };
    assert.equal(
      kiln(
        [
          'node',
          'create',
          '--name',
          'slow',
          '--bmc-address',
          'fake://slow',
          '--property',
          'deploy_interface=agent',
        ],
        api,
      ).status,
      0,
    );
    assert.equal(kiln(['node', 'manage', 'slow', '--wait=30s'], api).status, 0);
    const started = Date.now();
    const r = kiln(['node', 'provide', 'slow', '--wait', '2s'], api);
    assert.equal(r.status, 1, r.stderr);
    assert.ok(Date.now() - started < 15_000);
    assert.match(
      r.stderr,
      /error: node slow is still in clean wait \(headed for available\) after 2s: the conductor is waiting for the node's ramdisk .*'kiln node abort slow'/,
    );
    // Piped: one line per change, no bar, no carriage returns.
    assert.match(r.stderr, /^\d\d:\d\d:\d\d {2}slow {2}clean wait → available$/m);
    assert.ok(!r.stderr.includes('\r'));
    assert.equal(
      kiln(['node', 'abort', 'slow', '--wait', '1m'], api).status,
      1,
      'abort ends in clean failed',
    );
  });

  it('power --wait returns once the node reports the new power state', () => {
    const r = kiln(['node', 'power', 'n1', 'off', '--wait', '30'], { api: c.url });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'n1: power off\n');
    assert.equal(kiln(['node', 'power', 'n1', 'on', '--wait'], { api: c.url }).status, 0);
  });

  it('follows --wait over the event stream, not by polling (the conductor serves GET /v1/events/stream)', () => {
    const api = { api: c.url };
    assert.equal(kiln(['node', 'manage', 'slow', '--wait'], api).status, 0);
    // provide parks the node in clean wait, so the CLI must open the stream to follow it.
    const r = kiln(['node', 'provide', 'slow', '--wait', '2s'], api);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /still in clean wait/);
    assert.ok(!/no event stream/.test(r.stderr), `the CLI fell back to polling: ${r.stderr}`);
    assert.equal(kiln(['node', 'abort', 'slow', '--wait'], api).status, 1);
  });

  it('completes commands, options, choices and node names in real bash', () => {
    const bin = mkdtempSync(join(tmpdir(), 'kiln-bin-'));
    try {
      // The script calls `kiln` from PATH, as an installed one would.
      writeFileSync(join(bin, 'kiln'), `#!/bin/sh\nexec "${process.execPath}" "${KILN}" "$@"\n`, {
        mode: 0o755,
      });
      const env = { ...process.env, ...c.env, KILN_API: c.url, PATH: `${bin}:${process.env.PATH}` };
      const reg = spawnSync('bash', ['-c', 'source <(kiln completion bash); complete -p kiln'], {
        env,
        encoding: 'utf8',
      });
      assert.equal(reg.stdout.trim(), 'complete -F _kiln kiln', reg.stderr);
      const complete = (line: string) => {
        const words = line.split(' ');
        const script = `source <(kiln completion bash)
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_kiln; printf '%s\\n' "\${COMPREPLY[@]}"`;
        const r = spawnSync('bash', ['-c', script], { env, encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout.trim().split('\n').filter(Boolean).sort();
      };
      assert.deepEqual(complete('kiln no'), ['node']);
      assert.deepEqual(complete('kiln node sh'), ['show']);
      assert.ok(complete('kiln node show ').includes('n1'));
      assert.deepEqual(complete('kiln node show s'), ['slow']);
      assert.deepEqual(complete('kiln --json node list -f '), ['csv', 'json', 'table', 'value', 'yaml']);
      assert.deepEqual(complete('kiln node list --provision-state clean'), [
        'clean\\ failed',
        'clean\\ wait',
        'cleaning',
      ]);
      assert.deepEqual(complete('kiln node list --sort name --lo'), ['--long']);
      assert.deepEqual(complete('kiln node deploy n1 --im'), ['--image']);
      assert.deepEqual(complete('kiln node deploy n1 --image d'), ['demo']);
      assert.deepEqual(complete('kiln node power n1 soft'), ['soft-off', 'soft-reboot']);
      assert.deepEqual(complete('kiln node maintenance n1 o'), ['off', 'on']);
      assert.deepEqual(complete('kiln --api'), ['--api']);
      const zsh = kiln(['completion', 'zsh']);
      assert.match(zsh.stdout, /^#compdef kiln\n/);
      assert.equal(kiln(['completion', 'fish']).status, 2);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('--wait exits 1 when the action does not reach its target (manage with a dead BMC)', () => {
    const r = kiln(['node', 'create', '--name', 'nobmc'], { api: c.url });
    assert.equal(r.status, 0, r.stderr);
    const managed = kiln(['node', 'manage', 'nobmc', '--wait'], { api: c.url });
    assert.equal(managed.status, 1, managed.stderr);
    assert.match(managed.stderr, /error: node nobmc ended in enroll, not manageable: .*has no BMC/);
  });

  it('imports a hardware_info file, reporting bad lines and importing the good ones', () => {
    const file = join(dir, 'hardware_info');
    writeFileSync(
      file,
      '10.1.91.4 00:1b:24:78:4c:b2 root pw1\n10.1.91.5 broken\n10.1.91.6 00:1b:24:78:4c:b4 root pw3\n10.1.91.7 00:1b:24:78:4c:b2 root dup\n',
    );
    const r = kiln(['node', 'import', file], { api: c.url });
    assert.equal(r.status, 1);
    assert.match(r.stdout, /hardware_info:1: enrolled/);
    assert.match(r.stdout, /hardware_info:2: error: expected 4 fields/);
    assert.match(r.stdout, /hardware_info:3: enrolled/);
    assert.match(r.stdout, /hardware_info:4: error: MAC 00:1b:24:78:4c:b2 already belongs to node/);
    assert.match(r.stdout, /2 imported, 2 failed/);
    assert.ok(!r.stdout.includes('pw1'));
  });

  it('keeps every node across a conductor restart (SIGTERM and SIGKILL)', async () => {
    const before = kiln(['--json', 'node', 'list'], { api: c.url }).json().nodes;
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      await c.stop(sig);
      c = await startConductorProcess(['--db', `sqlite:${join(dir, 'kiln.db')}`, '--id', 'cli-test']);
      const now = kiln(['--json', 'node', 'list'], { api: c.url }).json().nodes;
      assert.deepEqual(now, before, `after ${sig}`);
    }
  });

  it('lists every node across pages, and --limit caps the list', async () => {
    const have = kiln(['--json', 'node', 'list'], { api: c.url }).json().nodes.length;
    const pageSize = 1000; // the API's largest page
    const want = pageSize + 5 - have;
    for (let i = 0; i < want; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, want - i) }, (_, j) =>
          c.request('/v1/nodes', { method: 'POST', body: { name: `bulk-${i + j}` } }),
        ),
      );
    }
    const all = kiln(['--json', 'node', 'list'], { api: c.url });
    assert.equal(all.status, 0, all.stderr);
    const uuids = all.json().nodes.map((n: { uuid: string }) => n.uuid);
    assert.equal(uuids.length, pageSize + 5);
    assert.equal(new Set(uuids).size, uuids.length, 'no node listed twice');
    const capped = kiln(['--json', 'node', 'list', '--limit', '3'], { api: c.url });
    assert.deepEqual(
      capped.json().nodes.map((n: { uuid: string }) => n.uuid),
      uuids.slice(0, 3),
    );
    const overPage = kiln(['--json', 'node', 'list', '--limit', String(pageSize + 2)], { api: c.url });
    assert.equal(overPage.json().nodes.length, pageSize + 2);
    assert.equal(kiln(['node', 'list', '--limit', 'ten'], { api: c.url }).status, 2);
  });
});

/** Poll the API until a node is in `state` (the CLI's own waiting stops only at rest). */
async function waitForState(api: ConductorProcess, node: string, state: string): Promise<void> {
  const end = Date.now() + 15_000;
  let last = '';
  while (Date.now() < end) {
    const r = await api.request(`/v1/nodes/${node}`);
    last = (r.body as { provision_state: string }).provision_state;
    if (last === state) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`node ${node} is still ${last}, not ${state}, after 15 s`);
}
