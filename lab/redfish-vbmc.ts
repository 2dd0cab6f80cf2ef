// The Redfish alternative to the IPMI vBMC: Kiln's Redfish BMC emulator (tools/redfish-bmc),
// in-process, with hooks that drive the VM's power script. Unlike ipmi_sim it keeps Redfish's
// Once/Continuous boot overrides apart, so one-time PXE works as on real servers:
//   Reset On / ForceOn              → power on (the override the emulator says this boot uses)
//   ForceOff                        → power off
//   GracefulShutdown                → ACPI power button
//   ForceRestart / GracefulRestart / PowerCycle → cold reset (new QEMU process)
//   PowerState                      → read from the VM (a guest that powered itself off shows Off)
import type { Logger } from '../shared/log.ts';
import { silentLogger } from '../shared/log.ts';
import { type RedfishBmc, type ResetEvent, startRedfishBmc } from '../tools/redfish-bmc/server.ts';
import { onTeardown } from './cleanup.ts';
import type { Vm, VmBootDevice } from './vm.ts';

export interface RedfishVbmcOptions {
  vm: Pick<Vm, 'name' | 'powerOn' | 'powerOff' | 'softOff' | 'reset' | 'powerState' | 'setBootDevice'>;
  port?: number;
  user?: string;
  password: string;
  log?: Logger;
}

export interface RedfishVbmc {
  bmc: RedfishBmc;
  /** redfish+http URL of the VM's ComputerSystem, as Kiln's bmc_address takes it. */
  address: string;
  stop(): Promise<void>;
}

const TARGET_TO_DEVICE: Record<string, VmBootDevice> = { Pxe: 'pxe', Hdd: 'disk', Cd: 'cdrom', None: 'none' };

export async function applyReset(vm: RedfishVbmcOptions['vm'], e: ResetEvent): Promise<void> {
  if (e.resetType === 'GracefulShutdown') return vm.softOff();
  if (e.to === 'Off') return vm.powerOff();
  if (!e.boots) return;
  // The emulator resolved Once vs Continuous already: this boot uses bootTarget, whichever it is.
  await vm.setBootDevice(TARGET_TO_DEVICE[e.bootTarget] ?? 'none');
  if (e.from === 'On') await vm.reset();
  else await vm.powerOn();
}

export async function startRedfishVbmc(opts: RedfishVbmcOptions): Promise<RedfishVbmc> {
  const log = (opts.log ?? silentLogger()).child({ component: 'lab-redfish-vbmc', vm: opts.vm.name });
  const bmc = await startRedfishBmc({
    host: '127.0.0.1',
    port: opts.port ?? 0,
    user: opts.user ?? 'admin',
    password: opts.password,
    systems: ['1'],
    initialPower: (await opts.vm.powerState()) === 'on' ? 'On' : 'Off',
    hooks: {
      onReset: (_id, e) => applyReset(opts.vm, e),
      readPower: async () => ((await opts.vm.powerState()) === 'on' ? 'On' : 'Off'),
    },
  });
  // The HTTP server dies with the process; nothing to undo synchronously, but keep the order of
  // teardown steps readable in diagnostics.
  const reg = onTeardown(`Redfish vBMC ${opts.vm.name}`, () => {});
  const address = `redfish+http://127.0.0.1:${bmc.port}/redfish/v1/Systems/1`;
  log.info({ address }, 'Redfish vBMC listening');
  return {
    bmc,
    address,
    stop: async () => {
      reg.cancel();
      await bmc.close();
    },
  };
}
