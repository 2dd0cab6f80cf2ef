// Image formats by their first bytes, never by file name or the declared format alone.

export type Compression = 'gzip' | 'xz' | 'zstd' | 'bzip2';
export type Container = 'qcow2' | 'vmdk' | 'vhd' | 'vhdx' | 'raw';

/** Bytes needed to recognise any format below. */
export const MAGIC_BYTES = 8;

export function detectCompression(head: Buffer): Compression | null {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return null;
}

export function detectContainer(head: Buffer): Container {
  if (head.length >= 4 && head.readUInt32BE(0) === 0x514649fb) return 'qcow2';
  if (head.length >= 4 && head.subarray(0, 4).toString('latin1') === 'KDMV') return 'vmdk';
  if (head.length >= 8 && head.subarray(0, 8).toString('latin1') === 'vhdxfile') return 'vhdx';
  if (head.length >= 8 && head.subarray(0, 8).toString('latin1') === 'conectix') return 'vhd';
  return 'raw';
}
