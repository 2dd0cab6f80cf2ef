// The lab's network: one isolated Linux bridge with a private IPv4 subnet and an IPv6 ULA, plus
// one tap per VM. There is no uplink, nothing is routed or NATed (ip_forward is left alone), so
// DHCP offers and PXE traffic stay between the conductor (bound to the bridge address) and the
// VMs. radvd announces the ULA prefix on the bridge, with router lifetime 0 (not a default router),
// because iPXE's "Configuring" waits about 13 s for IPv6 autoconfiguration when no router
// advertisement ever arrives; with one it finishes in milliseconds.
//
// What the conductor's DHCP server should send to the VMs (measured with QEMU's iPXE ROM):
//   - iPXE option 175, sub-option 176 (no-pxedhcp) = 1: iPXE stops waiting ~2 s for ProxyDHCP;
//   - no ICMP probe before the first offer (dnsmasq's no-ping saves ~3 s);
//   - next-server / option 66 = the bridge address, option 67 = the iPXE script (HTTP, no HTTPS:
//     the stock iPXE ROM has no TLS).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../shared/log.ts';
import { silentLogger } from '../shared/log.ts';
import { onTeardown, type Registration } from './cleanup.ts';
import { findProcesses, pidRunning, readPidFile, sleepSync, stopPidFile, stopPids } from './proc.ts';

export interface LabNetworkOptions {
  /** Lab number n (0–255): bridge kiln-lab<n>, subnet 172.30.<n>.0/24, ULA fd6b:696c:6e00:<n>::/64. */
  index?: number;
  /** Override the bridge name (at most 11 characters, so tap names fit in 15). */
  bridge?: string;
  /** Override the IPv4 prefix: the first three octets, e.g. "10.77.3". The host is .1. */
  ipv4Prefix?: string;
  /** Where pid files, radvd's config and log live. */
  stateDir: string;
  /** Announce the ULA with radvd (default true when radvd is installed). */
  routerAdvertisements?: boolean;
  log?: Logger;
}

export interface LabNetwork {
  bridge: string;
  /** The host's address on the bridge: where the conductor binds DHCP/TFTP/HTTP. */
  hostIp: string;
  prefixLength: number;
  /** e.g. 172.30.0.0/24 */
  subnet: string;
  /** Addresses the conductor may lease to VMs (host .1 excluded). */
  dhcpRange: { first: string; last: string };
  hostIpv6: string;
  ipv6Prefix: string;
  /** True when radvd answers router solicitations on the bridge. */
  routerAdvertisements: boolean;
  /** Create (or re-create) a tap for VM number i and attach it to the bridge. */
  addTap(i: number): string;
  removeTap(name: string): void;
  taps(): string[];
  /** Remove the taps, radvd and the bridge. Idempotent. */
  down(): void;
}

export class LabNetworkError extends Error {
  readonly code = 'LAB_NETWORK_FAILED';
}

function ip(args: string[], opts: { allowFail?: boolean } = {}): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error) throw new LabNetworkError(`ip ${args.join(' ')}: ${r.error.message}; install iproute2`);
  if (r.status !== 0 && !opts.allowFail) {
    throw new LabNetworkError(
      `ip ${args.join(' ')} failed: ${r.stderr.trim()}; the lab network needs root (CAP_NET_ADMIN)`,
    );
  }
  return r.stdout;
}

function sysctl(key: string, value: string): void {
  try {
    writeFileSync(`/proc/sys/${key.split('.').join('/')}`, value);
  } catch {
    // Missing knobs (IPv6 disabled on the host) only cost boot time, not correctness.
  }
}

export function bridgeName(index: number): string {
  return `kiln-lab${index}`;
}

export function tapName(bridge: string, i: number): string {
  return `${bridge}-t${i}`;
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > 255) {
    throw new LabNetworkError(`lab index ${index} is not in 0–255`);
  }
}

/** Links enslaved to the bridge or named like its taps, present now. */
function linksOf(bridge: string): string[] {
  const out = ip(['-o', 'link', 'show'], { allowFail: true });
  const names = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)[@:]/.exec(line);
    if (!m) continue;
    const name = m[1]!;
    if (name.startsWith(`${bridge}-t`) || line.includes(` master ${bridge} `)) names.add(name);
  }
  return [...names];
}

function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0;
}

const RADVD_MARKER = (bridge: string) => `radvd-${bridge}.conf`;

/**
 * Remove whatever a previous (possibly crashed) lab left for this bridge: radvd, taps, the bridge.
 * Safe to call when nothing is there.
 */
export function cleanupLabNetwork(bridge: string, stateDir: string): void {
  stopPidFile(join(stateDir, 'radvd.pid'), RADVD_MARKER(bridge), 3000);
  // A run with another state folder may have left its radvd for this bridge too.
  stopPids(findProcesses('radvd', RADVD_MARKER(bridge)), RADVD_MARKER(bridge));
  for (const link of linksOf(bridge)) ip(['link', 'del', 'dev', link], { allowFail: true });
  if (linkExists(bridge)) ip(['link', 'del', 'dev', bridge], { allowFail: true });
}

function startRadvd(bridge: string, prefix: string, stateDir: string, log: Logger): boolean {
  const which = spawnSync('sh', ['-c', 'command -v radvd'], { encoding: 'utf8' });
  if (which.status !== 0) {
    log.warn({ bridge }, 'radvd not installed: iPXE will wait ~13 s for IPv6 autoconfiguration per boot');
    return false;
  }
  const conf = join(stateDir, RADVD_MARKER(bridge));
  // Router lifetime 0: hosts learn the on-link prefix but nobody takes the lab for a router.
  writeFileSync(
    conf,
    `interface ${bridge} {
  AdvSendAdvert on;
  IgnoreIfMissing on;
  AdvDefaultLifetime 0;
  MinRtrAdvInterval 3;
  MaxRtrAdvInterval 10;
  prefix ${prefix} {
    AdvOnLink on;
    AdvAutonomous on;
  };
};
`,
  );
  chmodSync(conf, 0o644);
  const pidFile = join(stateDir, 'radvd.pid');
  const logFile = join(stateDir, 'radvd.log');
  rmSync(pidFile, { force: true });
  const child = spawn(
    'radvd',
    ['--nodaemon', '--config', conf, '--pidfile', pidFile, '--logmethod', 'logfile', '--logfile', logFile],
    { detached: true, stdio: 'ignore' },
  );
  child.unref();
  if (child.pid) writeFileSync(pidFile, `${child.pid}\n`);
  // radvd checks its config and the interface right away; give it a moment to fail loudly.
  const deadline = Date.now() + 1500;
  while (Date.now() < deadline) {
    sleepSync(100);
    const pid = readPidFile(pidFile);
    if (pid === null || !pidRunning(pid, RADVD_MARKER(bridge))) {
      let tail = '';
      try {
        tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ');
      } catch {
        // no log yet
      }
      log.warn({ bridge, radvdLog: tail }, 'radvd exited at start: iPXE boots will be ~13 s slower');
      return false;
    }
  }
  return true;
}

/** Create the lab bridge. Leftovers of an earlier run with the same bridge name are removed first. */
export function createLabNetwork(opts: LabNetworkOptions): LabNetwork {
  const index = opts.index ?? 0;
  checkIndex(index);
  const log = (opts.log ?? silentLogger()).child({ component: 'lab-network' });
  const bridge = opts.bridge ?? bridgeName(index);
  if (bridge.length > 11) throw new LabNetworkError(`bridge name ${bridge} is longer than 11 characters`);
  const v4 = opts.ipv4Prefix ?? `172.30.${index}`;
  if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4)) {
    throw new LabNetworkError(`ipv4Prefix ${v4} is not three octets like 172.30.0`);
  }
  const ipv6Prefix = `fd6b:696c:6e00:${index.toString(16)}::/64`;
  const hostIpv6 = `fd6b:696c:6e00:${index.toString(16)}::1`;
  mkdirSync(opts.stateDir, { recursive: true });

  cleanupLabNetwork(bridge, opts.stateDir);
  const teardown: Registration = onTeardown(`bridge ${bridge}`, () =>
    cleanupLabNetwork(bridge, opts.stateDir),
  );
  try {
    ip(['link', 'add', 'name', bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    // The host must neither route for the lab nor configure itself from what VMs announce.
    sysctl(`net.ipv6.conf.${bridge}.forwarding`, '0');
    sysctl(`net.ipv6.conf.${bridge}.accept_ra`, '0');
    sysctl(`net.ipv6.conf.${bridge}.autoconf`, '0');
    ip(['addr', 'add', `${v4}.1/24`, 'dev', bridge]);
    ip(['-6', 'addr', 'add', `${hostIpv6}/64`, 'dev', bridge, 'nodad'], { allowFail: true });
    ip(['link', 'set', 'dev', bridge, 'up']);
  } catch (e) {
    teardown.runNow();
    throw e;
  }
  const ra = opts.routerAdvertisements !== false && startRadvd(bridge, ipv6Prefix, opts.stateDir, log);
  log.info({ bridge, hostIp: `${v4}.1`, ipv6Prefix, ra }, 'lab bridge up');

  const taps = new Set<string>();
  return {
    bridge,
    hostIp: `${v4}.1`,
    prefixLength: 24,
    subnet: `${v4}.0/24`,
    dhcpRange: { first: `${v4}.100`, last: `${v4}.199` },
    hostIpv6,
    ipv6Prefix,
    routerAdvertisements: ra,
    addTap(i: number): string {
      const name = tapName(bridge, i);
      if (name.length > 15) throw new LabNetworkError(`tap name ${name} is longer than 15 characters`);
      ip(['link', 'del', 'dev', name], { allowFail: true });
      ip(['tuntap', 'add', 'dev', name, 'mode', 'tap']);
      // A tap is a bridge port only: no addresses of its own, no IPv6 chatter from the host.
      sysctl(`net.ipv6.conf.${name}.disable_ipv6`, '1');
      ip(['link', 'set', 'dev', name, 'master', bridge]);
      ip(['link', 'set', 'dev', name, 'up']);
      taps.add(name);
      return name;
    },
    removeTap(name: string): void {
      ip(['link', 'del', 'dev', name], { allowFail: true });
      taps.delete(name);
    },
    taps: () => [...taps],
    down(): void {
      teardown.runNow();
      taps.clear();
      log.info({ bridge }, 'lab bridge removed');
    },
  };
}
