// Types for the two systeminformation modules the agent loads directly (the package's own
// typings only cover its index, which would pull every module into the bundle).
declare module 'systeminformation/lib/memory.js' {
  export function memLayout(): Promise<{ size: number }[]>;
}
declare module 'systeminformation/lib/system.js' {
  export function system(): Promise<{ manufacturer: string; model: string; serial: string; uuid: string }>;
  export function bios(): Promise<{ vendor: string; version: string; releaseDate: string }>;
}
