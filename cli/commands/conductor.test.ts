// `kiln conductor` as a real process (through tsx, so no stale bundle is tested): a busy port,
// --check, and the crash policy.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

const MAIN = join(import.meta.dirname, '..', 'main.ts');
const TSX = import.meta.resolve('tsx');
const dir = mkdtempSync(join(tmpdir(), 'kiln-conductor-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  proc: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
}

function run(args: string[], opts: { preload?: string } = {}): Run {
  const proc = spawn(
    process.execPath,
    ['--import', TSX, ...(opts.preload ? ['--import', opts.preload] : []), MAIN, 'conductor', ...args],
    {
      cwd: dir,
      env: {
        ...process.env,
        KILN_POWER_SYNC_INTERVAL_S: '0',
        KILN_CONFIG: '',
        KILN_PROVISIONING_HOST: '127.0.0.1',
        KILN_PROVISIONING_PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => {
    out += d;
  });
  proc.stderr!.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  void exit.then(() => clearTimeout(t));
  return { proc, out: () => out, err: () => err, exit };
}

function hold(host: string): Promise<{ port: number; server: Server }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, host, () => resolve({ port: (server.address() as { port: number }).port, server }));
  });
}

async function until(what: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('kiln conductor', () => {
  test('a busy API port is one clear line and a non-zero exit, not a stack trace', async () => {
    const { port, server } = await hold('127.0.0.1');
    try {
      const r = run(['--host', '127.0.0.1', '--port', String(port), '--db', ':memory:']);
      const code = await r.exit;
      assert.notEqual(code, 0);
      assert.equal(
        r.err(),
        `error: port ${port} on 127.0.0.1 is already in use (another kiln conductor?); stop it or set api.port\n`,
      );
      assert.doesNotMatch(r.err() + r.out(), /EADDRINUSE|\n\s+at /);
    } finally {
      server.close();
    }
  });

  test('--check exits non-zero and prints each problem with what to do', async () => {
    const { port, server } = await hold('127.0.0.1');
    try {
      const r = run([
        '--check',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--db',
        `sqlite:${join(dir, 'no-such-folder', 'kiln.db')}`,
      ]);
      assert.equal(await r.exit, 1);
      const out = r.out();
      assert.match(
        out,
        /problem \(ramdisk\): no ramdisk in .*\n {2}fix: build it: kiln ramdisk build --out /,
      );
      assert.match(out, /problem \(database\): the database folder .*no-such-folder does not exist/);
      assert.match(
        out,
        new RegExp(
          `problem \\(ports\\): port ${port} on 127\\.0\\.0\\.1 is already in use \\(another kiln conductor\\?\\)\\n {2}fix: stop it or set api\\.port`,
        ),
      );
      assert.match(out, /3 problems\n$/);
    } finally {
      server.close();
    }
  });

  test('--check passes on a sound set-up, and starts nothing', async () => {
    const ramdisk = join(dir, 'ramdisk');
    mkdirSync(ramdisk, { recursive: true });
    writeFileSync(join(ramdisk, 'kernel'), 'k');
    writeFileSync(join(ramdisk, 'initramfs'), 'i');
    const config = join(dir, 'ok.yaml');
    writeFileSync(
      config,
      `boot:\n  ramdisk_dir: ${ramdisk}\ndatabase:\n  url: sqlite:${join(dir, 'kiln.db')}\n`,
    );
    const { port, server } = await hold('127.0.0.1');
    server.close();
    const r = run(['--check', '-c', config, '--host', '127.0.0.1', '--port', String(port)]);
    assert.equal(await r.exit, 0, r.out() + r.err());
    assert.equal(r.out(), 'kiln conductor --check: all checks passed\n');
  });

  test('a config error names the flag the value came from', async () => {
    const r = run(['--check', '--port', 'many']);
    assert.equal(await r.exit, 2);
    assert.match(r.err(), /api\.port: .* \(from flag --port\)/);
  });

  for (const kind of ['uncaughtException', 'unhandledRejection'] as const) {
    test(`an ${kind} is logged with context and the conductor exits non-zero`, async () => {
      // Injected into the conductor's own process: SIGUSR2 makes it throw (or reject) from nowhere.
      const fault =
        kind === 'uncaughtException'
          ? 'throw new Error("boom from nowhere")'
          : 'Promise.reject(new Error("boom from nowhere"))';
      const preload = `data:text/javascript,process.on("SIGUSR2",()=>{${fault}})`;
      const r = run(['--host', '127.0.0.1', '--port', '0', '--db', ':memory:'], { preload });
      await until(() =>
        /operator API https:\/\/127\.0\.0\.1:\d+ \(certificate [0-9A-F:]{95}\)/.test(r.err()),
      );
      r.proc.kill('SIGUSR2');
      assert.equal(await r.exit, 1);
      const fatal = r
        .out()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .find((l) => l.level === 'fatal');
      assert.ok(fatal, r.out());
      assert.equal(fatal.kind, kind);
      assert.equal(fatal.err.message, 'boom from nowhere');
      assert.match(fatal.err.stack, /Error: boom from nowhere/);
      assert.equal(typeof fatal.pid, 'number');
      assert.match(fatal.msg, /unknown state and exits so its supervisor restarts it/);
      assert.match(r.err(), new RegExp(`kiln conductor: ${kind}: boom from nowhere; exiting`));
    });
  }
});
