// Starts a real BMC for tests: OpenIPMI's ipmi_sim on loopback, with power, reset and boot device
// handled by a small chassis_control script that keeps its state in files. Nothing is virtualised:
// ipmitool speaks RMCP+ to ipmi_sim over UDP exactly as it would to a server's BMC.
// The state files double as test probes ("power" holds 0/1, "bootdev" the last selector) and
// "delay" (seconds, may be fractional) makes every chassis_control call sleep, i.e. a slow BMC.

import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeUdpPort } from '../../lab/vbmc.ts';

export interface IpmiSim {
  host: string;
  port: number;
  user: string;
  password: string;
  dir: string;
  /** Power as the simulated chassis sees it, read from the script's state file. */
  power(): 'on' | 'off';
  /** Flip power behind the BMC client's back (what a person at the front panel would do). */
  setPower(state: 'on' | 'off'): void;
  /** Last boot selector ipmi_sim handed to chassis_control: none, pxe, default (= disk), cdrom, bios. */
  bootdev(): string;
  /** Every chassis_control call, one line each, e.g. "set power 1". */
  calls(): string[];
  /** Make each chassis_control call sleep this long. */
  setDelay(seconds: number): void;
  stop(): Promise<void>;
}

export interface IpmiSimOptions {
  user?: string;
  password?: string;
  initialPower?: 'on' | 'off';
}

const EMU = `# One BMC at IPMB 0x20.
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`;

// ipmi_sim runs: <prog> <dev> get <parm>... | set <parm> <val>... | check ...
// "bootdev disk" arrives as "boot default" (IPMI boot device selector 2).
function chassisScript(dir: string): string {
  return `#!/bin/sh
D='${dir}'
dev=$1; op=$2; shift 2
echo "$op $*" >> "$D/calls"
d=$(cat "$D/delay" 2>/dev/null)
[ -n "$d" ] && [ "$d" != 0 ] && sleep "$d"
case "$op" in
  get)
    for p in "$@"; do
      case "$p" in
        power) echo "power:$(cat "$D/power")" ;;
        boot) echo "boot:$(cat "$D/bootdev" 2>/dev/null || echo none)" ;;
        *) echo "Invalid parameter: $p"; exit 1 ;;
      esac
    done ;;
  set)
    while [ $# -gt 0 ]; do
      p=$1; v=$2; shift 2
      case "$p" in
        power) echo "$v" > "$D/power" ;;
        reset) [ "$v" = 1 ] && echo reset >> "$D/resets" ;;
        boot) echo "$v" > "$D/bootdev" ;;
        shutdown) echo 0 > "$D/power" ;;
        identify) shift ;;
        *) echo "Invalid parameter: $p"; exit 1 ;;
      esac
    done ;;
  check) exit 0 ;;
  *) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
`;
}

function lanConf(dir: string, port: number, user: string, password: string): string {
  return `name "kilntest"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 ${port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "${dir}/chassis-control.sh 0x20"
  user 1 true  ""      "test"     user   10 none md2 md5 straight
  user 2 true  "${user}" "${password}" admin  10 none md2 md5 straight
`;
}

async function ipmitoolAnswers(port: number, user: string, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn(
      'ipmitool',
      [
        '-I',
        'lanplus',
        '-C',
        '3',
        '-N',
        '1',
        '-R',
        '1',
        '-H',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        user,
        '-E',
        'chassis',
        'power',
        'status',
      ],
      { env: { ...process.env, IPMI_PASSWORD: password }, stdio: 'ignore' },
    );
    p.on('exit', (code) => resolve(code === 0));
    p.on('error', () => resolve(false));
  });
}

export async function startIpmiSim(opts: IpmiSimOptions = {}): Promise<IpmiSim> {
  const user = opts.user ?? 'admin';
  const password = opts.password ?? 'kiln-test-secret';
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ipmisim-'));
  mkdirSync(join(dir, 'state'));
  writeFileSync(join(dir, 'power'), opts.initialPower === 'on' ? '1\n' : '0\n');
  writeFileSync(join(dir, 'sim.emu'), EMU);
  writeFileSync(join(dir, 'chassis-control.sh'), chassisScript(dir));
  chmodSync(join(dir, 'chassis-control.sh'), 0o755);
  const port = await freeUdpPort();
  writeFileSync(join(dir, 'lan.conf'), lanConf(dir, port, user, password));

  const child: ChildProcess = spawn(
    'ipmi_sim',
    ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'sim.emu'), '-s', join(dir, 'state'), '-n'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  // ipmi_sim has no readiness signal; poll with the real client until it answers.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`ipmi_sim exited at start: ${stderr.trim()}`);
    }
    if (await ipmitoolAnswers(port, user, password)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`ipmi_sim on 127.0.0.1:${port} did not answer within 10 s: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  writeFileSync(join(dir, 'calls'), '');

  const read = (f: string, dflt: string): string => {
    try {
      return readFileSync(join(dir, f), 'utf8').trim();
    } catch {
      return dflt;
    }
  };
  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    dir,
    power: () => (read('power', '0') === '1' ? 'on' : 'off'),
    setPower: (state) => writeFileSync(join(dir, 'power'), state === 'on' ? '1\n' : '0\n'),
    bootdev: () => read('bootdev', 'none'),
    calls: () => read('calls', '').split('\n').filter(Boolean),
    setDelay: (seconds) => writeFileSync(join(dir, 'delay'), `${seconds}\n`),
    stop,
  };
}

export { freeUdpPort };
