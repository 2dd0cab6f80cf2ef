// Command line of the Redfish BMC emulator:
//   node --import tsx tools/redfish-bmc/main.ts --port 8000 --user admin --password secret
// Options: --host (127.0.0.1), --systems 1,2 (ids), --power On|Off (initial), --cert/--key (PEM
// files: serve HTTPS), --hook PROGRAM (see hook-command.ts), --delay-ms N (slow BMC).
// The password may come from REDFISH_BMC_PASSWORD instead of argv, which other users can read.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { commandHooks } from './hook-command.ts';
import { startRedfishBmc } from './server.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8000' },
    user: { type: 'string', default: 'admin' },
    password: { type: 'string' },
    systems: { type: 'string', default: '1' },
    power: { type: 'string', default: 'Off' },
    cert: { type: 'string' },
    key: { type: 'string' },
    hook: { type: 'string' },
    'delay-ms': { type: 'string', default: '0' },
  },
  strict: true,
});

const password = values.password ?? process.env.REDFISH_BMC_PASSWORD;
if (!password) {
  console.error('redfish-bmc: give a password with --password or REDFISH_BMC_PASSWORD');
  process.exit(2);
}
if (Boolean(values.cert) !== Boolean(values.key)) {
  console.error('redfish-bmc: --cert and --key go together');
  process.exit(2);
}
if (values.power !== 'On' && values.power !== 'Off') {
  console.error('redfish-bmc: --power is On or Off');
  process.exit(2);
}

const bmc = await startRedfishBmc({
  host: values.host,
  port: Number(values.port),
  user: values.user,
  password,
  systems: values.systems
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
  initialPower: values.power,
  tls:
    values.cert && values.key
      ? { cert: readFileSync(values.cert), key: readFileSync(values.key) }
      : undefined,
  hooks: values.hook ? commandHooks(values.hook) : undefined,
  delayMs: Number(values['delay-ms']),
});
console.log(`redfish-bmc listening on ${bmc.url}/redfish/v1`);

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    bmc.close().then(() => process.exit(0));
  });
}
