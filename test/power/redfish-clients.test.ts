// Conformance of the Redfish BMC emulator with Debian's real Redfish clients: DMTF's redfishtool
// and OpenStack's sushy (the library behind Ironic's redfish driver). If these accept it, tests of
// Kiln's own driver against it mean something.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type RedfishBmc, startRedfishBmc } from '../../tools/redfish-bmc/server.ts';

const pexec = promisify(execFile);
const PASSWORD = 'Clients-S3cret';

// Debian's interpreter, where python3-sushy is installed, whatever python3 comes first in PATH.
const PYTHON = '/usr/bin/python3';

const SUSHY_SCRIPT = `
import json, sys, sushy
from sushy import auth
url, user, pw, mode = sys.argv[1:5]
a = auth.SessionAuth(user, pw) if mode == 'session' else auth.BasicAuth(user, pw)
s = sushy.Sushy(url + '/redfish/v1', auth=a)
members = list(s.get_system_collection().members_identities)
system = s.get_system('/redfish/v1/Systems/1')
out = {'members': members, 'before': str(system.power_state.value)}
system.reset_system(sushy.RESET_ON)
system.refresh()
out['after_on'] = str(system.power_state.value)
system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE, mode=sushy.BOOT_SOURCE_MODE_UEFI)
system.refresh()
out['boot'] = [str(system.boot.target.value), str(system.boot.enabled.value), str(system.boot.mode.value)]
out['resets'] = sorted(str(v.value) for v in system.get_allowed_reset_system_values())
system.reset_system(sushy.RESET_FORCE_OFF)
system.refresh()
out['after_off'] = str(system.power_state.value)
print(json.dumps(out))
`;

describe('Redfish BMC emulator with real clients', () => {
  let bmc: RedfishBmc;
  before(async () => {
    bmc = await startRedfishBmc({ user: 'admin', password: PASSWORD, systems: ['1', '2'] });
  });
  after(async () => {
    await bmc?.close();
  });

  for (const mode of ['basic', 'session']) {
    it(`sushy (${mode} auth) reads, resets and sets the boot override`, async () => {
      bmc.system('1').power = 'Off';
      const { stdout } = await pexec(PYTHON, ['-c', SUSHY_SCRIPT, bmc.url, 'admin', PASSWORD, mode], {
        timeout: 60_000,
      });
      const out = JSON.parse(stdout.trim().split('\n').pop()!);
      assert.deepEqual(out.members, ['/redfish/v1/Systems/1', '/redfish/v1/Systems/2']);
      assert.equal(out.before, 'Off');
      assert.equal(out.after_on, 'On');
      assert.deepEqual(out.boot, ['Pxe', 'Once', 'UEFI']);
      assert.ok(out.resets.includes('ForceRestart') && out.resets.includes('GracefulShutdown'));
      assert.equal(out.after_off, 'Off');
      assert.deepEqual(bmc.system('1').resets.slice(-2), ['On', 'ForceOff']);
      if (mode === 'session') {
        assert.ok(
          bmc.requests.some((r) => r.path === '/redfish/v1/SessionService/Sessions' && r.status === 201),
        );
        assert.ok(bmc.requests.some((r) => r.auth === 'session' && r.path === '/redfish/v1/Systems/1'));
      }
    });
  }

  it('sushy gets an authentication error for a wrong password', async () => {
    const script = `
import sys, sushy
from sushy import auth, exceptions
try:
    s = sushy.Sushy(sys.argv[1] + '/redfish/v1', auth=auth.BasicAuth('admin', 'wrong'))
    s.get_system('/redfish/v1/Systems/1')
    print('no error')
except exceptions.AccessError as e:
    print('AccessError', e.status_code)
`;
    const { stdout } = await pexec(PYTHON, ['-c', script, bmc.url], { timeout: 60_000 });
    assert.equal(stdout.trim().split('\n').pop(), 'AccessError 401');
  });

  const redfishtool = (...args: string[]) =>
    pexec(
      'redfishtool',
      ['-r', `127.0.0.1:${bmc.port}`, '-u', 'admin', '-p', PASSWORD, '-S', 'Never', ...args],
      {
        timeout: 60_000,
      },
    );

  it('redfishtool lists systems, resets one and sets its boot override', async () => {
    const list = JSON.parse((await redfishtool('Systems', 'list')).stdout);
    assert.deepEqual(
      list.Members.map((m: { Id: string }) => m.Id),
      ['1', '2'],
    );
    bmc.system('2').power = 'Off';
    await redfishtool('Systems', '-I', '2', 'reset', 'On');
    assert.equal(bmc.system('2').power, 'On');
    await redfishtool('Systems', '-I', '2', 'setBootOverride', 'Continuous', 'Hdd');
    assert.equal(bmc.system('2').boot.BootSourceOverrideTarget, 'Hdd');
    assert.equal(bmc.system('2').boot.BootSourceOverrideEnabled, 'Continuous');
    const sys = JSON.parse((await redfishtool('-A', 'Session', 'Systems', '-I', '2', 'get')).stdout);
    assert.equal(sys.PowerState, 'On');
    assert.equal(sys.Boot.BootSourceOverrideTarget, 'Hdd');
  });

  it('redfishtool fails with a 401 for a wrong password', async () => {
    const r = await pexec(
      'redfishtool',
      [
        '-r',
        `127.0.0.1:${bmc.port}`,
        '-u',
        'admin',
        '-p',
        'wrong',
        '-S',
        'Never',
        'Systems',
        '-I',
        '1',
        'get',
      ],
      { timeout: 60_000 },
    ).catch((e: { code: number; stderr: string }) => e);
    assert.notEqual((r as { code?: number }).code ?? 0, 0);
    assert.match((r as { stderr: string }).stderr, /401/);
  });
});
