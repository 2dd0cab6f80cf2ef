// Start a real conductor (HTTP on a free loopback port, in-memory SQLite, fake BMCs) for API tests,
// capturing its log lines so tests can check what reached them.
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { loadConfig } from '../../conductor/config.ts';
import { FakePowerDriver } from '../../conductor/power/fake.ts';
import { type ConductorOverrides, type RunningConductor, startConductor } from '../../conductor/server.ts';
import { openSqliteStore } from '../../conductor/store/sqlite.ts';
import { createLogger } from '../../shared/log.ts';

export interface TestConductor extends RunningConductor {
  logs: string[];
  fake: FakePowerDriver;
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

export async function startTestConductor(over: ConductorOverrides = {}): Promise<TestConductor> {
  const logs: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean)));
  const log = createLogger({ name: 'kiln-test', level: 'debug', destination: stream });
  const config = loadConfig({
    flags: { 'api.host': '127.0.0.1', 'api.port': 0, 'conductor.power_sync_interval_s': 0 },
  });
  const fake = new FakePowerDriver();
  const c = await startConductor(config, log, {
    store: over.store ?? (await openSqliteStore(':memory:')),
    power: over.power ?? { get: () => fake },
    ...over,
  });
  const call: TestConductor['call'] = async (method, path, body, raw) => {
    const res = await request(`${c.url}${path}`, {
      method: method as 'GET',
      headers: { 'content-type': raw?.contentType ?? 'application/json' },
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
  const close = c.close;
  return Object.assign(c, {
    logs,
    fake,
    call,
    close: async () => {
      await close();
      await c.store.close();
    },
  });
}
