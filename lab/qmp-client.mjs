// One QMP command to a QEMU monitor socket, for the lab's power scripts (plain JS: it runs with
// bare `node`, no TypeScript loader, in the few tens of milliseconds a BMC request allows).
//   node qmp-client.mjs <socket> <command> ['<json arguments>']
// Prints the "return" member as JSON; exits 1 with QEMU's error description otherwise.
import { createConnection } from 'node:net';

const [socketPath, command, argJson] = process.argv.slice(2);
if (!socketPath || !command) {
  process.stderr.write('usage: qmp-client.mjs <socket> <command> [json-arguments]\n');
  process.exit(2);
}

const sock = createConnection(socketPath);
const timer = setTimeout(() => {
  process.stderr.write(`QMP ${command} on ${socketPath}: no answer within 5 s\n`);
  process.exit(1);
}, 5000);
let buf = '';
let step = 0;
sock.on('error', (e) => {
  process.stderr.write(`QMP socket ${socketPath}: ${e.message}; is the VM powered on?\n`);
  process.exit(1);
});
sock.on('data', (chunk) => {
  buf += chunk.toString('utf8');
  for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
    const line = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    if (!line) continue;
    const msg = JSON.parse(line);
    if (msg.event) continue;
    if (step === 0 && msg.QMP) {
      step = 1;
      sock.write(`${JSON.stringify({ execute: 'qmp_capabilities' })}\n`);
    } else if (step === 1) {
      step = 2;
      const req = { execute: command };
      if (argJson) req.arguments = JSON.parse(argJson);
      sock.write(`${JSON.stringify(req)}\n`);
    } else if (step === 2) {
      clearTimeout(timer);
      sock.end();
      if (msg.error) {
        process.stderr.write(`QMP ${command}: ${msg.error.class}: ${msg.error.desc}\n`);
        process.exit(1);
      }
      process.stdout.write(`${JSON.stringify(msg.return ?? {})}\n`);
      process.exit(0);
    }
  }
});
