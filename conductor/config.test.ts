import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { isKilnError } from '../shared/errors.ts';
import { silentLogger } from '../shared/log.ts';
import { bootAll, httpBootUrls, startBootServices } from './boot/index.ts';
import { type ConfigProblem, loadConfig } from './config.ts';
import { bootSettings } from './server.ts';

function tempFile(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'kiln-cfg-')), name);
  writeFileSync(file, text);
  return file;
}

/** The problems loadConfig reports for these sources. */
function problems(src: Parameters<typeof loadConfig>[0]): ConfigProblem[] {
  try {
    loadConfig(src);
  } catch (e) {
    assert.ok(isKilnError(e) && e.code === 'CONFIG_INVALID', String(e));
    return e.details as ConfigProblem[];
  }
  assert.fail('expected the configuration to be refused');
}

describe('conductor config', () => {
  it('has working defaults', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.api.port, 6385);
    assert.equal(c.database.url, 'sqlite:kiln.db');
    assert.equal(c.conductor.fast_track, true);
  });

  it('layers file < env < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cfg-'));
    const file = join(dir, 'kiln.yaml');
    writeFileSync(
      file,
      'api:\n  port: 7000\n  host: 127.0.0.1\ndatabase:\n  url: sqlite:/var/lib/kiln/kiln.db\n',
    );
    const c = loadConfig({ file, env: { KILN_API_PORT: '7001' }, flags: { 'database.url': ':memory:' } });
    assert.equal(c.api.port, 7001);
    assert.equal(c.api.host, '127.0.0.1');
    assert.equal(c.database.url, ':memory:');
  });

  it('reports every invalid value at once, each with its source', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cfg-'));
    const file = join(dir, 'kiln.json');
    writeFileSync(
      file,
      JSON.stringify({ api: { port: 70000 }, conductor: { callback_timeout_s: -5 }, typo: 1 }),
    );
    assert.throws(
      () => loadConfig({ file, env: { KILN_LOG_LEVEL: 'loud', KILN_FAST_TRACK: 'maybe' } }),
      (e: unknown) => {
        assert.ok(isKilnError(e) && e.code === 'CONFIG_INVALID');
        const details = e.details as { path: string; source: string }[];
        const paths = details.map((d) => d.path).sort();
        assert.deepEqual(paths, [
          'api.port',
          'conductor.callback_timeout_s',
          'conductor.fast_track',
          'log.level',
          'typo',
        ]);
        assert.equal(details.find((d) => d.path === 'typo')!.source, `file ${file}`);
        assert.equal(details.find((d) => d.path === 'log.level')!.source, 'environment KILN_LOG_LEVEL');
        assert.equal(details.find((d) => d.path === 'api.port')!.source, `file ${file}`);
        assert.match(e.message, /5 problems/);
        return true;
      },
    );
  });

  it('names a config file that is not valid YAML', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cfg-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'api: [unclosed\n');
    assert.throws(() => loadConfig({ file }), new RegExp(`config file ${file} is not valid YAML`));
    assert.throws(() => loadConfig({ file: join(dir, 'missing.yaml') }), /cannot read config file/);
  });

  it('takes every boot option docs/boot.md documents, under its documented key, and hands it to the boot services', () => {
    const file = tempFile(
      'kiln.yaml',
      `
boot:
  interfaces: [eno2, eno3]
  ramdisk_dir: /srv/kiln/ramdisk
  kernel_args: [console=ttyS0]
  ramdisk_attempts: 7
  ramdisk_retry_delay_s: 2
  dhcp:
    mode: full
    subnets:
      - cidr: 10.0.0.0/24
        range_start: 10.0.0.100
        range_end: 10.0.0.200
        router: 10.0.0.254
        dns: [10.0.0.53]
        domain: lab
        lease_time_s: 600
        reservations:
          - { mac: 52:54:00:00:00:01, ip: 10.0.0.10, hostname: n1 }
    lease_file: /var/lib/kiln/dhcp-leases.jsonl
    loaders: { bios: undionly.kpxe, efi_x64: snponly.efi, efi_arm64: arm64/snp.efi }
    ipxe_user_classes: [iPXE, KilnPXE]
    ports: { server: 1067, client: 1068, pxe: 5011 }
    rate_limit: { per_mac_per_s: 4, burst: 20, new_clients_per_s: 100, max_offered_fraction: 0.25 }
  tftp:
    enabled: true
    root: /srv/kiln/tftp
    addresses: [10.0.0.1]
    port: 1069
    max_blksize: 1024
    max_windowsize: 16
    timeout_ms: 2000
    retries: 3
    max_transfers: 100
`,
    );
    const b = bootSettings(loadConfig({ file, env: {} }));
    assert.deepEqual(b.services, {
      dhcp: {
        mode: 'full',
        interfaces: ['eno2', 'eno3'],
        subnets: [
          {
            cidr: '10.0.0.0/24',
            rangeStart: '10.0.0.100',
            rangeEnd: '10.0.0.200',
            router: '10.0.0.254',
            dns: ['10.0.0.53'],
            domain: 'lab',
            leaseTime: 600,
            reservations: [{ mac: '52:54:00:00:00:01', ip: '10.0.0.10', hostname: 'n1' }],
          },
        ],
        leaseFile: '/var/lib/kiln/dhcp-leases.jsonl',
        loaders: { bios: 'undionly.kpxe', efiX64: 'snponly.efi', efiArm64: 'arm64/snp.efi' },
        ipxeUserClasses: ['iPXE', 'KilnPXE'],
        ports: { server: 1067, client: 1068, pxe: 5011 },
        rateLimit: { perMacPerS: 4, burst: 20, newClientsPerS: 100, maxOfferedFraction: 0.25 },
      },
      tftp: {
        enabled: true,
        root: '/srv/kiln/tftp',
        addresses: ['10.0.0.1'],
        port: 1069,
        maxBlksize: 1024,
        maxWindowsize: 16,
        timeoutMs: 2000,
        retries: 3,
        maxTransfers: 100,
      },
    });
    assert.equal(b.enabled, true);
    assert.equal(b.filesDir, '/srv/kiln/ramdisk');
    assert.equal(b.loadersDir, '/srv/kiln/tftp');
    assert.deepEqual(b.script, { attempts: 7, retryDelay: 2 });
  });

  it('defaults: Debian loaders from /usr/lib/ipxe, user class iPXE, standard ports; null drops a loader', () => {
    const b = bootSettings(loadConfig({ env: {}, flags: { 'boot.dhcp.loaders.efi_arm64': null } }));
    assert.deepEqual(b.services.dhcp.loaders, {
      bios: 'undionly.kpxe',
      efiX64: 'ipxe.efi',
      efiArm64: undefined,
    });
    assert.deepEqual(b.services.dhcp.ipxeUserClasses, ['iPXE']);
    assert.deepEqual(b.services.dhcp.ports, { server: 67, client: 68, pxe: 4011 });
    assert.equal(b.services.tftp.root, '/usr/lib/ipxe');
    assert.equal(b.services.tftp.port, 69);
    assert.equal(b.enabled, false, 'no interface and no TFTP address: no boot services');
    assert.equal(bootSettings(loadConfig({ flags: { 'boot.tftp.addresses': ['10.0.0.1'] } })).enabled, true);
  });

  it('still takes the earlier flat boot keys, and names them as written in errors', () => {
    const c = loadConfig({
      flags: {
        'boot.dhcp_mode': 'full',
        'boot.interfaces': ['br0'],
        'boot.subnets': [{ cidr: '10.9.0.0/24', range_start: '10.9.0.10', range_end: '10.9.0.20' }],
        'boot.lease_file': '/tmp/leases',
        'boot.tftp_root': '/srv/tftp',
        'boot.tftp': false,
      },
    });
    assert.equal(c.boot.dhcp.mode, 'full');
    assert.equal(c.boot.dhcp.subnets[0]!.range_end, '10.9.0.20');
    assert.equal(c.boot.dhcp.lease_file, '/tmp/leases');
    assert.equal(c.boot.tftp.root, '/srv/tftp');
    assert.equal(c.boot.tftp.enabled, false);
    const file = tempFile('old.yaml', 'boot:\n  dhcp_mode: proxy\n  dhcp: { mode: "off" }\n');
    const got = problems({ file, env: {} });
    assert.deepEqual(
      got.map((p) => [p.path, p.source]),
      [['boot.dhcp_mode', `file ${file}`]],
    );
    assert.match(got[0]!.message, /old name of boot\.dhcp\.mode/);
    const p = problems({ flags: { 'boot.dhcp_mode': 'fool' }, flagNames: { 'boot.dhcp_mode': '--mode' } });
    assert.deepEqual(
      p.map((x) => [x.path, x.source]),
      [['boot.dhcp_mode', 'flag --mode']],
    );
  });

  it('names a missing required key with the file that left it out, not "defaults"', () => {
    const file = tempFile(
      'kiln.yaml',
      'boot:\n  interfaces: [eno2]\n  dhcp:\n    mode: full\n    subnets:\n      - cidr: 10.0.0.0/24\n        range_end: 10.0.0.200\n',
    );
    const got = problems({ file, env: {} });
    assert.deepEqual(
      got.map((p) => [p.path, p.source]),
      [['boot.dhcp.subnets[0].range_start', `file ${file}`]],
    );
    const e = (() => {
      try {
        loadConfig({ file, env: {} });
      } catch (err) {
        return (err as Error).message;
      }
    })();
    assert.match(e!, new RegExp(`boot\\.dhcp\\.subnets\\[0\\]\\.range_start: .* \\(from file ${file}\\)`));
    assert.doesNotMatch(e!, /from defaults/);
  });

  it('names each unknown key in full, with the keys its section takes', () => {
    const file = tempFile('kiln.yaml', 'boot:\n  dhcp:\n    modes: full\n  tftp:\n    root_dir: /x\n');
    const got = problems({ file, env: {} });
    assert.deepEqual(got.map((p) => p.path).sort(), ['boot.dhcp.modes', 'boot.tftp.root_dir']);
    assert.match(got.find((p) => p.path === 'boot.dhcp.modes')!.message, /boot\.dhcp takes: mode, subnets/);
    assert.ok(got.every((p) => p.source === `file ${file}`));
  });

  it('names the environment variable and the flag behind a bad value', () => {
    const got = problems({
      env: { KILN_DHCP_MODE: 'bogus', KILN_BOOT_INTERFACES: 'eno2' },
      flags: { 'api.port': 'x' },
      flagNames: { 'api.port': '--port' },
    });
    assert.deepEqual(got.map((p) => [p.path, p.source]).sort(), [
      ['api.port', 'flag --port'],
      ['boot.dhcp.mode', 'environment KILN_DHCP_MODE'],
    ]);
  });

  it('refuses DHCP without interfaces, full mode without a pool, and a pool the DHCP server would refuse', () => {
    const file = tempFile('kiln.yaml', 'boot:\n  dhcp:\n    mode: full\n');
    const got = problems({ file, env: {} });
    assert.equal(got.length, 2);
    assert.ok(got.every((p) => p.path === 'boot.dhcp.mode' && p.source === `file ${file}`));
    assert.match(got.map((p) => p.message).join('\n'), /boot\.interfaces is empty[\s\S]*boot\.dhcp\.subnets/);
    const bad = problems({
      flags: {
        'boot.interfaces': ['eno2'],
        'boot.dhcp.mode': 'full',
        'boot.dhcp.subnets': [{ cidr: '10.0.0.0/24', range_start: '10.0.1.1', range_end: '10.0.1.9' }],
      },
    });
    assert.deepEqual(
      bad.map((p) => p.path),
      ['boot.dhcp.subnets[0]'],
    );
    assert.match(bad[0]!.message, /not inside it/);
  });

  it('boot services name boot.interfaces (the key that exists) for a wrong interface', async () => {
    const config = loadConfig({ flags: { 'boot.interfaces': ['kiln-nope0'] } });
    const b = bootSettings(config);
    await assert.rejects(
      startBootServices(b.services, { log: silentLogger(), policy: bootAll, urls: httpBootUrls(8080) }),
      (e: Error) => {
        assert.match(e.message, /boot interface kiln-nope0 does not exist; check boot\.interfaces/);
        assert.doesNotMatch(e.message, /boot\.dhcp\.interfaces/);
        return true;
      },
    );
  });

  it('accepts the reference block of docs/boot.md, every key in it', () => {
    const md = readFileSync(resolve(import.meta.dirname, '..', 'docs', 'boot.md'), 'utf8');
    const section = md.slice(md.indexOf('\n## Configuration\n'));
    const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, 'docs/boot.md has a yaml block under ## Configuration');
    const c = loadConfig({ file: tempFile('boot.yaml', block), env: {} });
    assert.equal(c.boot.dhcp.subnets[0]!.reservations[0]!.hostname, 'n1');
    assert.equal(c.boot.tftp.max_transfers, 512);
  });
});
