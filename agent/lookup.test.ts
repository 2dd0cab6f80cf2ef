import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../shared/log.ts';
import type { HttpResponse } from './http.ts';
import { backoffSeconds, interpretToken, LookupTimeoutError, lookupNode } from './lookup.ts';

const ok = (token: string | null): HttpResponse => ({
  status: 200,
  headers: {},
  text: JSON.stringify({ node: { uuid: 'n1' }, config: { heartbeat_timeout: 300, agent_token: token } }),
});
const status = (s: number): HttpResponse => ({
  status: s,
  headers: {},
  text: '{"error_message": "{\\"faultstring\\": \\"Resource could not be found.\\"}"}',
});

/** A clock that advances only when the code under test sleeps. */
function fakeTime() {
  let now = 0;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
  };
}

test('backoff is tenacity wait_random_exponential(min=interval, max=60)', () => {
  assert.equal(
    backoffSeconds(1, 1, () => 0),
    1,
  );
  assert.equal(
    backoffSeconds(1, 1, () => 1),
    1,
  );
  assert.equal(
    backoffSeconds(4, 1, () => 1),
    8,
  );
  assert.equal(
    backoffSeconds(20, 1, () => 1),
    60,
  );
  assert.equal(
    backoffSeconds(20, 1, () => 0),
    1,
  );
});

test('token: kept when ≥ 32 chars, "******" flagged, short ignored', () => {
  const log = silentLogger();
  assert.deepEqual(interpretToken({ heartbeat_timeout: 1, agent_token: 'x'.repeat(43) }, log), {
    token: 'x'.repeat(43),
    already: false,
  });
  assert.deepEqual(interpretToken({ heartbeat_timeout: 1, agent_token: '******' }, log), {
    token: null,
    already: true,
  });
  assert.deepEqual(interpretToken({ heartbeat_timeout: 1, agent_token: 'short' }, log), {
    token: null,
    already: false,
  });
  assert.deepEqual(interpretToken({ heartbeat_timeout: 1 }, log), { token: null, already: false });
});

test('retries 404s and connection errors, then succeeds', async () => {
  const t = fakeTime();
  const answers: (HttpResponse | Error)[] = [status(404), new Error('ECONNREFUSED'), ok('t'.repeat(43))];
  const r = await lookupNode({
    api: {
      lookup: async () => {
        const a = answers.shift()!;
        if (a instanceof Error) throw a;
        return a;
      },
    },
    macs: ['02:00:00:00:00:01'],
    timeoutS: 300,
    intervalS: 1,
    log: silentLogger(),
    sleep: t.sleep,
    now: t.now,
    random: () => 0.5,
  });
  assert.equal(r.node.uuid, 'n1');
  assert.equal(r.token, 't'.repeat(43));
  assert.equal(t.sleeps.length, 2);
});

test('409 waits 5, 10, then 30 s', async () => {
  const t = fakeTime();
  const answers = [status(409), status(409), status(409), status(409), ok(null)];
  await lookupNode({
    api: { lookup: async () => answers.shift()! },
    macs: ['02:00:00:00:00:01'],
    timeoutS: 300,
    intervalS: 1,
    log: silentLogger(),
    sleep: t.sleep,
    now: t.now,
  });
  assert.deepEqual(t.sleeps, [5000, 10000, 30000, 30000]);
});

test('gives up after the lookup timeout', async () => {
  const t = fakeTime();
  await assert.rejects(
    lookupNode({
      api: { lookup: async () => status(404) },
      macs: [],
      timeoutS: 30,
      intervalS: 1,
      log: silentLogger(),
      sleep: t.sleep,
      now: t.now,
      random: () => 1,
    }),
    (e) =>
      e instanceof LookupTimeoutError &&
      /within 30 s .*HTTP 404: Resource could not be found/.test(e.message),
  );
  assert.ok(t.now() <= 31_000 && t.now() >= 29_000, `stopped at ${t.now()} ms`);
});

test('pre-Rocky lookup body (top-level heartbeat_timeout) is accepted', async () => {
  const r = await lookupNode({
    api: {
      lookup: async () => ({
        status: 200,
        headers: {},
        text: '{"node": {"uuid": "n2"}, "heartbeat_timeout": 120}',
      }),
    },
    macs: [],
    timeoutS: 1,
    intervalS: 1,
    log: silentLogger(),
  });
  assert.equal(r.config.heartbeat_timeout, 120);
  assert.equal(r.token, null);
});
