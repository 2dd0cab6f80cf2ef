// One QEMU VM booting a kernel + initramfs directly (-kernel/-initrd), for the ramdisk test and
// benchmark. TCG (no KVM here), q35, a virtio disk and a virtio NIC on QEMU's user network with
// restrict=on: the guest reaches nothing but the two forwards set up here, the conductor address
// (10.0.2.100:80 -> a loopback port on the host, one `busybox nc` per connection) and the agent's
// API (a loopback port on the host -> guest :9999).
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';

export const CONDUCTOR_IP = '10.0.2.100';
export const GUEST_IP = '10.0.2.15';

export interface VmOptions {
  kernel: string;
  initramfs: string;
  /** Kernel command line after console=ttyS0 panic=-1. */
  append: string;
  mac: string;
  disk: string;
  /** Loopback port of the fake conductor the guest reaches as http://10.0.2.100. */
  conductorPort: number;
  /** Loopback port forwarded to the agent's API (guest :9999). */
  agentPort: number;
  consoleLog: string;
  memoryMiB?: number;
  /**
   * NICs placed before the conductor's NIC (so they come first, eth0...), each on its own
   * restricted user network (`net`, e.g. 10.0.3.0/24) with DHCP but no way to the conductor.
   */
  extraNics?: { mac: string; net: string }[];
}

export interface Vm {
  /** performance.now() just before QEMU was spawned. */
  startedAt: number;
  pid: number;
  console(): string;
  /** Resolves with performance.now() of the first console line matching re. */
  waitForConsole(re: RegExp, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

/** A loopback TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export function startVm(o: VmOptions): Vm {
  const netdev = [
    'user',
    'id=n0',
    'restrict=on',
    `guestfwd=tcp:${CONDUCTOR_IP}:80-cmd:busybox nc 127.0.0.1 ${o.conductorPort}`,
    `hostfwd=tcp:127.0.0.1:${o.agentPort}-:9999`,
  ].join(',');
  const extra = (o.extraNics ?? []).flatMap((n, i) => [
    '-netdev',
    `user,id=x${i},restrict=on,net=${n.net}`,
    '-device',
    `virtio-net-pci,netdev=x${i},mac=${n.mac}`,
  ]);
  const args = [
    '-machine',
    'q35',
    // -cpu max: node starts ~2.5x faster under TCG than with the default qemu64 model.
    '-cpu',
    'max',
    '-m',
    String(o.memoryMiB ?? 1024),
    '-nographic',
    '-monitor',
    'none',
    '-no-reboot',
    '-kernel',
    o.kernel,
    '-initrd',
    o.initramfs,
    '-append',
    `console=ttyS0 panic=-1 ${o.append}`,
    ...extra,
    '-netdev',
    netdev,
    '-device',
    `virtio-net-pci,netdev=n0,mac=${o.mac}`,
    '-drive',
    `file=${o.disk},format=raw,if=none,id=d0`,
    '-device',
    'virtio-blk-pci,drive=d0,serial=kiln-test-disk',
  ];
  const log = createWriteStream(o.consoleLog);
  const lines: { at: number; text: string }[] = [];
  const waiters: { re: RegExp; resolve: (at: number) => void }[] = [];
  let partial = '';
  const startedAt = performance.now();
  const child: ChildProcess = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onData = (buf: Buffer) => {
    log.write(buf);
    const at = performance.now();
    partial += buf.toString('utf8');
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const raw of parts) {
      const text = raw.replace(/\r$/, '');
      lines.push({ at, text });
      for (const w of [...waiters]) {
        if (w.re.test(text)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(at);
        }
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => {
    running = false;
  });

  return {
    startedAt,
    pid: child.pid ?? -1,
    console: () => lines.map((l) => l.text).join('\n'),
    waitForConsole(re, timeoutMs) {
      const hit = lines.find((l) => re.test(l.text));
      if (hit) return Promise.resolve(hit.at);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(entry), 1);
          reject(new Error(`console never showed ${re} within ${timeoutMs / 1000}s`));
        }, timeoutMs);
        const entry = {
          re,
          resolve: (at: number) => {
            clearTimeout(timer);
            resolve(at);
          },
        };
        waiters.push(entry);
        void exited.then(() => {
          if (!waiters.includes(entry)) return;
          waiters.splice(waiters.indexOf(entry), 1);
          clearTimeout(timer);
          reject(new Error(`QEMU exited before the console showed ${re}`));
        });
      });
    },
    async stop() {
      if (running && child.pid) {
        child.kill('SIGTERM');
        const killed = await Promise.race([
          exited.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 5000)),
        ]);
        if (!killed) child.kill('SIGKILL');
        await exited;
      }
      await new Promise<void>((r) => log.end(() => r()));
    },
  };
}
