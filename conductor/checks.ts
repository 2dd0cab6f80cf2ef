// Start-up checks: what would make a conductor look healthy while no machine can boot from it.
// `kiln conductor --check` runs them all and fails if any finds a problem; every start runs them
// too and logs each problem as a warning. Each problem says what is wrong and what to do.
import dgram from 'node:dgram';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { RAMDISK_FILES } from './boot/http.ts';
import { bootInterfaceAddress } from './boot/index.ts';
import { resolveConfigured } from './boot/tftp/resolve.ts';
import { type ConductorConfig, isLoopbackHost } from './config.ts';
import { parseStoreUrl } from './store/open.ts';

export type CheckName = 'boot-interfaces' | 'public-url' | 'ramdisk' | 'loaders' | 'database' | 'ports';

export interface Problem {
  check: CheckName;
  /** What is wrong, in one sentence. */
  message: string;
  /** What to do about it. */
  fix: string;
}

/** Interface → IPv4 address for the boot interfaces that have one; problems for the others. */
export async function bootAddresses(
  config: ConductorConfig,
): Promise<{ addresses: Record<string, string>; problems: Problem[] }> {
  const addresses: Record<string, string> = {};
  const problems: Problem[] = [];
  for (const name of config.boot.interfaces) {
    try {
      addresses[name] = await bootInterfaceAddress(name);
    } catch (e) {
      problems.push({
        check: 'boot-interfaces',
        message: (e as Error).message,
        fix: 'list the provisioning interfaces in boot.interfaces (ip -br addr shows them)',
      });
    }
  }
  return { addresses, problems };
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);

/**
 * The URL ramdisks are given for the provisioning endpoints (ipa-api-url, kernel and initramfs):
 * provisioning.public_url, or for endpoints on every address the first boot interface's address,
 * or else the listen address.
 */
export function derivePublicUrl(config: ConductorConfig, port: number, bootAddrs: string[]): string {
  const p = config.provisioning;
  if (p.public_url) return p.public_url.replace(/\/$/, '');
  const host = WILDCARD.has(p.host) ? (bootAddrs[0] ?? '127.0.0.1') : p.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A loopback public URL while boot services answer machines on a real network. */
export function checkPublicUrl(config: ConductorConfig, addresses: Record<string, string>): Problem[] {
  const serving = [
    ...Object.entries(addresses).map(([iface, a]) => ({ where: `${iface} (${a})`, a })),
    ...(config.boot.tftp.addresses ?? []).map((a) => ({ where: `TFTP address ${a}`, a })),
  ].filter((s) => !isLoopbackHost(s.a));
  if (serving.length === 0) return [];
  const p = config.provisioning;
  const url = derivePublicUrl(config, p.port, Object.values(addresses));
  if (!isLoopbackHost(new URL(url).hostname)) return [];
  const example = `http://${serving[0]!.a}:${p.port}`;
  return [
    {
      check: 'public-url',
      message: `ramdisks would be told to reach the API at ${url}, a loopback address, while the boot services serve ${serving.map((s) => s.where).join(', ')}: a booted machine can never reach it`,
      fix: p.public_url
        ? `set provisioning.public_url to an address machines on the provisioning network reach, e.g. ${example}`
        : `set provisioning.host to 0.0.0.0 or ${serving[0]!.a} (the provisioning endpoints listen on ${p.host} only), or set provisioning.public_url if machines reach them another way, e.g. ${example}`,
    },
  ];
}

export async function checkRamdisk(dir: string): Promise<Problem[]> {
  const missing: string[] = [];
  for (const name of Object.values(RAMDISK_FILES)) {
    const st = await stat(resolve(dir, name)).catch(() => null);
    if (!st?.isFile()) missing.push(name);
  }
  if (missing.length === 0) return [];
  return [
    {
      check: 'ramdisk',
      message: `no ramdisk in ${resolve(dir)} (${missing.join(' and ')} missing): machines that PXE-boot get 404 for them`,
      fix: `build it: kiln ramdisk build --out ${resolve(dir)} (after npm run build; see docs/ramdisk.md), or set boot.ramdisk_dir to an existing build`,
    },
  ];
}

/** Only when Kiln serves the loaders (TFTP on some address). A missing arm64 loader is normal. */
export async function checkLoaders(config: ConductorConfig): Promise<Problem[]> {
  const { tftp, dhcp, interfaces } = config.boot;
  if (!tftp.enabled || (interfaces.length === 0 && !tftp.addresses?.length)) return [];
  const root = resolve(tftp.root);
  const st = await stat(root).catch(() => null);
  if (!st?.isDirectory())
    return [
      {
        check: 'loaders',
        message: `the TFTP root ${root} does not exist, so no machine gets an iPXE loader`,
        fix: 'install the loaders (apt install ipxe puts them in /usr/lib/ipxe) or set boot.tftp.root to the folder holding them',
      },
    ];
  const problems: Problem[] = [];
  const which = [
    ['bios', 'BIOS'],
    ['efi_x64', 'x86-64 UEFI'],
  ] as const;
  for (const [key, arch] of which) {
    const name = dhcp.loaders[key];
    if (!name) continue;
    const r = await resolveConfigured(root, name);
    if (r.ok) continue;
    problems.push(
      r.code === 'denied'
        ? {
            check: 'loaders',
            message: `the ${arch} loader boot.dhcp.loaders.${key} = ${name} is outside the TFTP root ${root} (${r.reason})`,
            fix: `name it relative to boot.tftp.root, e.g. ${name.split('/').at(-1)}, after copying or linking it into ${root}`,
          }
        : {
            check: 'loaders',
            message: `the ${arch} loader ${name} (boot.dhcp.loaders.${key}) is not in the TFTP root ${root}, so ${arch} machines get no boot file`,
            fix: `install it (apt install ipxe), copy your iPXE build to ${root}/${name}, or set boot.dhcp.loaders.${key} (null offers none)`,
          },
    );
  }
  return problems;
}

/** SQLite needs its folder readable and writable (the journal lives beside the file). */
export async function checkDatabase(url: string): Promise<Problem[]> {
  let where: ReturnType<typeof parseStoreUrl>;
  try {
    where = parseStoreUrl(url);
  } catch (e) {
    return [{ check: 'database', message: (e as Error).message, fix: 'fix database.url' }];
  }
  if (where.kind !== 'sqlite' || where.path === ':memory:') return [];
  const file = resolve(where.path);
  const dir = dirname(file);
  const st = await stat(dir).catch(() => null);
  if (!st)
    return [
      {
        check: 'database',
        message: `the database folder ${dir} does not exist`,
        fix: `create it (mkdir -p ${dir}, owned by the user running the conductor) or set database.url`,
      },
    ];
  if (!st.isDirectory())
    return [
      {
        check: 'database',
        message: `${dir}, the folder of database ${file}, is not a folder`,
        fix: 'set database.url to a file in a folder',
      },
    ];
  const rw = constants.R_OK | constants.W_OK;
  if (
    !(await access(dir, rw | constants.X_OK).then(
      () => true,
      () => false,
    ))
  )
    return [
      {
        check: 'database',
        message: `the database folder ${dir} is not readable and writable by this user (uid ${process.getuid?.() ?? '?'})`,
        fix: `chown it to the user running the conductor, or set database.url to a writable place (e.g. /var/lib/kiln/kiln.db)`,
      },
    ];
  const fileSt = await stat(file).catch(() => null);
  if (
    fileSt &&
    !(await access(file, rw).then(
      () => true,
      () => false,
    ))
  )
    return [
      {
        check: 'database',
        message: `the database ${file} is not readable and writable by this user`,
        fix: 'chown it to the user running the conductor',
      },
    ];
  return [];
}

type BindResult = 'ok' | 'EADDRINUSE' | 'EACCES' | 'EADDRNOTAVAIL' | string;

/** Binds and releases the port, the way nothing else may hold it. */
export function tryBind(proto: 'tcp' | 'udp', host: string, port: number): Promise<BindResult> {
  return new Promise((done) => {
    const code = (e: NodeJS.ErrnoException) => e.code ?? e.message;
    if (proto === 'tcp') {
      const s = createServer();
      s.once('error', (e) => done(code(e)));
      s.listen({ host, port, exclusive: true }, () => s.close(() => done('ok')));
      return;
    }
    const s = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
    s.once('error', (e) => {
      s.close();
      done(code(e));
    });
    s.bind({ port, address: host, exclusive: true }, () => s.close(() => done('ok')));
  });
}

export interface Binding {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  /** The config keys that move the port and the address. */
  portKey: string;
  hostKey: string;
  /** Who probably holds it, and what to do about them. */
  likely: string;
  stop: string;
}

/** A failed bind as a problem: what holds the port, and which key moves it. */
export function bindProblem(result: BindResult, b: Binding): Problem {
  const port = `${b.proto === 'udp' ? 'UDP ' : ''}port ${b.port} on ${b.host}`;
  if (result === 'EADDRINUSE')
    return {
      check: 'ports',
      message: `${port} is already in use (${b.likely})`,
      fix: `${b.stop} or set ${b.portKey}`,
    };
  if (result === 'EACCES')
    return {
      check: 'ports',
      message: `${port} needs root or CAP_NET_BIND_SERVICE`,
      fix: `run the conductor as root or with CAP_NET_BIND_SERVICE (see contrib/systemd/kiln-conductor.service), or set ${b.portKey}`,
    };
  if (result === 'EADDRNOTAVAIL')
    return {
      check: 'ports',
      message: `${b.host} is not an address of this host, so ${port} cannot be bound`,
      fix: `set ${b.hostKey} to an address this host has (ip -br addr)`,
    };
  return {
    check: 'ports',
    message: `${port} cannot be bound: ${result}`,
    fix: `check ${b.portKey} and ${b.hostKey}`,
  };
}

/** The operator API's listen address and port, for the probe and for the conductor's own listen error. */
export function apiBinding(config: ConductorConfig): Binding {
  return {
    proto: 'tcp',
    host: config.api.host,
    port: config.api.port,
    portKey: 'api.port',
    hostKey: 'api.host',
    likely: 'another kiln conductor?',
    stop: 'stop it',
  };
}

/** The provisioning endpoints' listen address and port. */
export function provisioningBinding(config: ConductorConfig): Binding {
  return {
    ...apiBinding(config),
    host: config.provisioning.host,
    port: config.provisioning.port,
    portKey: 'provisioning.port',
    hostKey: 'provisioning.host',
  };
}

export async function checkPorts(
  config: ConductorConfig,
  addresses: Record<string, string>,
  opts: { api?: boolean } = {},
): Promise<Problem[]> {
  const problems: Problem[] = [];
  const probe = async (b: Binding) => {
    if (b.port === 0) return;
    const r = await tryBind(b.proto, b.host, b.port);
    if (r !== 'ok') problems.push(bindProblem(r, b));
  };
  if (opts.api !== false) {
    await probe(apiBinding(config));
    await probe(provisioningBinding(config));
  }
  const { dhcp, tftp, interfaces } = config.boot;
  if (dhcp.mode !== 'off' && interfaces.length > 0) {
    const dhcpPort = {
      proto: 'udp' as const,
      host: '0.0.0.0',
      hostKey: 'boot.interfaces',
      likely: 'another DHCP server such as dnsmasq, isc-dhcp-server or kea?',
      stop: 'stop it (or set boot.dhcp.mode: off and point it at Kiln, see docs/boot.md),',
    };
    await probe({ ...dhcpPort, port: dhcp.ports.server, portKey: 'boot.dhcp.ports.server' });
    if (dhcp.mode === 'proxy')
      await probe({
        ...dhcpPort,
        port: dhcp.ports.pxe,
        portKey: 'boot.dhcp.ports.pxe',
        likely: 'a PXE or proxyDHCP server?',
      });
  }
  if (tftp.enabled) {
    for (const host of tftp.addresses ?? Object.values(addresses))
      await probe({
        proto: 'udp',
        host,
        port: tftp.port,
        portKey: 'boot.tftp.port',
        hostKey: 'boot.tftp.addresses',
        likely: 'a TFTP server such as tftpd-hpa or dnsmasq?',
        stop: 'stop it (systemctl disable --now tftpd-hpa), or set boot.tftp.enabled: false and serve the loaders from it,',
      });
  }
  return problems;
}

export interface CheckOptions {
  /** Try binding the API port too (false at start: listening itself reports it). */
  apiPort?: boolean;
  /** Boot interface addresses, when the caller has them already. */
  bootAddresses?: { addresses: Record<string, string>; problems: Problem[] };
}

export async function runChecks(config: ConductorConfig, opts: CheckOptions = {}): Promise<Problem[]> {
  const boot = opts.bootAddresses ?? (await bootAddresses(config));
  return [
    ...boot.problems,
    ...checkPublicUrl(config, boot.addresses),
    ...(await checkRamdisk(config.boot.ramdisk_dir)),
    ...(await checkLoaders(config)),
    ...(await checkDatabase(config.database.url)),
    ...(await checkPorts(config, boot.addresses, { api: opts.apiPort })),
  ];
}

export function formatProblems(problems: Problem[]): string {
  return problems.map((p) => `problem (${p.check}): ${p.message}\n  fix: ${p.fix}\n`).join('');
}
