// Who is asking, and which boot file they get. The decision order follows Tinkerbell's smee:
// iPXE (user class) → the HTTP script; UEFI HTTP boot → an HTTP URL of the loader; PXE ROM → the
// loader for its architecture over TFTP. Anything else is not a netboot client.
import {
  decodeClientArch,
  decodeClientNdi,
  decodeClientUuid,
  decodeText,
  decodeUserClass,
  type MessageTypeName,
  messageTypeName,
  Opt,
} from './options.ts';
import { type DhcpPacket, macOf } from './packet.ts';

/** Client architecture families Kiln has loaders for (RFC 4578 / IANA processor architecture types). */
export type Arch = 'bios' | 'efi-x64' | 'efi-arm64' | 'other';

export interface ClientInfo {
  mac: string;
  messageType?: MessageTypeName;
  vendorClass?: string;
  userClasses: string[];
  /** First value of option 93; undefined when absent. */
  archCode?: number;
  arch?: Arch;
  ndi?: { type: number; major: number; minor: number };
  /** Option 97: undefined absent, null malformed. */
  uuid?: string | null;
  hostname?: string;
  /** Option 60 starts with PXEClient. */
  pxeClient: boolean;
  /** Option 60 starts with HTTPClient (UEFI HTTP boot). */
  httpClient: boolean;
  /** User class names an iPXE build (loop-break: it gets the script, not another iPXE). */
  ipxe: boolean;
  /** A PXE/HTTP boot ROM or iPXE, i.e. something that wants a boot file. */
  netboot: boolean;
}

export function archFromCode(code: number | undefined): Arch | undefined {
  if (code === undefined) return undefined;
  switch (code) {
    case 0: // x86 BIOS
      return 'bios';
    case 7: // x64 UEFI
    case 9: // EBC, sent by some x64 firmware
    case 16: // x64 UEFI HTTP
      return 'efi-x64';
    case 11: // ARM 64-bit UEFI
    case 19: // ARM 64-bit UEFI HTTP
      return 'efi-arm64';
    default:
      return 'other';
  }
}

export function clientInfo(p: DhcpPacket, ipxeUserClasses: readonly string[] = ['iPXE']): ClientInfo {
  const vendorClass = decodeText(p.options.get(Opt.VENDOR_CLASS));
  const userClasses = decodeUserClass(p.options.get(Opt.USER_CLASS)) ?? [];
  const archCode = decodeClientArch(p.options.get(Opt.CLIENT_ARCH))?.[0];
  const uuid = decodeClientUuid(p.options.get(Opt.CLIENT_UUID));
  const pxeClient = vendorClass?.startsWith('PXEClient') ?? false;
  const httpClient = vendorClass?.startsWith('HTTPClient') ?? false;
  const ipxe = userClasses.some((c) => ipxeUserClasses.includes(c));
  // RFC 4578: a PXE client sends 93 (and 94); a malformed 97 means a broken or hostile client.
  const romLooksRight = (pxeClient || httpClient) && archCode !== undefined && uuid !== null;
  const info: ClientInfo = {
    mac: macOf(p),
    messageType: messageTypeName(p.options.get(Opt.MESSAGE_TYPE)?.[0]),
    vendorClass,
    userClasses,
    archCode,
    arch: archFromCode(archCode),
    ndi: decodeClientNdi(p.options.get(Opt.CLIENT_NDI)),
    uuid,
    hostname: decodeText(p.options.get(Opt.HOSTNAME)),
    pxeClient,
    httpClient,
    ipxe,
    netboot: romLooksRight || ipxe,
  };
  return info;
}

/** iPXE binaries by architecture, as file names under the TFTP root. */
export interface Loaders {
  bios?: string;
  efiX64?: string;
  efiArm64?: string;
}

/** Debian's `ipxe` package names for x86; arm64 needs your own build (snp.efi / ipxe.efi for arm64). */
export const DEFAULT_LOADERS: Loaders = {
  bios: 'undionly.kpxe',
  efiX64: 'ipxe.efi',
  efiArm64: 'ipxe-arm64.efi',
};

export interface NetbootUrls {
  /** URL of the per-node iPXE script, e.g. http://10.0.0.1:8080/boot/ipxe?mac=… */
  scriptUrl(mac: string, ctx: { serverIp: string; arch?: Arch }): string;
  /** HTTP URL of a loader for UEFI HTTP boot clients. */
  loaderUrl(name: string, ctx: { serverIp: string }): string;
}

export interface BootTarget {
  /** Boot file name or URL for the `file` field and option 67. */
  file: string;
  /** Vendor class to echo in option 60 (PXE spec for proxy offers; UEFI HTTP boot requires HTTPClient). */
  vendorClass?: 'PXEClient' | 'HTTPClient';
  kind: 'script' | 'http-loader' | 'tftp-loader';
}

export function loaderFor(arch: Arch | undefined, loaders: Loaders): string | undefined {
  if (arch === 'bios') return loaders.bios;
  if (arch === 'efi-x64') return loaders.efiX64;
  if (arch === 'efi-arm64') return loaders.efiArm64;
  return undefined;
}

/** The boot file for a netboot client, or null when there is none for it. */
export function decideBoot(
  info: ClientInfo,
  serverIp: string,
  loaders: Loaders,
  urls: NetbootUrls,
): BootTarget | null {
  if (info.ipxe) {
    return {
      file: urls.scriptUrl(info.mac, { serverIp, arch: info.arch }),
      kind: 'script',
      vendorClass: info.pxeClient ? 'PXEClient' : undefined,
    };
  }
  if (!info.netboot) return null;
  const loader = loaderFor(info.arch, loaders);
  if (!loader) return null;
  if (info.httpClient)
    return { file: urls.loaderUrl(loader, { serverIp }), vendorClass: 'HTTPClient', kind: 'http-loader' };
  return { file: loader, vendorClass: 'PXEClient', kind: 'tftp-loader' };
}

/** URL builders for a conductor that serves scripts and loaders over HTTP on `port`. */
export function httpBootUrls(port: number): NetbootUrls {
  return {
    scriptUrl: (mac, { serverIp }) => `http://${serverIp}:${port}/boot/ipxe?mac=${mac}`,
    loaderUrl: (name, { serverIp }) => `http://${serverIp}:${port}/boot/loaders/${encodeURIComponent(name)}`,
  };
}
