// Hand-made qcow2 files for the cases qemu-img doesn't produce: data before the L2 table that
// maps it, the hold-back limit, compressed clusters, backing files, truncation. 512-byte clusters.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Qcow2Stream } from './qcow2.ts';

const CS = 512;
const COPIED = 1n << 63n;

function header(opts: { backing?: boolean; crypt?: number } = {}): Buffer {
  const h = Buffer.alloc(CS);
  h.writeUInt32BE(0x514649fb, 0);
  h.writeUInt32BE(3, 4);
  h.writeBigUInt64BE(opts.backing ? 1024n : 0n, 8);
  h.writeUInt32BE(9, 20); // cluster_bits
  h.writeBigUInt64BE(BigInt(16 * CS), 24); // virtual size: 16 clusters
  h.writeUInt32BE(opts.crypt ?? 0, 32);
  h.writeUInt32BE(1, 36); // l1_size
  h.writeBigUInt64BE(BigInt(1 * CS), 40); // L1 at cluster 1
  h.writeBigUInt64BE(BigInt(2 * CS), 48); // refcount table at cluster 2
  h.writeUInt32BE(1, 56);
  h.writeUInt32BE(4, 96); // refcount_order
  h.writeUInt32BE(104, 100);
  return h;
}

/** Host layout: 0 header, 1 L1, 2 refcount table, 3 data(guest 5), 4 L2, 5 data(guest 0), 6 refcount block. */
function image(l2Flags = 0n, opts: { backing?: boolean; crypt?: number } = {}): Buffer {
  const l1 = Buffer.alloc(CS);
  l1.writeBigUInt64BE(BigInt(4 * CS) | COPIED, 0);
  const rt = Buffer.alloc(CS);
  rt.writeBigUInt64BE(BigInt(6 * CS), 0);
  const l2 = Buffer.alloc(CS);
  l2.writeBigUInt64BE(BigInt(5 * CS) | COPIED | l2Flags, 0 * 8);
  l2.writeBigUInt64BE(BigInt(3 * CS) | COPIED, 5 * 8);
  l2.writeBigUInt64BE(1n, 7 * 8); // zero cluster (v3 flag), no host cluster
  return Buffer.concat([
    header(opts),
    l1,
    rt,
    Buffer.alloc(CS, 0xa5),
    l2,
    Buffer.alloc(CS, 0xb6),
    Buffer.alloc(CS, 0x01),
  ]);
}

async function convert(file: Buffer, opts: { maxPendingBytes?: number; chunk?: number } = {}) {
  const writes: Array<[number, Buffer]> = [];
  const q = new Qcow2Stream(
    { writeAt: async (o, d) => void writes.push([o, Buffer.from(d)]) },
    { deviceBytes: 1 << 20, maxPendingBytes: opts.maxPendingBytes },
  );
  const step = opts.chunk ?? 100;
  for (let i = 0; i < file.length; i += step) await q.push(file.subarray(i, i + step));
  return { writes, result: await q.end() };
}

describe('qcow2 stream', () => {
  test('a data cluster before its L2 table is held, then written to its guest offset', async () => {
    const { writes, result } = await convert(image());
    writes.sort((a, b) => a[0] - b[0]);
    assert.deepEqual(
      writes.map(([o, d]) => [o, d.length, d[0]]),
      [
        [0, CS, 0xb6],
        [5 * CS, CS, 0xa5],
      ],
    );
    assert.deepEqual(result.zeroRanges, [
      [1 * CS, 4 * CS],
      [6 * CS, 10 * CS],
    ]);
    assert.equal(result.virtualSize, 16 * CS);
  });
  test('whole-cluster chunks take the zero-copy path with the same result', async () => {
    const { writes } = await convert(image(), { chunk: 3 * CS });
    assert.equal(writes.length, 2);
  });
  test('beyond the hold-back limit the image is refused with a way out', async () => {
    await assert.rejects(
      convert(image(), { maxPendingBytes: CS - 1 }),
      /arrives before the table that maps it.*qemu-img convert/,
    );
  });
  test('compressed clusters, backing files and encryption are refused', async () => {
    await assert.rejects(convert(image(1n << 62n)), /compressed clusters/);
    await assert.rejects(convert(image(0n, { backing: true })), /backing file/);
    await assert.rejects(convert(image(0n, { crypt: 1 })), /encrypted/);
  });
  test('a truncated image fails at the end, naming what is missing', async () => {
    const file = image();
    await assert.rejects(convert(file.subarray(0, 5 * CS)), /truncated: 1 data cluster/);
    await assert.rejects(convert(file.subarray(0, 3 * CS)), /truncated: 1 table cluster/);
  });
  test('a virtual size larger than the device is refused from the header', async () => {
    const q = new Qcow2Stream({ writeAt: async () => {} }, { deviceBytes: 4 * CS, device: '/dev/loop9' });
    await assert.rejects(q.push(image()), { code: 'DEVICE_TOO_SMALL' });
  });
});
