// Start a real conductor (the operator API and the provisioning endpoints each on a free loopback
// port, plain HTTP, in-memory SQLite, fake BMCs) for API tests, capturing its log lines so tests
// can check what reached them. `call` carries an admin API token; `callAs` another one.
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { createToken } from '../../conductor/auth/tokens.ts';
import { loadConfig } from '../../conductor/config.ts';
import { FakePowerDriver } from '../../conductor/power/fake.ts';
import { createSecretBox } from '../../conductor/secrets/box.ts';
import { type ConductorOverrides, type RunningConductor, startConductor } from '../../conductor/server.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import { createLogger } from '../../shared/log.ts';

type Call = (
  method: string,
  path: string,
  body?: unknown,
  raw?: { body: string; contentType?: string },
) => Promise<{
  status: number; // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered
  body: any;
  text: string;
}>;

export interface TestConductor extends RunningConductor {
  logs: string[];
  fake: FakePowerDriver;
  /** The admin token `call` sends. */
  adminToken: string;
  /** A `call` that sends `token` (null: none). */
  callAs(token: string | null): Call;
  call(
    method: string,
    path: string,
    body?: unknown,
    raw?: { body: string; contentType?: string },
  ): Promise<{
    status: number; // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered
    body: any;
    text: string;
  }>;
}

export async function startTestConductor(
  over: ConductorOverrides = {},
  flags: Record<string, unknown> = {},
): Promise<TestConductor> {
  const logs: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean)));
  const log = createLogger({ name: 'kiln-test', level: 'debug', destination: stream });
  const config = loadConfig({
    flags: {
      'api.host': '127.0.0.1',
      'api.port': 0,
      'api.tls.mode': 'off',
      'provisioning.host': '127.0.0.1',
      'provisioning.port': 0,
      'conductor.power_sync_interval_s': 0,
      ...flags,
    },
  });
  const fake = new FakePowerDriver();
  const c = await startConductor(config, log, {
    store: over.store ?? (await openSqliteStore(':memory:')),
    secrets: over.secrets ?? createSecretBox(randomBytes(32)),
    power: over.power ?? { get: () => fake },
    ...over,
  });
  const { token: adminToken } = await createToken(c.store.tokens, {
    name: 'test-admin',
    role: 'admin',
    expiresAt: null,
  });
  const callAs =
    (token: string | null): Call =>
    async (method, path, body, raw) => {
      const res = await request(`${c.url}${path}`, {
        method: method as 'GET',
        headers: {
          'content-type': raw?.contentType ?? 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: raw ? raw.body : body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.body.text();
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = text;
      }
      return { status: res.statusCode, body: parsed, text };
    };
  const call = callAs(adminToken);
  const close = c.close;
  return Object.assign(c, {
    logs,
    fake,
    adminToken,
    callAs,
    call,
    close: async () => {
      await close();
      await c.store.close();
    },
  });
}
