// Parsers against outputs captured from real machines (fixtures/), so a format change in a tool
// shows up here rather than as an empty inventory on a node.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseRouteSrc } from '../advertise.ts';
import { parseLanPrint } from './bmc.ts';
import { cpuFromLscpu, parseCpuinfoFlags, parseLscpu } from './cpu.ts';
import { parseLsblk, parseUdevProperties } from './disks.ts';
import { parseLldpFrame } from './interfaces.ts';
import { parseMeminfoTotal } from './memory.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures', name), 'utf8');

test('lscpu + /proc/cpuinfo (KVM guest on AMD EPYC)', () => {
  const cpu = cpuFromLscpu(
    parseLscpu(fixture('lscpu-kvm-epyc.txt')),
    parseCpuinfoFlags(fixture('cpuinfo-kvm-epyc.txt')),
  );
  assert.equal(cpu.model_name, 'AMD EPYC');
  assert.equal(cpu.count, 2);
  assert.equal(cpu.architecture, 'x86_64');
  assert.equal(cpu.socket_count, 1);
  assert.ok(cpu.flags.includes('avx2') && cpu.flags.includes('hypervisor'));
  // This guest exposes no MHz line in lscpu; IPA reports no frequency then either.
  assert.equal(cpu.frequency, null);
});

test('lscpu frequency prefers "CPU max MHz"', () => {
  const cpu = cpuFromLscpu(
    parseLscpu('CPU(s): 8\nCPU MHz: 1200.000\nCPU max MHz: 3900.0000\nArchitecture: x86_64\n'),
    [],
  );
  assert.equal(cpu.frequency, '3900.0000');
});

test('/proc/meminfo total in bytes', () => {
  assert.equal(parseMeminfoTotal(fixture('meminfo-24g.txt')), 24684096 * 1024);
});

test('lsblk JSON: whole disks only, no loop/zram/empty devices', () => {
  const disks = parseLsblk(fixture('lsblk-virtio.json'));
  assert.deepEqual(disks, [
    {
      name: '/dev/vda',
      model: null,
      size: 274877906944,
      rotational: true,
      wwn: null,
      serial: null,
      vendor: '0x1af4',
      wwn_with_extension: null,
      wwn_vendor_extension: null,
      hctl: null,
      by_path: null,
    },
  ]);
});

test('lsblk JSON with nested md RAID under partitions', () => {
  const json = JSON.stringify({
    blockdevices: [
      {
        kname: 'sda',
        size: 1000,
        rota: false,
        type: 'disk',
        model: 'SSD ',
        serial: 'S1',
        hctl: '0:0:0:0',
        children: [
          { kname: 'sda1', size: 900, type: 'part', children: [{ kname: 'md0', size: 800, type: 'raid1' }] },
        ],
      },
      { kname: 'sr0', size: 1000, type: 'rom' },
    ],
  });
  assert.deepEqual(
    parseLsblk(json).map((d) => [d.name, d.model, d.rotational, d.hctl]),
    [
      ['/dev/md0', null, false, null],
      ['/dev/sda', 'SSD', false, '0:0:0:0'],
    ],
  );
});

test('udev properties', () => {
  const u = parseUdevProperties('DEVNAME=/dev/sda\nID_SERIAL_SHORT=S3Z9NX0K\nID_WWN=0x5002538e0000abcd\n');
  assert.equal(u.ID_SERIAL_SHORT, 'S3Z9NX0K');
  assert.equal(u.ID_WWN, '0x5002538e0000abcd');
});

test('ipmitool lan print', () => {
  // ipmitool 1.8 layout: "Key<padding>: value", continuation lines start with ":".
  const f = parseLanPrint(fixture('ipmitool-lan-print.txt'));
  assert.equal(f['IP Address Source'], 'DHCP Address');
  assert.equal(f['IP Address'], '10.1.0.57');
  assert.equal(f['MAC Address'], 'a4:bf:01:64:86:70');
  assert.equal(f['Default Gateway IP'], '10.1.0.1');
});

test('ip route get: src address, link-local refused', () => {
  assert.equal(
    parseRouteSrc('10.1.2.3 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0 \n    cache \n'),
    '192.0.2.2',
  );
  assert.equal(parseRouteSrc('local 127.0.0.1 dev lo src 127.0.0.1 uid 0'), '127.0.0.1');
  assert.equal(parseRouteSrc('10.0.0.1 dev eth0 src 169.254.3.4'), null);
  assert.equal(parseRouteSrc('unreachable'), null);
});

test('LLDP frame from tcpdump -xx (sent by lldpd)', () => {
  const tlvs = parseLldpFrame(fixture('tcpdump-lldp.txt'));
  assert.deepEqual(tlvs.slice(0, 5), [
    [1, '047a6a80b0ac04'], // chassis id: MAC
    [2, '037a6a80b0ac04'], // port id: MAC
    [3, '0078'], // TTL 120 s
    [5, '766d'], // system name "vm"
    [6, Buffer.from('kiln-test-switch').toString('hex')], // system description
  ]);
  assert.equal(tlvs.length, 10);
  assert.deepEqual(parseLldpFrame('no frame'), []);
});
