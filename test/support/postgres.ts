// Starts a real, throwaway PostgreSQL cluster for tests: Debian's server binaries, a fresh initdb
// in a temp directory, listening on a free loopback port and a socket inside that directory.
// PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` user.
// Durability settings are off (fsync, synchronous_commit): the tests check semantics, not disks.
import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresCluster {
  /** Superuser URL of the `postgres` database. */
  url: string;
  dir: string;
  /** Create an empty database and return its URL (about a quarter second each). */
  createDatabase(): Promise<string>;
  /**
   * Create an empty schema and return a URL whose connections use it as search_path: a clean
   * slate in a few milliseconds, for suites that want one per test.
   */
  createSchema(): Promise<string>;
  /** Stop the server and remove its directory. */
  stop(): Promise<void>;
}

const PG_ROOT = '/usr/lib/postgresql';

/** The newest installed server's bin directory. */
export function findPostgresBin(): string {
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter(
          (v) =>
            existsSync(join(PG_ROOT, v, 'bin', 'initdb')) && existsSync(join(PG_ROOT, v, 'bin', 'postgres')),
        )
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(
      `PostgreSQL server binaries not found in ${PG_ROOT}/*/bin; install the Debian package 'postgresql' ` +
        '(the store tests need a real server)',
    );
  }
  return join(PG_ROOT, versions[0]!, 'bin');
}

function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error("running as root but there is no 'postgres' user to own the test cluster");
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], as: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...as, env: { PATH: process.env.PATH, LC_ALL: 'C' }, stdio: 'pipe' });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out}`)),
    );
  });
}

async function waitReady(url: string, server: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(`postgres exited during startup:\n${log()}`);
    }
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (e) {
      if (Date.now() > deadline)
        throw new Error(`postgres did not accept connections within 30s: ${e}\n${log()}`);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

export async function startPostgres(): Promise<PostgresCluster> {
  const bin = findPostgresBin();
  const as = process.getuid?.() === 0 ? postgresUser() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'kiln-pg-'));
  let server: ChildProcess | undefined;
  // If the test process dies without calling stop(), don't leave a server and its files behind.
  const onExit = () => {
    server?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const stop = async () => {
    process.removeListener('exit', onExit);
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGINT'); // "fast shutdown": roll back open transactions, then exit
      const timer = setTimeout(() => server!.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (as) chownSync(dir, as.uid, as.gid);
    const data = join(dir, 'data');
    await run(
      join(bin, 'initdb'),
      ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      as,
    );
    const port = await freePort();
    let log = '';
    server = spawn(
      join(bin, 'postgres'),
      [
        ...['-D', data, '-p', String(port), '-k', dir],
        ...['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off'],
        ...['-c', 'full_page_writes=off', '-c', 'max_connections=50'],
      ],
      { ...as, env: { PATH: process.env.PATH, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    server.stdout!.on('data', (d) => {
      log += d;
    });
    server.stderr!.on('data', (d) => {
      log += d;
    });
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    await waitReady(url, server, () => log);
    let databases = 0;
    let schemas = 0;
    return {
      url,
      dir,
      stop,
      async createDatabase() {
        const name = `kiln_test_${databases++}`;
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          // FILE_COPY: PostgreSQL 15's default (WAL_LOG) writes the whole template through the WAL,
          // which is several times slower for the tiny databases tests create.
          const { rows } = await client.query('SHOW server_version_num');
          const strategy = Number(rows[0].server_version_num) >= 150000 ? ' STRATEGY = FILE_COPY' : '';
          await client.query(`CREATE DATABASE ${name}${strategy}`);
        } finally {
          await client.end();
        }
        return `postgres://postgres@127.0.0.1:${port}/${name}`;
      },
      async createSchema() {
        const name = `kiln_test_${schemas++}`;
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(`CREATE SCHEMA ${name}`);
        } finally {
          await client.end();
        }
        return `${url}?options=${encodeURIComponent(`-c search_path=${name}`)}`;
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
