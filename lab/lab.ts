// A whole lab in one call: the bridge, N VMs with blank disks, and one virtual BMC per VM (IPMI
// through ipmi_sim, or Redfish through the emulator). What it made is recorded in
// <stateDir>/lab.json, so `cleanupLab(stateDir)` can remove the leftovers of a run that was
// SIGKILLed or crashed before its own teardown ran.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '../shared/log.ts';
import { silentLogger } from '../shared/log.ts';
import { bridgeName, cleanupLabNetwork, createLabNetwork, type LabNetwork } from './network.ts';
import { type RedfishVbmc, startRedfishVbmc } from './redfish-vbmc.ts';
import { cleanupStaleVbmc, type IpmiVbmc, startIpmiVbmc } from './vbmc.ts';
import { cleanupStaleVm, defineVm, labMac, type Vm } from './vm.ts';

export interface LabOptions {
  /** Lab number n: bridge kiln-lab<n>, subnet 172.30.<n>.0/24. */
  index?: number;
  stateDir: string;
  vms?: number;
  bmc?: 'ipmi' | 'redfish';
  firmware?: 'bios' | 'uefi';
  memoryMiB?: number;
  diskBytes?: number;
  log?: Logger;
}

export interface LabMachine {
  name: string;
  mac: string;
  vm: Vm;
  /** Kiln bmc_address (without password), e.g. ipmi://admin@127.0.0.1:40123. */
  bmcAddress: string;
  bmcUser: string;
  bmcPassword: string;
}

export interface Lab {
  network: LabNetwork;
  machines: LabMachine[];
  /** Power everything off and remove it all; the state folder keeps disks and console logs. */
  down(): Promise<void>;
}

interface LabRecord {
  bridge: string;
  vms: { name: string; dir: string; bmcDir: string }[];
}

function recordPath(stateDir: string): string {
  return join(stateDir, 'lab.json');
}

/** Remove whatever a previous run recorded in stateDir (VM processes, BMCs, bridge). Idempotent. */
export function cleanupLab(stateDir: string, index = 0): void {
  const dir = resolve(stateDir);
  let rec: LabRecord = { bridge: bridgeName(index), vms: [] };
  if (existsSync(recordPath(dir))) {
    try {
      rec = JSON.parse(readFileSync(recordPath(dir), 'utf8')) as LabRecord;
    } catch {
      // unreadable record: fall back to the bridge name for this index
    }
  }
  for (const v of rec.vms) {
    cleanupStaleVm(v.dir);
    cleanupStaleVbmc(v.bmcDir);
  }
  cleanupLabNetwork(rec.bridge, join(dir, 'net'));
  rmSync(recordPath(dir), { force: true });
}

export async function startLab(opts: LabOptions): Promise<Lab> {
  const index = opts.index ?? 0;
  const stateDir = resolve(opts.stateDir);
  const log = opts.log ?? silentLogger();
  mkdirSync(stateDir, { recursive: true });
  cleanupLab(stateDir, index);

  const network = createLabNetwork({ index, stateDir: join(stateDir, 'net'), log });
  const rec: LabRecord = { bridge: network.bridge, vms: [] };
  const machines: LabMachine[] = [];
  const stops: (() => Promise<void> | void)[] = [];
  const down = async () => {
    for (const s of stops.reverse()) await s();
    for (const m of machines) m.vm.destroy();
    network.down();
    rmSync(recordPath(stateDir), { force: true });
  };
  try {
    for (let i = 0; i < (opts.vms ?? 1); i++) {
      const name = `vm${i}`;
      const dir = join(stateDir, name);
      const bmcDir = join(dir, 'bmc');
      rec.vms.push({ name, dir, bmcDir });
      writeFileSync(recordPath(stateDir), `${JSON.stringify(rec, null, 2)}\n`);
      const mac = labMac(index, i);
      const vm = await defineVm({
        name,
        dir,
        tap: network.addTap(i),
        mac,
        memoryMiB: opts.memoryMiB,
        diskBytes: opts.diskBytes,
        firmware: opts.firmware,
        log,
      });
      const password = randomBytes(12).toString('base64url');
      if ((opts.bmc ?? 'ipmi') === 'ipmi') {
        const b: IpmiVbmc = await startIpmiVbmc({ vm, dir: bmcDir, password, log });
        stops.push(() => b.stop());
        machines.push({
          name,
          mac,
          vm,
          bmcAddress: `ipmi://${b.user}@127.0.0.1:${b.port}`,
          bmcUser: b.user,
          bmcPassword: password,
        });
      } else {
        const b: RedfishVbmc = await startRedfishVbmc({ vm, password, log });
        stops.push(() => b.stop());
        machines.push({
          name,
          mac,
          vm,
          bmcAddress: b.address.replace('redfish+http://', 'redfish+http://admin@'),
          bmcUser: 'admin',
          bmcPassword: password,
        });
      }
    }
  } catch (e) {
    await down();
    throw e;
  }
  return { network, machines, down };
}
