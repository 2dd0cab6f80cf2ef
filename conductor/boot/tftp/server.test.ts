// The transfer engine over loopback with a scripted client, for what real clients won't do on
// purpose: lose packets, ACK mid-window, repeat ACKs, send garbage to the transfer port.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { silentLogger } from '../../../shared/log.ts';
import { Op } from './protocol.ts';
import { startTftpServer, type TftpServer } from './server.ts';

let dir = '';
let server: TftpServer;
const file = Buffer.from(Array.from({ length: 512 * 20 + 100 }, (_, i) => (i * 7) & 255));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-tftp-srv-'));
  writeFileSync(join(dir, 'f.bin'), file);
  server = await startTftpServer(
    { root: dir, addresses: ['127.0.0.1'], port: 0, timeoutMs: 200, retries: 3 },
    { log: silentLogger() },
  );
});

after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A client that drops DATA blocks listed in `drop` once, and acks per window like RFC 7440. */
async function fetchWithLoss(windowsize: number, drop: Set<number>, noise: boolean): Promise<Buffer> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const blocks = new Map<number, Buffer>();
  let expected = 1;
  let sinceAck = 0;
  let last = -1;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('transfer timed out')), 10_000);
      sock.on('message', (msg, rinfo) => {
        const op = msg.readUInt16BE(0);
        const ack = (n: number) =>
          sock.send(Buffer.from([0, Op.ACK, n >> 8, n & 255]), rinfo.port, rinfo.address);
        if (op === Op.OACK) {
          if (noise) {
            // garbage and a stray ACK to the transfer port must not break anything
            sock.send(Buffer.from([1]), rinfo.port, rinfo.address);
            sock.send(Buffer.from([0, Op.ACK, 0xff, 0xff]), rinfo.port, rinfo.address);
          }
          ack(0);
          return;
        }
        if (op !== Op.DATA) return reject(new Error(`unexpected opcode ${op}`));
        const n = msg.readUInt16BE(2);
        if (drop.has(n)) {
          drop.delete(n);
          return; // lost on the wire
        }
        if (n !== expected) {
          ack(expected - 1); // out of order: tell the sender where we are
          sinceAck = 0;
          return;
        }
        blocks.set(n, msg.subarray(4));
        expected++;
        sinceAck++;
        if (msg.length - 4 < 512) last = n;
        if (sinceAck === windowsize || last === n) {
          ack(n);
          if (noise) ack(n); // duplicate ACK: must not cause a resend storm
          sinceAck = 0;
        }
        if (last === n) {
          clearTimeout(t);
          resolve(Buffer.concat([...blocks.keys()].sort((a, b) => a - b).map((k) => blocks.get(k)!)));
        }
      });
      sock.send(
        Buffer.from(`\0\x01f.bin\0octet\0windowsize\0${windowsize}\0`, 'latin1'),
        server.port,
        '127.0.0.1',
      );
    });
  } finally {
    sock.close();
  }
}

test('windowed transfer recovers from lost blocks (mid-window ACK and timeout)', async () => {
  const got = await fetchWithLoss(4, new Set([3, 9, 10, 21]), false);
  assert.deepEqual(got, file);
});

test('lock-step transfer with duplicate ACKs and garbage on the transfer port', async () => {
  const got = await fetchWithLoss(1, new Set([5]), true);
  assert.deepEqual(got, file);
  assert.ok(server.stats.completed >= 1);
});

test('an address that is not on this host is a config error naming it', async () => {
  await assert.rejects(
    startTftpServer({ root: dir, addresses: ['192.0.2.77'], port: 0 }, { log: silentLogger() }),
    (e: unknown) => (e as { code?: string }).code === 'CONFIG_INVALID' && /192\.0\.2\.77/.test(String(e)),
  );
});
