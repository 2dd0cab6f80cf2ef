// The heartbeater's timing runs on node:test's fake clock (setTimeout, setInterval and Date), so
// each beat's time is checked to the millisecond instead of inside a window a loaded machine breaks.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { silentLogger } from '../shared/log.ts';
import { Heartbeater, type HeartbeaterOptions } from './heartbeat.ts';
import type { HeartbeatArgs } from './ironic-api.ts';

/** Starts the fake clock at 0; every beat below is stamped with its fake time. */
function fakeClock(t: TestContext) {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 0 });
  return {
    /**
     * Moves the clock `ms` forward one millisecond at a time, letting each beat's promise settle
     * before the next step (Node 20's tick(n) stamps every timer it runs with the end time).
     */
    async advance(ms: number): Promise<void> {
      for (let i = 0; i < ms; i++) {
        t.mock.timers.tick(1);
        await new Promise((r) => setImmediate(r));
      }
    },
    /** Runs what is due now (a 0 ms timer) without moving the clock. */
    async settle(): Promise<void> {
      t.mock.timers.tick(0);
      await new Promise((r) => setImmediate(r));
    },
  };
}

function recorder(statuses: number[]) {
  const calls: { at: number; args: HeartbeatArgs }[] = [];
  return {
    calls,
    times: () => calls.map((c) => c.at),
    api: {
      heartbeat: async (args: HeartbeatArgs) => {
        calls.push({ at: Date.now(), args });
        return { status: statuses.shift() ?? 202, headers: {}, text: '' };
      },
    },
  };
}

function heartbeater(r: ReturnType<typeof recorder>, extra: Partial<HeartbeaterOptions>): Heartbeater {
  return new Heartbeater({
    api: r.api,
    nodeUuid: 'n1',
    callbackUrl: 'http://127.0.0.1:9999',
    token: () => 'tok',
    heartbeatTimeoutS: 600,
    log: silentLogger(),
    ...extra,
  });
}

test('first beat at once, then heartbeat_timeout × U(0.3, 0.6); retries sooner after a failure', async (t) => {
  const clock = fakeClock(t);
  const r = recorder([400]);
  const hb = heartbeater(r, { heartbeatTimeoutS: 0.5, random: () => 0 }); // 150 ms between beats
  hb.start();
  await clock.settle();
  await clock.advance(700);
  hb.stop();
  assert.equal(r.calls[0]!.args.agentToken, 'tok');
  // After the failed first beat: retry after min(5–10 s, interval) = 150 ms, then every 150 ms.
  assert.deepEqual(r.times(), [0, 150, 300, 450, 600]);
  assert.equal(hb.failCount, 1);
  assert.equal(hb.okCount, 4);
});

test('the interval spans heartbeat_timeout × 0.3 to × 0.6; a failure retries after 5–10 s, never later than the interval', async (t) => {
  for (const [random, ok, failed] of [
    [0, 3000, 3000], // interval 3 s is shorter than the 5 s retry
    [1, 6000, 6000], // interval 6 s is shorter than the 10 s retry
  ] as const) {
    const clock = fakeClock(t);
    const r = recorder([202, 500]);
    const hb = heartbeater(r, { heartbeatTimeoutS: 10, random: () => random });
    hb.start();
    await clock.settle();
    await clock.advance(ok + failed);
    hb.stop();
    assert.deepEqual(r.times(), [0, ok, ok + failed], `random ${random}`);
    t.mock.timers.reset();
  }
  // With a long interval the retry wins: 5 s + 5 s × random.
  const clock = fakeClock(t);
  const r = recorder([500]);
  const hb = heartbeater(r, { heartbeatTimeoutS: 600, random: () => 0.5 });
  hb.start();
  await clock.settle();
  await clock.advance(7500);
  hb.stop();
  assert.deepEqual(r.times(), [0, 7500]);
});

test('a forced beat comes right after a command ends, but not within 5 s of the last one', async (t) => {
  const clock = fakeClock(t);
  const r = recorder([]);
  const hb = heartbeater(r, { forcedGapMs: 200 });
  hb.start();
  await clock.settle();
  await clock.advance(50);
  hb.force(); // too soon after the first beat: waits for the gap
  await clock.advance(400);
  assert.deepEqual(r.times(), [0, 200]);
  hb.force();
  hb.force(); // coalesced
  await clock.settle();
  await clock.advance(400);
  hb.stop();
  assert.deepEqual(r.times(), [0, 200, 450]);
});

test('the forced-beat gap defaults to 5 s', async (t) => {
  const clock = fakeClock(t);
  const r = recorder([]);
  const hb = heartbeater(r, {});
  hb.start();
  await clock.settle();
  await clock.advance(50);
  hb.force();
  await clock.advance(5000);
  hb.stop();
  assert.deepEqual(r.times(), [0, 5000]);
});

test('while a command reports progress to a conductor that asked for it, beats come at the progress pace', async (t) => {
  for (const negotiated of [true, false]) {
    const clock = fakeClock(t);
    const r = recorder([]);
    const hb = heartbeater(r, {
      // Progress appears only after the first beat, as when a command starts between beats.
      progress: () => (r.calls.length > 0 ? { phase: 'writing', bytes_done: 1, bytes_total: 2 } : null),
      progressNegotiated: () => negotiated,
      progressIntervalMs: 100,
    });
    hb.start();
    await clock.settle();
    await clock.advance(450);
    hb.stop();
    if (negotiated) assert.deepEqual(r.times(), [0, 100, 200, 300, 400], 'beats with progress');
    else assert.deepEqual(r.times(), [0], 'a stock conductor keeps IPA pacing');
    if (negotiated)
      assert.deepEqual(r.calls[1]!.args.progress, { phase: 'writing', bytes_done: 1, bytes_total: 2 });
    t.mock.timers.reset();
  }
});

test('progress that starts mid-interval brings the next beat forward to the progress pace', async (t) => {
  const clock = fakeClock(t);
  const r = recorder([]);
  const hb = heartbeater(r, {
    random: () => 0, // the IPA-paced beat would be 180 s away
    progress: () => (Date.now() >= 30 ? { phase: 'writing', bytes_done: 1, bytes_total: 2 } : null),
    progressNegotiated: () => true,
    progressIntervalMs: 100,
  });
  hb.start();
  await clock.settle();
  await clock.advance(350);
  hb.stop();
  assert.deepEqual(r.times(), [0, 100, 200, 300]);
  assert.equal(r.calls[0]!.args.progress, null);
});

test('every beat carries the auto-TLS certificate when there is one, and none otherwise', async (t) => {
  const clock = fakeClock(t);
  const withTls = recorder([]);
  const plain = recorder([]);
  const a = heartbeater(withTls, {
    callbackUrl: 'https://127.0.0.1:9999',
    verifyCa: 'PEM',
    heartbeatTimeoutS: 0.5,
  });
  const b = heartbeater(plain, { heartbeatTimeoutS: 0.5 });
  a.start();
  b.start();
  await clock.settle();
  await clock.advance(400);
  a.stop();
  b.stop();
  assert.ok(withTls.calls.length >= 2);
  assert.deepEqual(new Set(withTls.calls.map((c) => c.args.verifyCa)), new Set(['PEM']));
  assert.deepEqual(new Set(plain.calls.map((c) => c.args.verifyCa)), new Set([null]));
});
