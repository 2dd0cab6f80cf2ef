import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../shared/log.ts';
import { Heartbeater } from './heartbeat.ts';
import type { HeartbeatArgs } from './ironic-api.ts';

function recorder(statuses: number[]) {
  const calls: { at: number; args: HeartbeatArgs }[] = [];
  const started = Date.now();
  return {
    calls,
    api: {
      heartbeat: async (args: HeartbeatArgs) => {
        calls.push({ at: Date.now() - started, args });
        return { status: statuses.shift() ?? 202, headers: {}, text: '' };
      },
    },
  };
}

test('first beat at once, then heartbeat_timeout × U(0.3, 0.6); retries sooner after a failure', async () => {
  const r = recorder([400]);
  const hb = new Heartbeater({
    api: r.api,
    nodeUuid: 'n1',
    callbackUrl: 'http://127.0.0.1:9999',
    token: () => 'tok',
    heartbeatTimeoutS: 0.5, // 150–300 ms between beats
    log: silentLogger(),
    random: () => 0,
  });
  hb.start();
  await new Promise((res) => setTimeout(res, 700));
  hb.stop();
  assert.ok(r.calls[0]!.at < 50, 'first beat right away');
  assert.equal(r.calls[0]!.args.agentToken, 'tok');
  // After the failed first beat: retry after min(5–10 s, interval) = 150 ms, then every 150 ms.
  assert.ok(r.calls.length >= 4, `${r.calls.length} beats`);
  for (let i = 1; i < r.calls.length; i++) {
    const gap = r.calls[i]!.at - r.calls[i - 1]!.at;
    assert.ok(gap >= 140 && gap < 260, `gap ${gap} ms`);
  }
  assert.equal(hb.failCount, 1);
});

test('a forced beat comes right after a command ends, but not within 5 s of the last one', async () => {
  const r = recorder([]);
  const hb = new Heartbeater({
    api: r.api,
    nodeUuid: 'n1',
    callbackUrl: 'http://127.0.0.1:9999',
    token: () => 'tok',
    heartbeatTimeoutS: 600,
    log: silentLogger(),
    forcedGapMs: 200,
  });
  hb.start();
  await new Promise((res) => setTimeout(res, 50));
  hb.force(); // too soon after the first beat: waits for the gap
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(r.calls.length, 2);
  assert.ok(r.calls[1]!.at >= 195, `forced beat at ${r.calls[1]!.at} ms`);
  hb.force();
  hb.force(); // coalesced
  await new Promise((res) => setTimeout(res, 400));
  hb.stop();
  assert.equal(r.calls.length, 3);
});

test('while a command reports progress to a conductor that asked for it, beats come at the progress pace', async () => {
  for (const negotiated of [true, false]) {
    const r = recorder([]);
    const hb = new Heartbeater({
      api: r.api,
      nodeUuid: 'n1',
      callbackUrl: 'http://127.0.0.1:9999',
      token: () => 'tok',
      heartbeatTimeoutS: 600,
      log: silentLogger(),
      // Progress appears only after the first beat, as when a command starts between beats.
      progress: () => (r.calls.length > 0 ? { phase: 'writing', bytes_done: 1, bytes_total: 2 } : null),
      progressNegotiated: () => negotiated,
      progressIntervalMs: 100,
    });
    hb.start();
    await new Promise((res) => setTimeout(res, 450));
    hb.stop();
    if (negotiated) assert.ok(r.calls.length >= 4, `${r.calls.length} beats with progress`);
    else assert.equal(r.calls.length, 1, 'a stock conductor keeps IPA pacing');
  }
});
