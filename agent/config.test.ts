import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  loadAgentTokenFile,
  normaliseBootif,
  parseAgentArgs,
  parseCmdline,
  resolveSettings,
  usage,
} from './config.ts';

// What Ironic 2023.1's iPXE template puts on the kernel command line, plus pxelinux's BOOTIF.
const IRONIC_CMDLINE =
  'selinux=0 troubleshoot=0 text nofb nomodeset vga=normal ipa-api-url=http://10.0.0.1:6385 ipa-debug=1 ' +
  'ipa-global-request-id=req-5b0e2c8a-1f6e-4a3c-9c57-3d1f8e0b7a61 BOOTIF=01-3c-fd-fe-9c-87-60 initrd=deploy_ramdisk';

test('parseCmdline keeps key=value tokens only, last one wins', () => {
  const p = parseCmdline(`${IRONIC_CMDLINE} quiet ipa-debug=0 root="/dev/ram0"\n`);
  assert.equal(p['ipa-api-url'], 'http://10.0.0.1:6385');
  assert.equal(p['ipa-debug'], '0');
  assert.equal(p.BOOTIF, '01-3c-fd-fe-9c-87-60');
  assert.equal(p.root, '/dev/ram0');
  assert.equal('quiet' in p, false);
  assert.equal('text' in p, false);
});

test('BOOTIF in pxelinux and iPXE forms', () => {
  assert.equal(normaliseBootif('01-3c-fd-fe-9c-87-60'), '3c:fd:fe:9c:87:60');
  assert.equal(normaliseBootif('3C:FD:FE:9C:87:60'), '3c:fd:fe:9c:87:60');
  assert.equal(normaliseBootif('3c-fd-fe-9c-87-60'), '3c:fd:fe:9c:87:60');
  // iPXE left its variable unexpanded (no network card variable): not a MAC.
  assert.equal(normaliseBootif(['$', '{mac}'].join('')), null);
});

test('kernel parameters map to settings with IPA defaults', () => {
  const s = resolveSettings({ cmdline: parseCmdline(IRONIC_CMDLINE) });
  assert.equal(s.apiUrl, 'http://10.0.0.1:6385');
  assert.equal(s.debug, true);
  assert.equal(s.globalRequestId, 'req-5b0e2c8a-1f6e-4a3c-9c57-3d1f8e0b7a61');
  assert.equal(s.bootif, '01-3c-fd-fe-9c-87-60');
  assert.equal(s.bootifMac, '3c:fd:fe:9c:87:60');
  assert.equal(s.listenHost, '::');
  assert.equal(s.listenPort, 9999);
  assert.equal(s.lookupTimeoutS, 300);
  assert.equal(s.lookupIntervalS, 1);
  assert.equal(s.insecure, false);
  assert.equal(s.collectLldp, false);
  assert.equal(s.powerAction, null, 'decided by where the agent runs (resolvePowerAction)');
});

test('every tunable kernel parameter is read', () => {
  const s = resolveSettings({
    cmdline: parseCmdline(
      'ipa-api-url=https://api.lan:6385/ ipa-lookup-timeout=60 ipa-lookup-interval=2 ipa-listen-host=0.0.0.0 ' +
        'ipa-listen-port=9000 ipa-advertise-host=10.0.0.57 ipa-advertise-port=9001 ipa-advertise-protocol=https ' +
        'ipa-insecure=1 ipa-collect-lldp=True ipa-lldp-timeout=5 ipa-ironic-api-version=1.68 ' +
        'ipa-agent-token=t0k3n-t0k3n-t0k3n-t0k3n-t0k3n-t0k3n ipa-agent-token-required=yes ipa-enable-auto-tls=0 ipa-hardware-initialization-delay=3 BOOTIF=aa:bb:cc:dd:ee:ff',
    ),
  });
  assert.equal(s.apiUrl, 'https://api.lan:6385');
  assert.deepEqual(
    [s.lookupTimeoutS, s.lookupIntervalS, s.listenHost, s.listenPort, s.advertiseHost, s.advertisePort],
    [60, 2, '0.0.0.0', 9000, '10.0.0.57', 9001],
  );
  assert.equal(s.advertiseProtocol, 'https');
  assert.equal(s.insecure, true);
  assert.equal(s.collectLldp, true);
  assert.equal(s.lldpTimeoutS, 5);
  assert.equal(s.ironicApiVersion, '1.68');
  assert.equal(s.agentToken, 't0k3n-t0k3n-t0k3n-t0k3n-t0k3n-t0k3n');
  assert.equal(s.autoTls, false);
  assert.equal(s.agentTokenRequired, true);
  assert.equal(s.hardwareInitializationDelayS, 3);
  assert.equal(s.bootifMac, 'aa:bb:cc:dd:ee:ff');
});

test('env overrides the kernel, flags override env', () => {
  const args = parseAgentArgs([
    '--api-url',
    'http://127.0.0.1:6385',
    '--mac',
    '02:00:00:00:00:01',
    '--mac',
    '02:00:00:00:00:02,02:00:00:00:00:03',
  ]);
  const s = resolveSettings({
    cmdline: parseCmdline('ipa-api-url=http://10.0.0.1:6385 ipa-listen-port=9999'),
    env: { KILN_AGENT_API_URL: 'http://env:6385', KILN_AGENT_LISTEN_PORT: '9998' },
    flags: args.flags,
  });
  assert.equal(s.apiUrl, 'http://127.0.0.1:6385');
  assert.equal(s.listenPort, 9998);
  assert.deepEqual(s.macs, ['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03']);
});

test('--allow-device is repeatable and takes comma lists; KILN_AGENT_ALLOW_DEVICES too; not a kernel parameter', () => {
  const args = parseAgentArgs(['--allow-device', '/dev/loop5', '--allow-device', '/dev/loop6,/dev/loop7']);
  assert.deepEqual(resolveSettings({ flags: args.flags }).allowDevices, [
    '/dev/loop5',
    '/dev/loop6',
    '/dev/loop7',
  ]);
  assert.deepEqual(resolveSettings({ env: { KILN_AGENT_ALLOW_DEVICES: '/dev/loop9' } }).allowDevices, [
    '/dev/loop9',
  ]);
  assert.deepEqual(resolveSettings({ cmdline: parseCmdline('allow-device=/dev/sda') }).allowDevices, []);
  assert.deepEqual(resolveSettings({}).allowDevices, []);
  assert.throws(
    () => resolveSettings({ flags: parseAgentArgs(['--allow-device', 'sda']).flags }),
    /--allow-device=sda: give block devices as \/dev\/\.\.\. paths/,
  );
});

test('mdns and bad values', () => {
  assert.equal(resolveSettings({ cmdline: { 'ipa-api-url': 'mdns' } }).apiUrl, null);
  assert.throws(
    () => resolveSettings({ cmdline: { 'ipa-lookup-timeout': 'soon' } }),
    /ipa-lookup-timeout=soon/,
  );
  assert.throws(() => resolveSettings({ cmdline: { 'ipa-ironic-api-version': 'latest' } }), /1\.68/);
  assert.throws(() => parseAgentArgs(['--no-such-flag']), /no-such-flag/);
  assert.equal(parseAgentArgs(['--version']).version, true);
});

test('the agent token: never from argv, from KILN_AGENT_TOKEN or --agent-token-file, at least 32 characters', () => {
  const token = 'x'.repeat(43);
  assert.throws(
    () => parseAgentArgs(['--agent-token', token]),
    /not accepted on the command line.*KILN_AGENT_TOKEN.*--agent-token-file/,
  );
  assert.throws(() => parseAgentArgs([`--agent-token=${token}`]), /not accepted on the command line/);
  assert.equal(resolveSettings({ env: { KILN_AGENT_TOKEN: token } }).agentToken, token);
  assert.throws(() => resolveSettings({ env: { KILN_AGENT_TOKEN: 'short' } }), /5 characters, fewer than 32/);
  assert.equal(resolveSettings({}).autoTls, true, 'auto-TLS is on unless turned off');

  const dir = mkdtempSync(join(tmpdir(), 'kiln-token-'));
  try {
    const file = join(dir, 'token');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    const s = loadAgentTokenFile(
      resolveSettings({ flags: parseAgentArgs(['--agent-token-file', file]).flags }),
    );
    assert.equal(s.agentToken, token);
    writeFileSync(file, 'short\n');
    assert.throws(
      () => loadAgentTokenFile(resolveSettings({ env: { KILN_AGENT_TOKEN_FILE: file } })),
      /--agent-token-file .*token: the agent token is 5 characters/,
    );
    assert.throws(
      () => loadAgentTokenFile(resolveSettings({ env: { KILN_AGENT_TOKEN_FILE: join(dir, 'none') } })),
      /--agent-token-file .*none: ENOENT/,
    );
    assert.doesNotMatch(usage(), /--agent-token /, 'usage offers no argv flag for the token');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
