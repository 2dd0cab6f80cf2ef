// One lab VM: a QEMU x86_64 machine with BIOS (SeaBIOS, the default) or UEFI (OVMF) firmware, a
// virtio-net NIC on its own tap with a fixed MAC and QEMU's iPXE ROM, a sparse raw disk in the
// VM's state folder, its serial console on a unix socket and in a log file, and a QMP socket.
// Power goes through the VM's generated power script (see power-script.ts), which is also what
// its virtual BMC runs.
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import { run as defaultRun, type Runner } from '../shared/exec.ts';
import type { Logger } from '../shared/log.ts';
import { silentLogger } from '../shared/log.ts';
import { type Accel, detectAccel } from './accel.ts';
import { onTeardown, type Registration } from './cleanup.ts';
import { renderPowerScript } from './power-script.ts';
import { stopPidFile } from './proc.ts';

export type VmBootDevice = 'pxe' | 'disk' | 'cdrom' | 'none';

export interface VmSpec {
  /** Short name, used in file names and logs (letters, digits, '-', '_'). */
  name: string;
  /** State folder of this VM; created if missing. */
  dir: string;
  /** The tap the NIC is attached to (see LabNetwork.addTap). */
  tap: string;
  mac: string;
  memoryMiB?: number;
  cpus?: number;
  /** Size of the VM's disk, created sparse (raw) if it does not exist yet. Default 2 GiB. */
  diskBytes?: number;
  /** Further drives, e.g. a config drive ISO; attached as virtio disks after the main one. */
  extraDrives?: { path: string; readOnly?: boolean; format?: 'raw' | 'qcow2' }[];
  /** 'auto' (the default) probes KVM and falls back to TCG. */
  accel?: Accel | 'auto';
  /**
   * bios (default): SeaBIOS. uefi: OVMF with the VM's own copy of the variable store; needs the
   * ovmf package. QEMU's NIC ROM carries iPXE for both.
   */
  firmware?: 'bios' | 'uefi';
  /**
   * SMBIOS system UUID and serial number, distinct per VM as on real servers (QEMU without them
   * reports "Not Settable"). Default: derived from the MAC, so a VM keeps its identity.
   */
  systemUuid?: string;
  serial?: string;
  /** NIC model; virtio-net-pci boots ~5 s faster than e1000 under TCG. */
  nic?: 'virtio-net-pci' | 'e1000';
  qemu?: string;
  log?: Logger;
  run?: Runner;
}

export interface ConsoleMatch {
  match: RegExpExecArray;
  /** Milliseconds from the call (or from `startedAt`) until the line was seen. */
  elapsedMs: number;
}

export class VmError extends Error {
  readonly code = 'LAB_VM_FAILED';
}

/** MAC of VM i in lab n: 52:54:00 (QEMU's OUI), then 6b ('k'), n, i. */
/** A stable SMBIOS identity for a lab VM, from its MAC: "KILN" in the UUID's first field. */
export function labIdentity(mac: string): { systemUuid: string; serial: string } {
  const hex = mac.replace(/:/g, '').toLowerCase();
  return { systemUuid: `4b494c4e-0000-4000-8000-${hex}`, serial: `KILN-LAB-${hex.toUpperCase()}` };
}

export function labMac(labIndex: number, vmIndex: number): string {
  const h = (x: number) => (x & 0xff).toString(16).padStart(2, '0');
  return `52:54:00:6b:${h(labIndex)}:${h(vmIndex)}`;
}

const NIC_ROMS: Record<NonNullable<VmSpec['nic']>, string> = {
  'virtio-net-pci': 'efi-virtio.rom',
  e1000: 'efi-e1000.rom',
};
const ROM_DIRS = ['/usr/lib/ipxe/qemu', '/usr/share/qemu'];
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

function findRom(file: string): string {
  for (const d of ROM_DIRS) if (existsSync(join(d, file))) return join(d, file);
  throw new VmError(
    `QEMU's iPXE ROM ${file} is missing (looked in ${ROM_DIRS.join(', ')}); install it with: apt-get install -y ipxe-qemu`,
  );
}

export class Vm {
  readonly name: string;
  readonly dir: string;
  readonly mac: string;
  readonly tap: string;
  readonly diskPath: string;
  readonly consolePath: string;
  /** Interactive serial console (unix socket; `node lab/console-attach.mjs <socket>`). */
  readonly consoleSocket: string;
  readonly qmpSocket: string;
  /** The power script: `<powerScript> on|off|soft|reset|status|bootdev ...`. */
  readonly powerScript: string;
  readonly accel: Accel;
  private readonly run: Runner;
  private readonly log: Logger;
  private readonly teardown: Registration;

  constructor(
    spec: VmSpec,
    accel: Accel,
    paths: { disk: string; console: string; consoleSocket: string; qmp: string; power: string },
  ) {
    this.name = spec.name;
    this.dir = spec.dir;
    this.mac = spec.mac;
    this.tap = spec.tap;
    this.accel = accel;
    this.diskPath = paths.disk;
    this.consolePath = paths.console;
    this.consoleSocket = paths.consoleSocket;
    this.qmpSocket = paths.qmp;
    this.powerScript = paths.power;
    this.run = spec.run ?? defaultRun;
    this.log = (spec.log ?? silentLogger()).child({ component: 'lab-vm', vm: spec.name });
    this.teardown = onTeardown(`VM ${spec.name}`, () => this.killNow());
  }

  private async power(args: string[]): Promise<string> {
    try {
      const r = await this.run(this.powerScript, args, { timeoutMs: 30_000 });
      return r.stdout.trim();
    } catch (e) {
      throw new VmError(`VM ${this.name}: power ${args.join(' ')} failed: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  async powerOn(): Promise<void> {
    await this.power(['on']);
    this.log.info({ accel: this.accel }, 'VM powered on');
  }

  async powerOff(): Promise<void> {
    await this.power(['off']);
    this.log.info({}, 'VM powered off');
  }

  /** ACPI power button: the guest decides whether to shut down. */
  async softOff(): Promise<void> {
    await this.power(['soft']);
  }

  /** Cold reset: a new QEMU process, so a changed boot device takes effect. */
  async reset(): Promise<void> {
    await this.power(['reset']);
    this.log.info({}, 'VM reset');
  }

  async powerState(): Promise<'on' | 'off'> {
    return (await this.power(['status'])) === 'on' ? 'on' : 'off';
  }

  async setBootDevice(device: VmBootDevice, opts: { persistent?: boolean } = {}): Promise<void> {
    await this.power(['bootdev', device, opts.persistent ? 'persistent' : 'once']);
    this.log.info({ device, persistent: Boolean(opts.persistent) }, 'VM boot device set');
  }

  async bootDevice(): Promise<{ persistent: VmBootDevice; next: VmBootDevice | null }> {
    const [p, n] = (await this.power(['bootdev'])).split(' ');
    return { persistent: (p ?? 'none') as VmBootDevice, next: n && n !== '-' ? (n as VmBootDevice) : null };
  }

  /** Current length of the console log: pass it as `since` to wait only for newer output. */
  consoleMark(): number {
    try {
      return statSync(this.consolePath).size;
    } catch {
      return 0;
    }
  }

  /** Console output from byte offset `since` to now. */
  readConsole(since = 0): string {
    let fd: number;
    try {
      fd = openSync(this.consolePath, 'r');
    } catch {
      return '';
    }
    try {
      const size = statSync(this.consolePath).size;
      if (size <= since) return '';
      const buf = Buffer.alloc(size - since);
      readSync(fd, buf, 0, buf.length, since);
      return buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Wait until the console (from byte `since`, default: everything) matches re. Polls the log file,
   * which QEMU appends to across power cycles. Rejects after timeoutMs with the console's tail.
   */
  async waitForConsole(
    re: RegExp,
    opts: { timeoutMs?: number; since?: number; signal?: AbortSignal } = {},
  ): Promise<ConsoleMatch> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const since = opts.since ?? 0;
    const started = Date.now();
    const pattern = new RegExp(re.source, re.flags.replace('g', ''));
    for (;;) {
      const text = this.readConsole(since);
      const m = pattern.exec(text);
      if (m) return { match: m, elapsedMs: Date.now() - started };
      if (opts.signal?.aborted) throw new VmError(`VM ${this.name}: waiting for ${re} was aborted`);
      if (Date.now() - started > timeoutMs) {
        const tail = text
          .replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[a-zA-Z]`, 'g'), '')
          .slice(-600);
        throw new VmError(
          `VM ${this.name}: console did not show ${re} within ${Math.round(timeoutMs / 1000)} s; last output:\n${tail}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Type text on the VM's serial console (e.g. "uname -a\r"). The VM must be on. */
  async sendConsole(text: string): Promise<void> {
    await new Promise<void>((res, rej) => {
      const s = createConnection(this.consoleSocket);
      s.once('error', (e) =>
        rej(
          new VmError(
            `VM ${this.name}: console socket ${this.consoleSocket}: ${e.message}; is it powered on?`,
          ),
        ),
      );
      s.once('connect', () => s.end(text, () => res()));
    });
  }

  /** Stop QEMU now, synchronously (teardown path; no guest shutdown). */
  killNow(): void {
    stopPidFile(join(this.dir, 'qemu.pid'), this.qmpSocket, 3000);
  }

  /** Power off and forget the teardown registration. The state folder stays (disk, logs). */
  destroy(): void {
    this.teardown.runNow();
  }
}

/** Stop a VM's QEMU that a crashed run left behind in dir (no-op when there is none). */
export function cleanupStaleVm(dir: string): boolean {
  const d = resolve(dir);
  return stopPidFile(join(d, 'qemu.pid'), join(d, 'qmp.sock'), 3000);
}

/**
 * Prepare a VM: state folder, sparse disk (kept if it exists), power script. Does not power on.
 */
export async function defineVm(spec: VmSpec): Promise<Vm> {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(spec.name)) {
    throw new VmError(`VM name "${spec.name}" must be 1–32 letters, digits, '-' or '_'`);
  }
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(spec.mac)) {
    throw new VmError(`VM ${spec.name}: MAC "${spec.mac}" is not lower-case aa:bb:cc:dd:ee:ff`);
  }
  const dir = resolve(spec.dir);
  mkdirSync(dir, { recursive: true });
  const qmp = join(dir, 'qmp.sock');
  if (Buffer.byteLength(qmp) > 107) {
    throw new VmError(`VM ${spec.name}: ${qmp} is too long for a unix socket; use a shorter state folder`);
  }
  const qemu = spec.qemu ?? 'qemu-system-x86_64';
  const nic = spec.nic ?? 'virtio-net-pci';
  findRom(NIC_ROMS[nic]);
  const accel = spec.accel && spec.accel !== 'auto' ? spec.accel : await detectAccel(qemu);

  const disk = join(dir, 'disk.raw');
  if (!existsSync(disk)) {
    const fd = openSync(disk, 'w');
    closeSync(fd);
    truncateSync(disk, spec.diskBytes ?? 2 * 1024 ** 3);
  }
  const consolePath = join(dir, 'console.log');
  const consoleSocket = join(dir, 'console.sock');
  const firmware = spec.firmware ?? 'bios';
  const firmwareArgs: string[] = [];
  if (firmware === 'uefi') {
    if (!existsSync(OVMF_CODE) || !existsSync(OVMF_VARS)) {
      throw new VmError(`VM ${spec.name}: UEFI needs ${OVMF_CODE}; install it with: apt-get install -y ovmf`);
    }
    // Each VM keeps its own NVRAM, as a server keeps its own UEFI settings.
    const vars = join(dir, 'OVMF_VARS.fd');
    if (!existsSync(vars)) copyFileSync(OVMF_VARS, vars);
    firmwareArgs.push(
      '-drive',
      `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
      '-drive',
      `if=pflash,format=raw,file=${vars}`,
    );
  }
  const netDevice = `${nic},netdev=net0,mac=${spec.mac}`;
  const diskFile = `file=${disk},format=raw,cache=writeback,discard=unmap`;
  // BIOS picks the boot device with -boot; OVMF ignores that, so under UEFI the power script adds
  // the NIC and disk devices itself, with bootindex set per power-on.
  const bootDevices =
    firmware === 'uefi'
      ? ['-drive', `${diskFile},if=none,id=disk0`]
      : ['-device', netDevice, '-drive', `${diskFile},if=virtio`];

  const args = [
    '-name',
    `kiln-lab-${spec.name}`,
    '-machine',
    'q35',
    '-accel',
    accel,
    '-cpu',
    accel === 'kvm' ? 'host' : 'max',
    '-m',
    String(spec.memoryMiB ?? 1024),
    '-smp',
    String(spec.cpus ?? 1),
    '-uuid',
    spec.systemUuid ?? labIdentity(spec.mac).systemUuid,
    '-smbios',
    `type=1,serial=${spec.serial ?? labIdentity(spec.mac).serial}`,
    // -nographic (not -display none): QEMU then tells SeaBIOS to mirror its text, and iPXE's,
    // to the serial port, which is where the console log comes from.
    '-nographic',
    '-monitor',
    'none',
    // The serial port is a unix socket one can attach to (console-attach.mjs) and, whether or
    // not anyone is attached, is also appended to the console log.
    '-chardev',
    `socket,id=ser0,path=${consoleSocket},server=on,wait=off,logfile=${consolePath},logappend=on`,
    '-serial',
    'chardev:ser0',
    '-qmp',
    `unix:${qmp},server=on,wait=off`,
    ...firmwareArgs,
    '-netdev',
    `tap,id=net0,ifname=${spec.tap},script=no,downscript=no`,
    ...bootDevices,
    ...(spec.extraDrives ?? []).flatMap((d) => [
      '-drive',
      `file=${resolve(d.path)},format=${d.format ?? 'raw'},if=virtio${d.readOnly ? ',readonly=on' : ''}`,
    ]),
  ];
  const power = join(dir, 'power');
  writeFileSync(
    power,
    renderPowerScript({
      firmware,
      netDevice,
      diskDevice: 'virtio-blk-pci,drive=disk0',
      dir,
      name: spec.name,
      qemu,
      args,
      marker: qmp,
      qmpSocket: qmp,
      node: process.execPath,
      qmpClient:
        [
          join(import.meta.dirname, 'qmp-client.mjs'),
          join(import.meta.dirname, '..', 'lab', 'qmp-client.mjs'),
        ].find((f) => existsSync(f)) ?? join(import.meta.dirname, 'qmp-client.mjs'),
    }),
    { mode: 0o755 },
  );
  writeFileSync(
    join(dir, 'vm.json'),
    `${JSON.stringify({ name: spec.name, mac: spec.mac, tap: spec.tap, firmware, accel, qemu, args }, null, 2)}\n`,
  );
  return new Vm({ ...spec, dir }, accel, { disk, console: consolePath, consoleSocket, qmp, power });
}
