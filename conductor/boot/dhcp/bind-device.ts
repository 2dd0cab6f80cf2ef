// Restricting a UDP socket to one network interface (SO_BINDTODEVICE) from Node.
//
// Why: a DHCP server must hear limited broadcasts (255.255.255.255), so it binds 0.0.0.0:67, and
// then it hears them on every interface. Node exposes neither SO_BINDTODEVICE nor IP_PKTINFO, so
// it can't tell which link a broadcast came from. Binding to the interface's own address misses
// broadcasts, and binding to 255.255.255.255 still can't tell links apart.
//
// How: socket options belong to the socket, not to the process, so we hand the bound socket's
// file descriptor to a short-lived child (perl, which Debian always has: perl-base is Essential)
// that calls setsockopt(SO_BINDTODEVICE) on it and exits. From then on the kernel delivers to
// this socket only what arrived on that interface, and sends (broadcasts included) leave through
// it, exactly as dnsmasq's bind-interfaces or ISC dhcpd get it. Several of these sockets can
// share 0.0.0.0:67 because each is opened with SO_REUSEADDR.
//
// The caller must drop whatever the socket received before this resolves: those datagrams may
// come from any interface.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:dgram';

// SOL_SOCKET/SO_BINDTODEVICE from perl's Socket module where it has them; 1/25 is Linux on
// x86, arm and riscv.
const SCRIPT = `
use strict;
my ($sol, $opt) = (1, 25);
eval { require Socket; $sol = Socket::SOL_SOCKET(); $opt = eval { Socket::SO_BINDTODEVICE() } // 25; };
open(my $fh, "+<&=", 3) or die "cannot adopt fd 3: $!\\n";
setsockopt($fh, $sol, $opt, pack("Z*", $ARGV[0])) or die "setsockopt(SO_BINDTODEVICE, $ARGV[0]): $!\\n";
`;

/** The OS file descriptor of a bound dgram socket (Node keeps it in an internal handle). */
export function socketFd(socket: Socket): number {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = sym ? (socket as unknown as Record<symbol, { handle?: { fd?: number } }>)[sym] : undefined;
  const fd = state?.handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new Error(
      'cannot find the file descriptor of the DHCP socket (is it bound? did Node change dgram internals?)',
    );
  }
  return fd;
}

export function bindToDevice(socket: Socket, iface: string): Promise<void> {
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(iface))
    return Promise.reject(new Error(`invalid interface name ${JSON.stringify(iface)}`));
  const fd = socketFd(socket);
  return new Promise((resolve, reject) => {
    const child = spawn('perl', ['-e', SCRIPT, iface], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += String(d);
    });
    child.on('error', (e) =>
      reject(new Error(`cannot run perl to bind the DHCP socket to ${iface}: ${e.message}`)),
    );
    child.on('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `binding the DHCP socket to interface ${iface} failed: ${stderr.trim() || `exit ${code}`} (needs root or CAP_NET_RAW)`,
          ),
        );
    });
  });
}
