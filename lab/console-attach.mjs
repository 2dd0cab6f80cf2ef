// Attach the terminal to a lab VM's serial console (a QEMU unix-socket chardev):
//   node lab/console-attach.mjs <state>/vm0/console.sock
// Keys go to the VM as typed; Ctrl-] detaches (the VM keeps running). Plain JS so it runs with
// bare `node`.
import { createConnection } from 'node:net';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: console-attach.mjs <console.sock>\n');
  process.exit(2);
}
const sock = createConnection(path);
sock.on('error', (e) => {
  process.stderr.write(`console ${path}: ${e.message}; is the VM powered on?\n`);
  process.exit(1);
});
sock.on('connect', () => {
  process.stderr.write(`attached to ${path}; Ctrl-] detaches\r\n`);
  if (process.stdin.isTTY) process.stdin.setRawMode(true);
  process.stdin.on('data', (d) => {
    if (d.includes(0x1d)) {
      process.stderr.write('\r\ndetached\r\n');
      process.exit(0);
    }
    sock.write(d);
  });
  sock.pipe(process.stdout);
});
sock.on('close', () => process.exit(0));
