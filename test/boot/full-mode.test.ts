// Full-mode DHCP and TFTP against real clients (busybox udhcpc, dhclient, curl, tftp-hpa, atftp)
// in network namespaces. Kiln runs in its own namespace ("srv") as a child process; clients run
// in "cli" (on the served interface) and "other" (on an interface Kiln must not answer on).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createNetns, destroy, linkNetns, type Netns, waitForLine } from '../support/netns.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const UDHCPC_SCRIPT = join(FIXTURES, 'udhcpc-script.sh');
const SRV = '10.231.0.1';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let srv: Netns | undefined;
let cli: Netns | undefined;
let other: Netns | undefined;
let server: ChildProcess | undefined;
let dir = '';
let root = '';

async function udhcpc(ns: Netns, extra: string[]): Promise<{ lease?: Record<string, string>; out: string }> {
  const r = await ns.exec(
    'busybox',
    [
      'udhcpc',
      '-i',
      ns === other ? 'ko0' : 'kc0',
      '-f',
      '-q',
      '-n',
      '-t',
      '3',
      '-T',
      '1',
      '-s',
      UDHCPC_SCRIPT,
      ...extra,
    ],
    {
      timeoutMs: 20_000,
    },
  );
  const line = r.stdout.split('\n').find((l) => l.startsWith('LEASE '));
  if (!line) return { out: r.stdout + r.stderr };
  const lease: Record<string, string> = {};
  for (const kv of line.slice(6).split(' ')) {
    const i = kv.indexOf('=');
    lease[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { lease, out: r.stdout };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-boot-'));
  root = join(dir, 'tftp');
  await import('node:fs/promises').then((fs) => fs.mkdir(root));
  copyFileSync('/usr/lib/ipxe/undionly.kpxe', join(root, 'undionly.kpxe'));
  copyFileSync('/usr/lib/ipxe/ipxe.efi', join(root, 'ipxe.efi'));
  // Exactly 4 blocks of 1024: the transfer must end with an empty block.
  writeFileSync(join(root, 'even.bin'), Buffer.alloc(4096, 7));
  writeFileSync(join(dir, 'secret.txt'), 'outside the TFTP root\n');
  srv = await createNetns('kbs');
  cli = await createNetns('kbc');
  other = await createNetns('kbo');
  // The client side has a static address outside the pool for the TFTP tests; udhcpc's hook
  // configures nothing, so DHCP tests don't disturb it.
  await linkNetns(
    { ns: srv, ifname: 'ks0', address: `${SRV}/24` },
    { ns: cli, ifname: 'kc0', address: '10.231.0.250/24' },
  );
  await linkNetns({ ns: srv, ifname: 'ks1', address: '10.232.0.1/24' }, { ns: other, ifname: 'ko0' });
  const config = {
    boot: {
      dhcp: {
        mode: 'full',
        interfaces: ['ks0'],
        leaseFile: join(dir, 'leases.jsonl'),
        subnets: [
          {
            cidr: '10.231.0.0/24',
            rangeStart: '10.231.0.100',
            rangeEnd: '10.231.0.150',
            router: SRV,
            dns: [SRV],
            leaseTime: 600,
            reservations: [{ mac: '02:00:00:00:00:42', ip: '10.231.0.42', hostname: 'node42' }],
          },
          // A pool exists for the other link too: only the interface list keeps Kiln quiet there.
          { cidr: '10.232.0.0/24', rangeStart: '10.232.0.100', rangeEnd: '10.232.0.150' },
        ],
      },
      tftp: { root, maxBlksize: 1468 },
    },
  };
  server = srv.spawn(process.execPath, [
    '--import',
    'tsx',
    join(FIXTURES, 'boot-server.ts'),
    JSON.stringify(config),
  ]);
  await waitForLine<{ event: string }>(server, (m) => m.event === 'ready');
});

after(async () => {
  await destroy(cli, other, srv);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('DHCP full mode with busybox udhcpc', () => {
  test('BIOS PXE ROM (arch 0) gets a lease and undionly.kpxe with siaddr', async () => {
    const { lease, out } = await udhcpc(cli!, [
      '-V',
      'PXEClient:Arch:00000:UNDI:002001',
      '-x',
      '0x5d:0000',
      '-x',
      '0x5e:010201',
    ]);
    assert.ok(lease, out);
    assert.match(lease.ip!, /^10\.231\.0\.(1[0-4]\d|150)$/);
    assert.equal(lease.boot_file, 'undionly.kpxe');
    assert.equal(lease.siaddr, SRV);
    assert.equal(lease.serverid, SRV);
    assert.equal(lease.router, SRV);
  });

  test('UEFI x64 (arch 7) gets ipxe.efi', async () => {
    const { lease, out } = await udhcpc(cli!, [
      '-V',
      'PXEClient:Arch:00007:UNDI:003016',
      '-x',
      '0x5d:0007',
      '-x',
      '0x5e:010302',
    ]);
    assert.ok(lease, out);
    assert.equal(lease.boot_file, 'ipxe.efi');
    assert.equal(lease.siaddr, SRV);
  });

  test('UEFI HTTP boot (arch 16, HTTPClient) gets an http URL of ipxe.efi', async () => {
    const { lease, out } = await udhcpc(cli!, [
      '-V',
      'HTTPClient:Arch:00016:UNDI:003016',
      '-x',
      '0x5d:0010',
      '-x',
      '0x5e:010302',
    ]);
    assert.ok(lease, out);
    assert.equal(lease.boot_file, `http://${SRV}:8080/boot/loaders/ipxe.efi`);
  });

  test('iPXE (user class "iPXE", plain string) gets the HTTP script URL for its MAC', async () => {
    const mac = (await cli!.exec('cat', ['/sys/class/net/kc0/address'])).stdout.trim();
    const { lease, out } = await udhcpc(cli!, [
      '-V',
      'PXEClient:Arch:00000:UNDI:002001',
      '-x',
      '0x5d:0000',
      '-x',
      '0x4d:69505845',
    ]);
    assert.ok(lease, out);
    assert.equal(lease.boot_file, `http://${SRV}:8080/boot/ipxe?mac=${mac}`);
  });

  test('a plain DHCP client (the ramdisk) gets an address and no boot file', async () => {
    const { lease, out } = await udhcpc(cli!, []);
    assert.ok(lease, out);
    assert.equal(lease.boot_file, '');
    assert.match(lease.ip!, /^10\.231\.0\./);
  });

  test('a reserved MAC gets its fixed address', async () => {
    const before = (await cli!.exec('cat', ['/sys/class/net/kc0/address'])).stdout.trim();
    await cli!.exec('ip', ['link', 'set', 'kc0', 'address', '02:00:00:00:00:42']);
    try {
      const { lease, out } = await udhcpc(cli!, [
        '-V',
        'PXEClient:Arch:00000:UNDI:002001',
        '-x',
        '0x5d:0000',
      ]);
      assert.ok(lease, out);
      assert.equal(lease.ip, '10.231.0.42');
    } finally {
      await cli!.exec('ip', ['link', 'set', 'kc0', 'address', before]);
    }
  });

  test('no answer on an interface that is not configured', async () => {
    const { lease } = await udhcpc(other!, ['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000']);
    assert.equal(lease, undefined);
  });

  test('leases are persisted to the lease file', () => {
    const text = readFileSync(join(dir, 'leases.jsonl'), 'utf8');
    assert.match(text, /"ip":"10\.231\.0\.42","mac":"02:00:00:00:00:42"/);
  });
});

describe('DHCP full mode behind a relay', () => {
  test("Kea's perfdhcp as a relay (giaddr set) completes DORA for 20 clients", async () => {
    const r = await cli!.exec(
      'perfdhcp',
      ['-4', '-l', 'kc0', '-g', 'single', '-r', '50', '-n', '20', '-R', '20', '-W', '1000000', SRV],
      { timeoutMs: 30_000 },
    );
    const acks = /Statistics for: REQUEST-ACK[\s\S]*?received packets: (\d+)/.exec(r.stdout)?.[1];
    assert.equal(acks, '20', r.stdout + r.stderr);
  });
});

describe('DHCP full mode with dhclient', () => {
  test('dhclient sending vendor class and arch gets a lease and the UEFI loader', async () => {
    const conf = join(dir, 'dhclient.conf');
    const leases = join(dir, 'dhclient.leases');
    writeFileSync(
      conf,
      [
        'option pxe-arch code 93 = unsigned integer 16;',
        'send vendor-class-identifier "PXEClient:Arch:00007:UNDI:003016";',
        'send pxe-arch 7;',
        'request subnet-mask, routers, domain-name-servers, bootfile-name, tftp-server-name;',
        'timeout 15;',
        '',
      ].join('\n'),
    );
    const child = cli!.spawn('dhclient', [
      '-d',
      '-4',
      '-cf',
      conf,
      '-lf',
      leases,
      '-pf',
      join(dir, 'dhclient.pid'),
      '-sf',
      '/bin/true',
      'kc0',
    ]);
    try {
      const deadline = Date.now() + 20_000;
      let text = '';
      while (Date.now() < deadline) {
        try {
          text = readFileSync(leases, 'utf8');
        } catch {
          text = '';
        }
        if (text.includes('fixed-address')) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.match(text, /fixed-address 10\.231\.0\.\d+;/);
      assert.match(text, /filename "ipxe\.efi";/);
      assert.match(text, /option dhcp-server-identifier 10\.231\.0\.1;/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});

describe('TFTP', () => {
  const want = () => readFileSync(join(root, 'undionly.kpxe'));

  for (const blksize of [512, 1024, 1468]) {
    test(`curl downloads undionly.kpxe byte-exact with blksize ${blksize}`, async () => {
      const out = join(dir, `curl-${blksize}.bin`);
      const r = await cli!.exec('curl', [
        '-sS',
        '--max-time',
        '20',
        '--tftp-blksize',
        String(blksize),
        '-o',
        out,
        `tftp://${SRV}/undionly.kpxe`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha(readFileSync(out)), sha(want()));
    });
  }

  test('curl handles a file that is an exact multiple of blksize', async () => {
    const out = join(dir, 'even.out');
    const r = await cli!.exec('curl', [
      '-sS',
      '--max-time',
      '20',
      '--tftp-blksize',
      '1024',
      '-o',
      out,
      `tftp://${SRV}/even.bin`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(out), Buffer.alloc(4096, 7));
  });

  test('tftp-hpa downloads ipxe.efi byte-exact (plain RFC 1350)', async () => {
    const out = join(dir, 'hpa.efi');
    const r = await cli!.exec('tftp', ['-m', 'binary', SRV, '-c', 'get', 'ipxe.efi', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(readFileSync(out)), sha(readFileSync(join(root, 'ipxe.efi'))));
  });

  for (const opts of [
    ['blksize 1428'],
    ['blksize 512', 'windowsize 8'],
    ['blksize 1468', 'windowsize 8'],
    ['blksize 1024', 'windowsize 16', 'tsize 0'],
  ]) {
    test(`atftp downloads ipxe.efi byte-exact with ${opts.join(', ')}`, async () => {
      const out = join(dir, `atftp-${opts.join('-').replace(/ /g, '')}.efi`);
      const args = opts.flatMap((o) => ['--option', o]);
      const r = await cli!.exec('atftp', [...args, '-g', '-r', 'ipxe.efi', '-l', out, SRV]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(sha(readFileSync(out)), sha(readFileSync(join(root, 'ipxe.efi'))));
    });
  }

  test('path traversal is refused', async () => {
    for (const name of ['../secret.txt', '/../secret.txt', 'a/../../secret.txt', '../../etc/passwd']) {
      const out = join(dir, 'trav.out');
      const r = await cli!.exec('atftp', ['-g', '-r', name, '-l', out, SRV]);
      assert.notEqual(r.code, 0, `${name} was served`);
      assert.doesNotMatch(readFileSafe(out), /outside the TFTP root|root:/);
    }
    const c = await cli!.exec('curl', ['-sS', '-o', join(dir, 'trav2.out'), `tftp://${SRV}/..%2fsecret.txt`]);
    assert.notEqual(c.code, 0);
  });

  test('write requests are refused with a TFTP error', async () => {
    const src = join(dir, 'upload.bin');
    writeFileSync(src, 'nope');
    const a = await cli!.exec('atftp', ['-p', '-l', src, '-r', 'upload.bin', SRV]);
    assert.notEqual(a.code, 0);
    assert.match(a.stderr + a.stdout, /read-only|Access violation|access/i);
    const h = await cli!.exec('tftp', ['-m', 'binary', SRV, '-c', 'put', src, 'upload2.bin']);
    assert.match(h.stderr + h.stdout, /read-only|Access violation/i);
    assert.throws(() => readFileSync(join(root, 'upload.bin')));
  });

  test('twenty clients at once all get the right bytes', async () => {
    const runs = Array.from({ length: 20 }, (_, i) => {
      const out = join(dir, `par-${i}.bin`);
      return cli!
        .exec('curl', [
          '-sS',
          '--max-time',
          '20',
          '--tftp-blksize',
          i % 2 ? '1468' : '512',
          '-o',
          out,
          `tftp://${SRV}/ipxe.efi`,
        ])
        .then((r) => ({ r, out }));
    });
    const want = sha(readFileSync(join(root, 'ipxe.efi')));
    for (const { r, out } of await Promise.all(runs)) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha(readFileSync(out)), want);
    }
  });
});

function readFileSafe(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}
