// Which QEMU accelerator the lab's VMs use. /dev/kvm being there is not enough: nested setups can
// open it and still abort at vCPU reset (seen: "failed to set MSR 0x10a"), so KVM is probed once
// with a throwaway paused QEMU. KILN_LAB_ACCEL=kvm|tcg skips the probe.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export type Accel = 'kvm' | 'tcg';

let cached: Promise<Accel> | undefined;

function kvmDeviceUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Start a paused KVM guest; if it is still alive after a moment, KVM works. */
function probeKvm(qemu: string): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn(
      qemu,
      [
        '-accel',
        'kvm',
        '-machine',
        'q35',
        '-cpu',
        'host',
        '-m',
        '64',
        '-nodefaults',
        '-display',
        'none',
        '-monitor',
        'none',
        '-serial',
        'none',
        '-S',
      ],
      { stdio: 'ignore' },
    );
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      resolve(true);
    }, 1500);
    p.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
    p.once('exit', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export function detectAccel(qemu = 'qemu-system-x86_64'): Promise<Accel> {
  const forced = process.env.KILN_LAB_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return Promise.resolve(forced);
  cached ??= kvmDeviceUsable()
    ? probeKvm(qemu).then((ok) => (ok ? 'kvm' : 'tcg'))
    : Promise.resolve<Accel>('tcg');
  return cached;
}
