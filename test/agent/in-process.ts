// The real agent in this process for tests that drive its command API over HTTP: standalone (no
// lookup, no heartbeats), on a loopback port, never powering this machine off, and never taken
// for the Kiln ramdisk unless a test says so, so destructive steps write only to the devices the
// test allows (--allow-device).
import { randomBytes } from 'node:crypto';
import { resolveSettings } from '../../agent/config.ts';
import { type AgentHandle, type RunAgentOptions, runAgent } from '../../agent/run.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import type { CommandRecord } from '../../shared/wire/ipa.ts';
import { waitFor } from '../support/wait.ts';

export interface InProcessAgent {
  agent: AgentHandle;
  url: string;
  /** The agent token commands carry (the test's own, or a fresh one). */
  token: string;
  /** POST /v1/commands?wait=true: the finished record (async commands included). */
  command(name: string, params: Record<string, unknown>): Promise<CommandRecord>;
  stop(): Promise<void>;
}

export async function startInProcessAgent(
  opts: {
    flags?: Record<string, string | string[] | boolean>;
    loadPlugins?: RunAgentOptions['loadPlugins'];
    inRamdisk?: boolean;
    pstoreDir?: RunAgentOptions['pstoreDir'];
    log?: Logger;
  } = {},
): Promise<InProcessAgent> {
  const flags: Record<string, string | string[] | boolean> = {
    'listen-host': '127.0.0.1',
    'listen-port': '0',
    'power-action': 'none',
    // Standalone refuses every command without a token, so a test agent always has one.
    'agent-token': randomBytes(24).toString('base64url'),
    ...opts.flags,
  };
  const agent = runAgent({
    settings: resolveSettings({ flags }),
    inRamdisk: opts.inRamdisk ?? false,
    log: opts.log ?? silentLogger(),
    powerOff: async () => {},
    loadPlugins: opts.loadPlugins,
    // Never this machine's own pstore, even when a test plays the ramdisk.
    pstoreDir: opts.pstoreDir ?? (async () => null),
  });
  const port = await waitFor('agent API listening', () => agent.state.port);
  const url = `http://127.0.0.1:${port}`;
  const token = String(flags['agent-token']);
  return {
    agent,
    url,
    token,
    command: async (name, params) => {
      const r = await fetch(`${url}/v1/commands/?wait=true&agent_token=${encodeURIComponent(token)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name, params }),
      });
      const body = await r.text();
      if (r.status !== 200) throw new Error(`POST ${name}: HTTP ${r.status} ${body}`);
      return JSON.parse(body) as CommandRecord;
    },
    stop: () => agent.stop(),
  };
}
