// `kiln lab up|down`: the one-command QEMU lab (see lab/flow.ts).
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { runLabFlow } from '../../lab/flow.ts';
import { cleanupLab } from '../../lab/lab.ts';
import { CliError, EXIT } from '../client.ts';

export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description('a virtual lab: QEMU servers PXE-booted, enrolled, deployed and cleaned by Kiln');
  lab
    .command('up')
    .description(
      'build the ramdisk and demo image, start VMs on an isolated bridge, and take them from first power-on to active and back',
    )
    .option('--nodes <n>', 'how many VMs', '1')
    .option('--bmc <kind>', "ipmi (ipmi_sim) or redfish (Kiln's Redfish emulator)", 'ipmi')
    .option('--state <dir>', 'where disks, consoles, logs and the database go', join(tmpdir(), 'kiln-lab'))
    .option('--firmware <kind>', 'bios (SeaBIOS) or uefi (OVMF)', 'bios')
    .option('--keep', 'stop once the nodes are active and booted, without undeploying')
    .option('--fault', 'also kill the agent during the first image write and show the retry')
    .action(async (o) => {
      if (process.getuid?.() !== 0)
        throw new CliError(
          'kiln lab needs root (it creates a bridge, taps and VMs); run it with sudo',
          EXIT.usage,
        );
      if (o.bmc !== 'ipmi' && o.bmc !== 'redfish') throw new CliError('--bmc is ipmi or redfish', EXIT.usage);
      if (o.firmware !== 'bios' && o.firmware !== 'uefi')
        throw new CliError('--firmware is bios or uefi', EXIT.usage);
      const n = Number(o.nodes);
      if (!Number.isInteger(n) || n < 1 || n > 8) throw new CliError('--nodes is 1 to 8', EXIT.usage);
      const started = Date.now();
      await runLabFlow({
        vms: n,
        bmc: o.bmc,
        firmware: o.firmware,
        stateDir: o.state,
        keep: o.keep,
        faultRun: o.fault,
      });
      process.stderr.write(
        `lab flow finished in ${((Date.now() - started) / 1000).toFixed(0)} s; logs in ${o.state}\n`,
      );
    });
  lab
    .command('down')
    .description('remove what an interrupted lab left behind (VMs, BMCs, bridge)')
    .option('--state <dir>', "the lab's state folder", join(tmpdir(), 'kiln-lab'))
    .action((o) => {
      cleanupLab(join(o.state, 'lab'), 0);
      process.stderr.write('lab removed\n');
    });
}
