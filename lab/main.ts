// Developer entry point for the lab's building blocks (the conductor is not started here):
//   node --import tsx lab/main.ts up [--vms 2] [--index 0] [--bmc ipmi|redfish] [--firmware bios|uefi]
//                                    [--state DIR]
//       builds the demo image, creates the bridge, VMs and vBMCs, prints them, and keeps running;
//       Ctrl-C removes everything (disks and console logs stay in the state folder).
//   node --import tsx lab/main.ts down [--index 0] [--state DIR]
//       removes what a killed `up` left behind.
// Runs as root (bridge and taps).
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../shared/log.ts';
import { buildDemoImage } from './demo-image.ts';
import { cleanupLab, startLab } from './lab.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    vms: { type: 'string', default: '1' },
    index: { type: 'string', default: '0' },
    bmc: { type: 'string', default: 'ipmi' },
    firmware: { type: 'string', default: 'bios' },
    state: { type: 'string' },
  },
});
const index = Number(values.index);
const stateDir = values.state ?? join(tmpdir(), `kiln-lab${index}`);
const log = createLogger({ name: 'kiln-lab' });

if (positionals[0] === 'down') {
  cleanupLab(stateDir, index);
  log.info({ stateDir }, 'lab removed');
} else if (positionals[0] === 'up') {
  if (values.bmc !== 'ipmi' && values.bmc !== 'redfish') throw new Error('--bmc is ipmi or redfish');
  if (values.firmware !== 'bios' && values.firmware !== 'uefi') throw new Error('--firmware is bios or uefi');
  const image = await buildDemoImage({ log });
  const lab = await startLab({
    index,
    stateDir,
    vms: Number(values.vms),
    bmc: values.bmc,
    firmware: values.firmware,
    log,
  });
  const n = lab.network;
  // BMC passwords go to a root-only file, not to the terminal or logs.
  const machinesFile = join(stateDir, 'machines.json');
  writeFileSync(
    machinesFile,
    `${JSON.stringify(
      lab.machines.map((m) => ({
        name: m.name,
        mac: m.mac,
        bmc_address: m.bmcAddress,
        bmc_password: m.bmcPassword,
      })),
      null,
      2,
    )}\n`,
    { mode: 0o600 },
  );
  process.stdout.write(
    `lab ${n.bridge}: host ${n.hostIp}/${n.prefixLength} (${n.hostIpv6}/64, router advertisements ${n.routerAdvertisements ? 'on' : 'off'}); lease ${n.dhcpRange.first}-${n.dhcpRange.last}\n` +
      `demo image ${image.path} (${image.size} bytes, sha256 ${image.sha256})\n` +
      lab.machines
        .map(
          (m) =>
            `${m.name} mac=${m.mac} bmc=${m.bmcAddress}\n  console: tail -f ${m.vm.consolePath}\n  power:   ${m.vm.powerScript} on|off|status`,
        )
        .join('\n') +
      `\nBMC passwords: ${machinesFile}\nCtrl-C tears the lab down.\n`,
  );
  // The teardown registry stops everything on SIGINT/SIGTERM; keep the process alive until then.
  setInterval(() => {}, 1 << 30);
} else {
  process.stderr.write(
    'usage: lab/main.ts up|down [--vms N] [--index n] [--bmc ipmi|redfish] [--firmware bios|uefi] [--state DIR]\n',
  );
  process.exit(2);
}
